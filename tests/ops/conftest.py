# The worker-integration fixtures: a private redis-server that a test may stop, fresh pools.
from tests.monitoring.test_worker_integration import fresh_broker_pool, own_redis  # noqa: F401
