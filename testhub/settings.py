"""TestHub settings, read once from the environment.

With nothing set, TestHub runs on an embedded default that needs no servers:
SQLite in ``TESTHUB_DATA_DIR`` and keys generated there on first use. Every
production value comes from an environment variable listed in README.md.
"""

import secrets
from datetime import timedelta
from pathlib import Path

import environ
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from testhub.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("TESTHUB_DATA_DIR", str(BASE_DIR / "data"))).resolve()

DEBUG = env_bool("DEBUG", False)

# testhub.env.example marks every secret CHANGE-ME: a service started with one of them refuses to.
_PLACEHOLDER = "change-me"
for _name in ("SECRET_KEY", "TESTHUB_ENCRYPTION_KEYS", "DATABASE_URL", "REDIS_URL", "TESTHUB_WORKER_BROKER_URL",
              "TESTHUB_METRICS_TOKEN", "TESTHUB_WEBHOOK_SECRET", "FLOWER_BASIC_AUTH"):  # fmt: skip
    if _PLACEHOLDER in (env_str(_name) or "").lower():
        raise ImproperlyConfigured(
            f"{_name} still holds the example's placeholder ({_PLACEHOLDER.upper()}): set a real secret in testhub.env."
        )


def _generated_once(filename: str, make) -> str:
    """A development secret kept in the data folder so it survives restarts."""
    path = DATA_DIR / filename
    if not path.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = env_str("SECRET_KEY") or _generated_once("secret_key", lambda: secrets.token_urlsafe(50))

# The first key encrypts; every key decrypts, so a new key is put first and the
# old ones stay until `manage.py rotate_node_passwords` has re-encrypted all rows.
ENCRYPTION_KEYS = env_list("TESTHUB_ENCRYPTION_KEYS", []) or [
    _generated_once("encryption_key", lambda: Fernet.generate_key().decode())
]
for _key in ENCRYPTION_KEYS:
    try:
        Fernet(_key)
    except ValueError:
        raise ImproperlyConfigured(
            "TESTHUB_ENCRYPTION_KEYS must be comma-separated Fernet keys "
            "(make one with: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
        ) from None

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS", ["http://localhost:5173", "http://127.0.0.1:5173"])

# Behind TLS in production: TESTHUB_HTTPS=true turns on every secure-cookie and HSTS setting.
HTTPS = env_bool("TESTHUB_HTTPS", False)
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
# Sessions read from the shared cache (written through to the database), in one round trip with the request's
# revisions: a page polling every second costs no query and one cache read.
SESSION_ENGINE = "accounts.sessions"
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if HTTPS else None
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "testhub.admin.TestHubAdminConfig",  # django.contrib.admin with TestHub's site (testhub/admin.py)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",  # its credentials serializer; tokens themselves are knox's (hashed, expiring)
    "knox",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc from local files, never a CDN
    "corsheaders",
    "django_celery_beat",
    "accounts",
    "api",
    "catalog",
    "nodes",
    "execution",
    "reporting",
    "devtools",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "messaging.revisions.RevisionsReadOncePerRequest",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "testhub.urls"
WSGI_APPLICATION = "testhub.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "testhub" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'testhub.sqlite3'}")
DATABASES = {"default": environ.Env.db_url_config(DATABASE_URL)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (web, control worker, beat) share the embedded database:
    # WAL lets readers run beside the writer, IMMEDIATE takes the write lock up
    # front so a transaction waits for it instead of failing half-way.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# The web front end, built by bin/run and bin/test (npm run build) into frontend/dist: its assets are static
# files under /static/, its index.html is served for every page of the app (testhub/urls.py).
FRONTEND_DIST = BASE_DIR / "frontend" / "dist"
STATICFILES_DIRS = [FRONTEND_DIST] if FRONTEND_DIST.is_dir() else []
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
WHITENOISE_USE_FINDERS = DEBUG
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("TESTHUB_MEDIA_ROOT", str(DATA_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Product packages are uploaded through the API; larger files go to disk, never to memory.
TESTHUB_MAX_UPLOAD_BYTES = env_int("TESTHUB_MAX_UPLOAD_BYTES", 2 * 1024**3)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024**2
TESTHUB_MAX_CASES_PER_TASK = env_int("TESTHUB_MAX_CASES_PER_TASK", 100_000)
# A default root for installs on a test machine; every install path must stay inside its node's root.
TESTHUB_DEFAULT_INSTALL_ROOT = env_str("TESTHUB_DEFAULT_INSTALL_ROOT", "/opt/testhub")

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")

# Scheduling. The visibility timeout must be longer than the longest case and the same on every worker
# (python -m worker --visibility-timeout): a case unacknowledged for longer is handed to another worker.
TESTHUB_VISIBILITY_TIMEOUT = env_int("TESTHUB_VISIBILITY_TIMEOUT", 4 * 3600)
TESTHUB_MAX_CASE_TIMEOUT = TESTHUB_VISIBILITY_TIMEOUT - 300
# Chord results and counters live this long: longer than the longest task takes from submit to report.
TESTHUB_RESULT_EXPIRES = env_int("TESTHUB_RESULT_EXPIRES", 7 * 24 * 3600)
TESTHUB_CASE_MAX_ATTEMPTS = env_int("TESTHUB_CASE_MAX_ATTEMPTS", 3)
TESTHUB_RECONCILE_SECONDS = env_int("TESTHUB_RECONCILE_SECONDS", 30)
# A dispatch whose chord is not in Redis this long after it started was cut off (or Redis lost it).
TESTHUB_DISPATCH_GRACE_SECONDS = env_int("TESTHUB_DISPATCH_GRACE_SECONDS", 120)
# How often beat has every capability's queue refilled (cases ending refill it at once; this catches priorities
# that aged and nodes that came online), and how fast a waiting task's priority rises: one level per this many
# seconds (0: never), so a priority-0 task competes with priority-9 ones after 9 of them (execution.scheduling).
TESTHUB_DISPATCH_SECONDS = env_int("TESTHUB_DISPATCH_SECONDS", 2)
TESTHUB_PRIORITY_AGING_SECONDS = env_int("TESTHUB_PRIORITY_AGING_SECONDS", 600)
# A case is flaky on a product version and tool when, within its last this many runs there (at most 100), it
# both passed and failed, or passed only after a retry (execution.flaky).
TESTHUB_FLAKY_RUNS = min(100, max(2, env_int("TESTHUB_FLAKY_RUNS", 10)))
# A case's duration changed enough to be shown when it took at least this many times as long (or as short) as in
# the run compared with, and at least TESTHUB_DURATION_OUTLIER_SECONDS more (or less).
TESTHUB_DURATION_OUTLIER_FACTOR = env_int("TESTHUB_DURATION_OUTLIER_FACTOR", 2)
TESTHUB_DURATION_OUTLIER_SECONDS = env_int("TESTHUB_DURATION_OUTLIER_SECONDS", 1)
# Workers send a heartbeat every 5 s; the control worker sweeps every TESTHUB_LIVENESS_SWEEP_SECONDS, so a node
# whose worker stops answering is offline within OFFLINE_AFTER + SWEEP seconds (12 s by default).
TESTHUB_NODE_OFFLINE_AFTER_SECONDS = env_int("TESTHUB_NODE_OFFLINE_AFTER_SECONDS", 10)
TESTHUB_LIVENESS_SWEEP_SECONDS = env_int("TESTHUB_LIVENESS_SWEEP_SECONDS", 2)
# A control worker silent this long is gone for good: another control worker records the events it left.
TESTHUB_RECORDER_ALIVE_SECONDS = env_int("TESTHUB_RECORDER_ALIVE_SECONDS", 60)
# A node whose cases end in infrastructure errors this many times in a row is quarantined until a check passes.
TESTHUB_QUARANTINE_AFTER = env_int("TESTHUB_QUARANTINE_AFTER", 3)

# Reaching test machines over SSH (nodes/ssh.py). Connect covers TCP, the SSH handshake and the login.
TESTHUB_SSH_CONNECT_TIMEOUT = env_int("TESTHUB_SSH_CONNECT_TIMEOUT", 10)
TESTHUB_SSH_COMMAND_TIMEOUT = env_int("TESTHUB_SSH_COMMAND_TIMEOUT", 900)
# The broker URL as the test machines reach it (the control plane's REDIS_URL may name a host they cannot).
TESTHUB_WORKER_BROKER_URL = env_str("TESTHUB_WORKER_BROKER_URL", "") or REDIS_URL
# Each test machine's worker signs in to Redis as a user of its own, who may reach only its queues, append to
# the events list and read the cancelled set (needs Redis 7; the control plane's user must be allowed ACL).
TESTHUB_NODE_BROKER_USERS = env_bool("TESTHUB_NODE_BROKER_USERS", True)
TESTHUB_BROKER_USER_PREFIX = env_str("TESTHUB_BROKER_USER_PREFIX", "testhub-node-")
# How long a deploy waits for the new worker to answer; a warm shutdown first lets a running case finish.
TESTHUB_DEPLOY_VERIFY_SECONDS = env_int("TESTHUB_DEPLOY_VERIFY_SECONDS", 900)
# Prometheus scrapes /metrics with "Authorization: Bearer <this>" (lab managers may read it signed in).
TESTHUB_METRICS_TOKEN = env_str("TESTHUB_METRICS_TOKEN", "")
# When a task's report is ready, its summary is POSTed here (and to the task's own webhook_url), signed with
# HMAC-SHA256 of the body under TESTHUB_WEBHOOK_SECRET in the X-TestHub-Signature header.
TESTHUB_WEBHOOK_URL = env_str("TESTHUB_WEBHOOK_URL", "")
TESTHUB_WEBHOOK_SECRET = env_str("TESTHUB_WEBHOOK_SECRET", "")
# An HTTP proxy every webhook delivery goes through (the lab's way out), e.g. http://proxy.lab:3128.
TESTHUB_WEBHOOK_PROXY = env_str("TESTHUB_WEBHOOK_PROXY", "")
# Where people reach TestHub: links in reports and product test results.
TESTHUB_PUBLIC_URL = env_str("TESTHUB_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")

# API tokens are stored hashed and expire (0: never); logins are throttled per client address.
TESTHUB_TOKEN_TTL_HOURS = env_int("TESTHUB_TOKEN_TTL_HOURS", 24 * 7)
REST_KNOX = {
    "TOKEN_TTL": timedelta(hours=TESTHUB_TOKEN_TTL_HOURS) if TESTHUB_TOKEN_TTL_HOURS else None,
    "AUTH_HEADER_PREFIX": "Token",
}
TESTHUB_LOGIN_RATE = env_str("TESTHUB_LOGIN_RATE", "10/minute")
# ... and per account, whatever the address (many machines guessing one user's password).
TESTHUB_LOGIN_ACCOUNT_RATE = env_str("TESTHUB_LOGIN_ACCOUNT_RATE", "30/hour")
# Proxies in front of TestHub that append the client's address to X-Forwarded-For (0: none; the connection's
# address is the client's, and a client's own X-Forwarded-For is ignored).
TESTHUB_TRUSTED_PROXIES = env_int("TESTHUB_TRUSTED_PROXIES", 0)
# A web process keeps the users, roles and tokens it checked while nobody's account changes (accounts.kept), and
# this long at most: the bound for writes to users that go around the ORM (0 keeps none).
TESTHUB_AUTH_CACHE_SECONDS = env_int("TESTHUB_AUTH_CACHE_SECONDS", 300)
AUTHENTICATION_BACKENDS = ["accounts.backends.CachedUserBackend"]
# Each web process keeps recent GET answers while their data's revisions hold (api.answers); this long at
# most, and this many bytes in all.
TESTHUB_ANSWER_CACHE_SECONDS = env_int("TESTHUB_ANSWER_CACHE_SECONDS", 10)
TESTHUB_ANSWER_CACHE_BYTES = env_int("TESTHUB_ANSWER_CACHE_BYTES", 32 * 1024**2)
# Request bodies: anonymous requests (the logins) are small; a signed-in client may send a 100,000-case task.
TESTHUB_MAX_ANONYMOUS_BODY_BYTES = 64 * 1024
TESTHUB_MAX_JSON_BYTES = env_int("TESTHUB_MAX_JSON_BYTES", 64 * 1024**2)
LOGIN_REDIRECT_URL = "/"

# Shared by every web process: login throttling counts attempts across all of them.
CACHES = {
    "default": {
        "BACKEND": "testhub.cache.ReusedClientRedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "testhub:cache",
        "TIMEOUT": 300,
    }
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "api.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_THROTTLE_RATES": {"login": TESTHUB_LOGIN_RATE, "login_account": TESTHUB_LOGIN_ACCOUNT_RATE},
    "NUM_PROXIES": TESTHUB_TRUSTED_PROXIES,
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.LabPermission"],
    "DEFAULT_PAGINATION_CLASS": "api.pagination.Pagination",
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "api.exceptions.exception_handler",
    "COERCE_DECIMAL_TO_STRING": False,  # success rates and pass rates are numbers to the front end's charts
    "PAGE_SIZE": 50,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "TITLE": "TestHub API",
    "DESCRIPTION": "Submit test tasks, follow their cases, read their reports; keep the lab's products, tools, nodes.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "NodeStatusEnum": "nodes.models.Node.Status",
        "InstallStateEnum": "nodes.models.InstallState",
        "TaskStatusEnum": "execution.models.Task.Status",
        "CaseStatusEnum": "execution.models.Case.Status",
        "ReportStatusEnum": "reporting.models.Report.Status",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
