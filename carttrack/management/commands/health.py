"""`manage.py health [NAME ...]`: run /health/ready's checks (all, or those named) from a shell
or a container health check; prints the same JSON and exits 1 when one fails.

    python manage.py health beat        # docker-compose's beat health check
"""

import asyncio
import json

from django.core.management.base import BaseCommand, CommandError

from carttrack.health import readiness_checks


class Command(BaseCommand):
    help = "Run the readiness checks (all, or the named ones); exit 1 when one fails."

    def add_arguments(self, parser):
        parser.add_argument("names", nargs="*", help="database, redis, worker, beat, mllp, disk")

    def handle(self, *names, **options):
        names = options["names"]
        checks = [(n, c) for n, c in readiness_checks() if not names or n in names]
        unknown = set(names) - {n for n, _ in checks}
        if unknown:
            raise CommandError(f"No such check configured here: {', '.join(sorted(unknown))}")

        async def run():
            return await asyncio.gather(*(check.get_result() for _n, check in checks))

        results = asyncio.run(run())
        report = {
            name: "ok" if result.error is None else str(result.error)
            for (name, _check), result in zip(checks, results, strict=True)
        }
        self.stdout.write(json.dumps(report))
        if any(result.error is not None for result in results):
            raise SystemExit(1)
