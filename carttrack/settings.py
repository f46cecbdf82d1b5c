"""CARTtrack settings, read from the environment (see README "Configuration").

With no environment at all this is the embedded default the run command uses: SQLite in the
project folder, Celery tasks run in-process, e-mail printed to the console. Setting DATABASE_URL
and REDIS_URL switches to PostgreSQL, Redis and real Celery workers.
"""

from pathlib import Path

import environ
import plotly
from django.core.exceptions import ImproperlyConfigured

from carttrack.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if DEBUG:
        SECRET_KEY = "insecure-development-key-only-for-debug"
    else:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it in the environment (bin/run generates one for you)."
        )
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "simple_history",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",  # one-time recovery codes
    "csp",
    "patients",
    "monitoring",
    "analytics",
    "imports",
    "accounts",
    "audit",
    "demo",  # the synthetic demo cohort and load_demo_cohort (roof: imports every app)
    "carttrack",  # project-wide management commands (backups)
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # A NUL byte in the path or query: a 400 with a message, before any lookup (issue 21).
    "carttrack.request_safety.NulByteMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Pages compressed (static files come compressed from whitenoise already). Django's
    # GZipMiddleware pads the gzip header randomly against BREACH-style length attacks.
    "django.middleware.gzip.GZipMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The browser's language (Accept-Language); the user's own choice is applied after sign-in.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "accounts.language.UserLanguageMiddleware",
    # Every page needs a signed-in user unless its view says otherwise (the login page).
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "carttrack.security.SessionTimeoutMiddleware",
    "accounts.otp.OTPRequiredMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    "axes.middleware.AxesMiddleware",
    "carttrack.security.NoStoreMiddleware",
    "audit.middleware.AccessAuditMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

# The change history (django-simple-history) is a record, never a tool: no "revert" in the admin.
SIMPLE_HISTORY_REVERT_DISABLED = True

ROOT_URLCONF = "carttrack.urls"
WSGI_APPLICATION = "carttrack.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "carttrack.context_processors.navigation",
            ],
        },
    },
]

_env = environ.Env()
DATABASES = {
    "default": _env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The embedded demo database cannot enforce "one current registry-wide rule parameter set"
    # (NULLS NOT DISTINCT); PostgreSQL does, and the service serializes changes either way.
    SILENCED_SYSTEM_CHECKS = ["models.W047"]
DATABASES["default"].setdefault("CONN_MAX_AGE", env_int("CONN_MAX_AGE", 0))
# A kept connection is checked before reuse, so a PostgreSQL restart costs one error page, not
# an application restart.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# A PostgreSQL streaming replica (hot standby) for the heavy reads: dashboards, exports, rule
# performance and the snapshot's dataset (carttrack/replica.py). Writes, and reads that decide a
# write, stay on the primary; a replica that is down or further behind than
# REPLICA_MAX_LAG_SECONDS is not used (reads fall back to the primary, logged).
_replica_url = env_str("DATABASE_REPLICA_URL", "")
if _replica_url:
    DATABASES["replica"] = environ.Env.db_url_config(_replica_url)
    DATABASES["replica"].update(
        ATOMIC_REQUESTS=False,
        CONN_MAX_AGE=DATABASES["default"]["CONN_MAX_AGE"],
        CONN_HEALTH_CHECKS=True,
        # The test runner never creates a test database on a read-only standby.
        TEST={"MIRROR": "default"},
    )
    DATABASES["replica"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 3)
DATABASE_ROUTERS = ["carttrack.replica.ReplicaRouter"]
REPLICA_MAX_LAG_SECONDS = env_int("REPLICA_MAX_LAG_SECONDS", 30)
REPLICA_CHECK_SECONDS = env_int("REPLICA_CHECK_SECONDS", 5)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LOGIN_URL_PATH = "/login/"
PASSWORD_RESET_TIMEOUT = 60 * 60  # a reset link works for an hour

# Login lockout (django-axes): five failures lock the username *and* address pair for 30
# minutes, so a stranger elsewhere cannot lock a clinician out. Behind reverse proxies every
# request comes from a proxy: TRUSTED_PROXY_COUNT (how many proxies in front, each appending the
# address it saw to X-Forwarded-For) makes carttrack.security.client_address take the address
# the outermost trusted proxy saw; with 0 the header is ignored (a client writes what it likes).
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
# Counts from 1 to SMALL_CELL_MIN - 1 are suppressed in pooled (registry-wide) statistics.
SMALL_CELL_MIN = env_int("SMALL_CELL_MIN", 5)
# The API refuses JSON nested deeper than this (400), before parsing it.
JSON_MAX_DEPTH = env_int("JSON_MAX_DEPTH", 64)
# New dashboard computations (filter combinations without a snapshot) one user may start per
# hour; more get a 429 with a message.
DASHBOARD_NEW_FILTERS_PER_HOUR = env_int("DASHBOARD_NEW_FILTERS_PER_HOUR", 20)
# The nightly refresh recomputes every filter opened within this many days (one task each).
SNAPSHOT_FILTER_KEEP_DAYS = env_int("SNAPSHOT_FILTER_KEEP_DAYS", 30)
AXES_COOLOFF_TIME = 0.5
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
AXES_CLIENT_IP_CALLABLE = "carttrack.security.client_address"

# Sessions: signed out after SESSION_IDLE_MINUTES without a request and SESSION_ABSOLUTE_HOURS
# after sign-in (carttrack/security.py); the cookie never outlives the absolute limit.
SESSION_IDLE_SECONDS = env_int("SESSION_IDLE_MINUTES", 15) * 60
SESSION_ABSOLUTE_SECONDS = env_int("SESSION_ABSOLUTE_HOURS", 12) * 3600
SESSION_COOKIE_AGE = SESSION_ABSOLUTE_SECONDS

# Second factor (django-otp, TOTP): optional for everyone; required for the members of these
# groups (comma-separated names, e.g. "Clinicians").
OTP_REQUIRED_GROUPS = env_list("OTP_REQUIRED_GROUPS", [])
OTP_TOTP_ISSUER = "CARTtrack"

LANGUAGE_CODE = "en-gb"
# The interface's languages (issue 23). A user's own choice (ClinicianProfile.language) wins over
# the browser's Accept-Language; stored values, CSV columns, API fields and codes stay neutral.
LANGUAGES = [
    ("en-gb", "English"),
    ("de", "Deutsch"),
    ("zh-hans", "简体中文"),
]
# Catalogues: each app keeps its own (<app>/locale); carttrack/locale holds the project package's
# strings (messages, context processors), locale/ the project's templates (bin/messages).
LOCALE_PATHS = [BASE_DIR / "carttrack" / "locale", BASE_DIR / "locale"]
# Dates and times shown in each language's own way (carttrack/formats); input formats unchanged.
FORMAT_MODULE_PATH = "carttrack.formats"
# The default clinical time zone; each center may set its own (a result's day is computed in it).
TIME_ZONE = env_str("TIME_ZONE", "Europe/Berlin")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# plotly.js is served from the plotly package's own file: hospital networks reach no CDN.
STATICFILES_DIRS = [
    BASE_DIR / "static",
    ("vendor/plotly", Path(plotly.__file__).resolve().parent / "package_data"),
]
# Served compressed (gzip, and brotli when installed) with hashed names from the collected folder
# (bin/run and the Dockerfile run collectstatic): whitenoise gives hashed files a year's max-age.
# STATIC_MANIFEST=False (DEBUG, and bin/test) serves the source folders through the finders
# instead, with plain names and no collectstatic needed.
STATIC_MANIFEST = env_bool("STATIC_MANIFEST", not DEBUG)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if STATIC_MANIFEST
        else "whitenoise.storage.CompressedStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = not STATIC_MANIFEST

# E-mail: console by default; EMAIL_URL such as smtp+tls://user:pass@host:587 in production.
_email = _env.email_url("EMAIL_URL", default="consolemail://")
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
for _key in ("EMAIL_HOST", "EMAIL_PORT", "EMAIL_HOST_USER", "EMAIL_HOST_PASSWORD"):
    if _email.get(_key):
        globals()[_key] = _email[_key]
if env_str("EMAIL_FILE_PATH"):  # write each message to a file (tests, demos without SMTP)
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH")
EMAIL_USE_TLS = bool(_email.get("EMAIL_USE_TLS"))
EMAIL_USE_SSL = bool(_email.get("EMAIL_USE_SSL"))
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "CARTtrack <carttrack@localhost>")

# Celery: a real broker when REDIS_URL is set, otherwise tasks run in-process.
REDIS_URL = env_str("REDIS_URL", "")
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or None
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", not REDIS_URL)
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_QUEUE", "celery")
# NOTIFICATION_SWEEP_SECONDS (read in carttrack/celery.py): how often beat sends the
# notifications that could not be enqueued when raised (Redis down); default 60.
# What is news (CLINICAL.md section 4): a finding whose day is more than this many days before
# its arrival is history (recorded, never e-mailed); a center's alerting settings may override it.
ALERT_STALE_AFTER_DAYS = env_int("ALERT_STALE_AFTER_DAYS", 60)
# Escalation of an unacknowledged high alert: to the center's other clinicians after this many
# hours, to its leads after that many (per center in its alerting settings).
ALERT_ESCALATE_AFTER_HOURS = env_int("ALERT_ESCALATE_AFTER_HOURS", 24)
ALERT_ESCALATE_LEADS_AFTER_HOURS = env_int("ALERT_ESCALATE_LEADS_AFTER_HOURS", 48)
# A notification that failed (a webhook answered 500) waits this long before its second attempt,
# doubling after each further one.
NOTIFICATION_BACKOFF_SECONDS = env_int("NOTIFICATION_BACKOFF_SECONDS", 30)
# ALERT_ESCALATION_SWEEP_SECONDS (read in carttrack/celery.py): how often beat escalates; 300.
# Imports: a lab batch larger than this (samples) becomes a background job answered with 202;
# a spreadsheet with more rows than this is imported by a background job with a progress bar.
IMPORT_SYNC_MAX_SAMPLES = env_int("IMPORT_SYNC_MAX_SAMPLES", 5000)
IMPORT_INLINE_MAX_ROWS = env_int("IMPORT_INLINE_MAX_ROWS", 2000)
IMPORT_UPLOAD_MAX_BYTES = env_int("IMPORT_UPLOAD_MAX_BYTES", 20 * 1024 * 1024)
# A spreadsheet is read by a background job, and refused before its cells are read when it is
# larger than these (an XLSX by the sizes its zip declares and its sheets' dimensions, a CSV by
# its lines and delimiters).
SPREADSHEET_MAX_UNZIPPED_BYTES = env_int("SPREADSHEET_MAX_UNZIPPED_BYTES", 50_000_000)
SPREADSHEET_MAX_ROWS = env_int("SPREADSHEET_MAX_ROWS", 50_000)
SPREADSHEET_MAX_CELLS = env_int("SPREADSHEET_MAX_CELLS", 1_000_000)
# An Idempotency-Key is remembered this many days: presented later it is treated as new (a
# laboratory system re-sends within minutes, not months); beat deletes older keys nightly.
IDEMPOTENCY_KEY_DAYS = env_int("IDEMPOTENCY_KEY_DAYS", 30)
# The largest request body read (a 5,000-sample lab batch is about 1 MB; larger ones become
# background jobs); over it the API answers a JSON 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 20 * 1024 * 1024)
# FHIR: a center's own Observation codes (e.g. its PB B-cell count) and units, in the format of
# imports/fhir_mapping.json; they take precedence over the shipped LOINC entries.
FHIR_LOCAL_MAPPING_FILE = env_str("FHIR_LOCAL_MAPPING_FILE", "")
# FHIR: the identifier system of the center's study IDs (e.g. urn:oid:1.2.276.0.76.4711); a
# Patient is matched by it only (or by CARTtrack's own urn:carttrack:study-id), never by an MRN
# or SSN. Empty: the mapping file's patient_identifier_system.
FHIR_STUDY_ID_SYSTEM = env_str("FHIR_STUDY_ID_SYSTEM", "")
# HL7 v2 over MLLP (manage.py hl7_listen; bin/run starts it when HL7_LISTEN_PORT is set).
HL7_LISTEN_HOST = env_str("HL7_LISTEN_HOST", "127.0.0.1")
HL7_LISTEN_PORT = env_int("HL7_LISTEN_PORT", 0)  # 0: no listener
HL7_WORKERS = env_int("HL7_WORKERS", 4)  # threads storing and processing (database connections)
# Group commit (imports.mllp): stored messages waiting are processed together, at most
# HL7_GROUP_MAX in a group and HL7_GROUPS groups at once (fewer than HL7_WORKERS, so storing
# goes on meanwhile); a group starts when every connected sender has a message waiting, or
# HL7_GROUP_LINGER_MS after the first one waited.
HL7_GROUP_MAX = env_int("HL7_GROUP_MAX", 16)
HL7_GROUPS = env_int("HL7_GROUPS", 1)
HL7_GROUP_LINGER_MS = env_int("HL7_GROUP_LINGER_MS", 10)
HL7_HEARTBEAT_SECONDS = env_int("HL7_HEARTBEAT_SECONDS", 15)  # imports.HL7Listener stamped
# An undeliverable notification (5 attempts) is tried again this long after it failed.
NOTIFICATION_RETRY_SECONDS = env_int("NOTIFICATION_RETRY_SECONDS", 3600)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Publishing fails fast when Redis is down (one quick retry), so a save never waits on the
# broker: the outbox keeps the notification and beat sends it once Redis is back.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
    # A task taken by a worker that died is given to another after this many seconds (Redis's
    # default is an hour). Longer than any task runs: a 10,000-patient refresh takes ~15 s.
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 600),
}
# Dashboard refresh runs: a heartbeat every few seconds while computing; the sweep (every
# minute) fails a running run silent for REFRESH_STALE_SECONDS and a queued run no worker took.
REFRESH_HEARTBEAT_SECONDS = env_int("REFRESH_HEARTBEAT_SECONDS", 15)
REFRESH_STALE_SECONDS = env_int("REFRESH_STALE_SECONDS", 120)
REFRESH_QUEUE_WAIT_SECONDS = env_int("REFRESH_QUEUE_WAIT_SECONDS", 600)
# Import jobs: the same heartbeat; the sweep (every minute) queues a running job silent for
# IMPORT_JOB_STALE_SECONDS again (nothing of it was saved: one transaction), at most
# IMPORT_JOB_RETRIES times, then fails it with a message to send the batch again.
IMPORT_JOB_HEARTBEAT_SECONDS = env_int("IMPORT_JOB_HEARTBEAT_SECONDS", 15)
IMPORT_JOB_STALE_SECONDS = env_int("IMPORT_JOB_STALE_SECONDS", 120)
IMPORT_JOB_RETRIES = env_int("IMPORT_JOB_RETRIES", 2)

if REDIS_URL:
    # A Redis outage is a cache miss, not a failed page (carttrack/cache.py); a Redis that does
    # not answer is given up on within a second or two.
    CACHES = {
        "default": {
            "BACKEND": "carttrack.cache.ForgivingRedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 2},
        }
    }

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        # For laboratory systems: a token per service account, made in the admin.
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON nested deeper than JSON_MAX_DEPTH or carrying NUL: a 400 (carttrack/request_safety).
    "DEFAULT_PARSER_CLASSES": [
        "carttrack.request_safety.SafeJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # One JSON error shape for every status (patients/api/errors.py).
    "EXCEPTION_HANDLER": "patients.api.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "CARTtrack API",
    "VERSION": "1.0.0",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
}


SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

# DEPLOYMENT=production: the HTTPS profile behind a TLS-terminating proxy. `manage.py check
# --deploy` reports nothing with it (tests/security/test_deploy_check.py).
DEPLOYMENT = env_str("DEPLOYMENT", "development")
if DEPLOYMENT not in ("development", "production"):
    raise ImproperlyConfigured("DEPLOYMENT must be development or production")
_production = DEPLOYMENT == "production"
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", _production)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
if _production:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    # The proxy terminates TLS and says so; it must strip this header from clients.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# Content-Security-Policy (django-csp): scripts only from this server (no inline script; page
# data travel in <script type="application/json"> blocks), fetches only to it, no framing.
# Inline *styles* stay allowed: plotly.js sets element styles and injects its own stylesheet.
from csp.constants import NONE, SELF  # noqa: E402

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, "'unsafe-inline'"],
        "img-src": [SELF, "data:", "blob:"],
        "font-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# Logs: JSON lines on stderr (carttrack/logs.py), with the request ID; LOG_FORMAT=text for a
# developer's console. One access line per request (carttrack.access, INFO) unless
# ACCESS_LOG=False. Never an MRN, a name or a lab value (tests/conftest.py checks the suite's).
LOG_FORMAT = env_str("LOG_FORMAT", "json")
if LOG_FORMAT not in ("json", "text"):
    raise ImproperlyConfigured("LOG_FORMAT must be json or text")
ACCESS_LOG = env_bool("ACCESS_LOG", True)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "carttrack.logs.RequestIDFilter"}},
    "formatters": {
        "json": {"()": "carttrack.logs.JsonFormatter", "json_ensure_ascii": False},
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "WARNING")},
    "loggers": {
        "carttrack.access": {"level": "INFO" if ACCESS_LOG else "WARNING"},
        # A failing check is in /health/ready's answer; its traceback every probe is noise.
        "health_check": {"level": "ERROR"},
    },
}
# Celery workers log through the same formatter (carttrack/celery_signals.py).

# --- Operations: health checks and metrics (README "Operations") ----------------------------
# The request ID first (every later log line carries it), the request metrics just after.
MIDDLEWARE.insert(0, "carttrack.metrics.RequestMetricsMiddleware")
MIDDLEWARE.insert(0, "carttrack.logs.RequestIDMiddleware")
# /health/ready: beat's heartbeat may be at most two periods old; a worker must answer a ping
# within this many seconds; the upload folder needs this much free space.
HEALTH_BEAT_SECONDS = env_int("HEALTH_BEAT_SECONDS", 60)
HEALTH_WORKER_REPLY_SECONDS = env_int("HEALTH_WORKER_REPLY_SECONDS", 1)
HEALTH_DISK_MIN_FREE_MB = env_int("HEALTH_DISK_MIN_FREE_MB", 500)
FILE_UPLOAD_TEMP_DIR = env_str("FILE_UPLOAD_TEMP_DIR") or None
# /metrics (Prometheus): answered only with "Authorization: Bearer METRICS_TOKEN" or to a client
# address in METRICS_ALLOWED_IPS (addresses or networks, e.g. 10.0.5.0/24); otherwise 404. Both
# empty: metrics are off.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
METRICS_ALLOWED_IPS = env_list("METRICS_ALLOWED_IPS", [])

# --- Sign-in with the hospital directory (README "Sign-in") ---------------------------------
# LDAP / Active Directory through django-auth-ldap (accounts/directory.py): off while
# LDAP_SERVER_URI is empty. Local accounts keep working beside it (break-glass administrators).
LDAP_SERVER_URI = env_str("LDAP_SERVER_URI", "")
# A signed-in directory user is looked up again after this many seconds (0: every request):
# removed, disabled or without a role group, the session ends at that request.
LDAP_RECHECK_SECONDS = env_int("LDAP_RECHECK_SECONDS", 300)
DIRECTORY_ROLE_GROUPS: dict[str, str] = {}
DIRECTORY_CENTER_GROUPS: dict[str, str] = {}
if LDAP_SERVER_URI:
    from accounts.ldap_config import ldap_settings  # noqa: E402

    globals().update(
        ldap_settings(
            server_uri=LDAP_SERVER_URI,
            bind_dn=env_str("LDAP_BIND_DN", ""),
            bind_password=env_str("LDAP_BIND_PASSWORD", ""),
            start_tls=env_bool("LDAP_START_TLS", False),
            user_base=env_str("LDAP_USER_BASE", ""),
            user_filter=env_str("LDAP_USER_FILTER", "(uid=%(user)s)"),
            group_base=env_str("LDAP_GROUP_BASE", ""),
            group_type=env_str("LDAP_GROUP_TYPE", "groupOfNames"),
            role_groups=env_str("LDAP_ROLE_GROUPS", ""),
            center_groups=env_str("LDAP_CENTER_GROUPS", ""),
            timeout_seconds=env_int("LDAP_TIMEOUT_SECONDS", 3),
        )
    )
    AUTHENTICATION_BACKENDS.insert(
        AUTHENTICATION_BACKENDS.index("django.contrib.auth.backends.ModelBackend"),
        "accounts.directory.DirectoryBackend",
    )
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1,
    "accounts.directory.DirectoryRecheckMiddleware",
)

# OpenID Connect (Entra ID, Keycloak, Okta; mozilla-django-oidc, accounts/oidc.py): off while
# OIDC_OP_ISSUER is empty. Sign-in at /oidc/authenticate/; the provider's back-channel logout
# (POST /oidc/backchannel-logout/) ends the CARTtrack sessions of a provider session.
OIDC_OP_ISSUER = env_str("OIDC_OP_ISSUER", "").rstrip("/")
OIDC_ROLES_CLAIM = env_str("OIDC_ROLES_CLAIM", "roles")
OIDC_CENTER_CLAIM = env_str("OIDC_CENTER_CLAIM", "center")
if OIDC_OP_ISSUER:
    OIDC_RP_CLIENT_ID = env_str("OIDC_RP_CLIENT_ID", "")
    OIDC_RP_CLIENT_SECRET = env_str("OIDC_RP_CLIENT_SECRET", "")
    OIDC_OP_AUTHORIZATION_ENDPOINT = env_str("OIDC_OP_AUTHORIZATION_ENDPOINT", "")
    OIDC_OP_TOKEN_ENDPOINT = env_str("OIDC_OP_TOKEN_ENDPOINT", "")
    OIDC_OP_USER_ENDPOINT = env_str("OIDC_OP_USER_ENDPOINT", "")
    OIDC_OP_JWKS_ENDPOINT = env_str("OIDC_OP_JWKS_ENDPOINT", "")
    OIDC_RP_SCOPES = env_str("OIDC_RP_SCOPES", "openid email profile")
    OIDC_RP_SIGN_ALGO = "RS256"
    OIDC_STORE_ID_TOKEN = True  # its sid names the provider session for back-channel logout
    AUTHENTICATION_BACKENDS.insert(
        AUTHENTICATION_BACKENDS.index("django.contrib.auth.backends.ModelBackend"),
        "accounts.oidc.ProviderBackend",
    )
