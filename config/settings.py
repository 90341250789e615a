"""Slotpay settings: one module, every value from the environment.

Profiles by ``ENVIRONMENT``: development (the default: SQLite, in-process tasks,
keys generated into ``.env`` on the first run), test (the suite), staging and
production (every secret required, nothing defaulted). README.md lists every variable.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

import environ
from cryptography.fernet import Fernet
from csp.constants import NONE, SELF

from config import env as config_env
from core.rates import parse_rate

BASE_DIR = Path(__file__).resolve().parent.parent

config_env.load_dotenv(BASE_DIR)
ENVIRONMENT = config_env.profile()
PRODUCTION_LIKE = ENVIRONMENT in ("staging", "production")
TESTING = ENVIRONMENT == "test"

env = environ.Env()


def _secret(name: str, *, test_default: str) -> str:
    """A secret that only the test profile may invent (development has ``.env``)."""
    value = config_env.read_secret(name, required=not TESTING)
    return value if value is not None else test_default


# --- Secrets -------------------------------------------------------------------------

SECRET_KEY = _secret("SECRET_KEY", test_default=secrets.token_urlsafe(50))
# Comma-separated earlier SECRET_KEYs, still accepted while a rotation settles (sessions,
# password-reset links; API tokens used meanwhile are re-hashed under the new key).
SECRET_KEY_FALLBACKS = config_env.split_list(
    config_env.read_secret("SECRET_KEY_FALLBACKS", required=False) or ""
)
# Comma-separated: the first key encrypts, every key decrypts (rotation).
FIELD_ENCRYPTION_KEY = config_env.split_list(
    _secret("FIELD_ENCRYPTION_KEY", test_default=Fernet.generate_key().decode())
)
# Comma-separated: the first computes new email indexes, every key is tried on look-up.
# Kept the string given (core.encryption.blind_index_keys splits it), as one key always was.
BLIND_INDEX_KEY = _secret("BLIND_INDEX_KEY", test_default=secrets.token_urlsafe(32))
# Ed25519 private key (32 random bytes, URL-safe base64) that signs the audit chain's
# daily checkpoints; keep a copy of the exported checkpoints away from the database.
AUDIT_CHECKPOINT_KEY = _secret("AUDIT_CHECKPOINT_KEY", test_default=secrets.token_urlsafe(32))
# The public halves of earlier checkpoint keys (base64, comma-separated): checkpoints they
# signed stay trusted by verification after a rotation (README, "Rotating keys").
AUDIT_CHECKPOINT_RETIRED_PUBLIC_KEYS = config_env.split_list(
    env.str("AUDIT_CHECKPOINT_RETIRED_PUBLIC_KEYS", default="")
)

DEBUG = env.bool("DEBUG", default=ENVIRONMENT == "development")

# The public address of this site: links in emails, Checkout return URLs.
SITE_URL = (
    env.str("SITE_URL", default="").strip()
    or {"development": "http://127.0.0.1:8000", "test": "http://testserver"}.get(ENVIRONMENT)
    or ""
).rstrip("/")
if not SITE_URL:
    raise config_env.ConfigurationError(f"SITE_URL is required when ENVIRONMENT={ENVIRONMENT}.")

# --- Providers -----------------------------------------------------------------------

# The offline stand-ins for Stripe and Calendly (sandbox/): on by default in
# development and test, never mounted in staging or production (a check refuses it).
SANDBOX = env.bool("SANDBOX", default=ENVIRONMENT in ("development", "test"))
SANDBOX_MOUNTED = SANDBOX and ENVIRONMENT in ("development", "test")

STRIPE_API_KEY = _secret("STRIPE_API_KEY", test_default=f"sk_test_{secrets.token_hex(12)}")
# Unset: Stripe itself; with the sandbox, its stand-in on this site.
STRIPE_API_BASE = env.str(
    "STRIPE_API_BASE", default=f"{SITE_URL}/sandbox/stripe" if SANDBOX_MOUNTED else ""
).rstrip("/")
# Comma-separated: every secret verifies (rotation); the sandbox signs with the first.
STRIPE_WEBHOOK_SECRETS = config_env.split_list(
    _secret("STRIPE_WEBHOOK_SECRETS", test_default=f"whsec_test{secrets.token_hex(16)}")
)

CALENDLY_API_TOKEN = _secret("CALENDLY_API_TOKEN", test_default=secrets.token_urlsafe(24))
CALENDLY_API_BASE = env.str(
    "CALENDLY_API_BASE",
    default=f"{SITE_URL}/sandbox/calendly/api" if SANDBOX_MOUNTED else "https://api.calendly.com",
).rstrip("/")
# Comma-separated: every key verifies; new subscriptions are created with the first.
CALENDLY_WEBHOOK_SIGNING_KEYS = config_env.split_list(
    _secret("CALENDLY_WEBHOOK_SIGNING_KEYS", test_default=secrets.token_urlsafe(32))
)

# --- Webhooks (webhooks/) --------------------------------------------------------------

# A call to Stripe or Calendly made with a database transaction open: "raise" refuses it
# (the test profile, so that any such path fails the suite), "warn" logs it
# (provider.call_in_transaction, with the stack). config/outgoing.py says why.
PROVIDER_CALLS_IN_TRANSACTION = env.str(
    "PROVIDER_CALLS_IN_TRANSACTION", default="raise" if TESTING else "warn"
)
if PROVIDER_CALLS_IN_TRANSACTION not in ("raise", "warn"):
    raise config_env.ConfigurationError("PROVIDER_CALLS_IN_TRANSACTION must be raise or warn.")

# The secret last segment of each endpoint's URL: /webhooks/stripe/<token>/. A wrong
# token is an ordinary 404; register the full URL with the provider.
STRIPE_WEBHOOK_PATH_TOKEN = _secret(
    "STRIPE_WEBHOOK_PATH_TOKEN", test_default=secrets.token_urlsafe(24)
)
CALENDLY_WEBHOOK_PATH_TOKEN = _secret(
    "CALENDLY_WEBHOOK_PATH_TOKEN", test_default=secrets.token_urlsafe(24)
)
# Optional comma-separated CIDRs per provider; empty accepts any source address.
STRIPE_WEBHOOK_IP_ALLOWLIST = config_env.networks(
    "STRIPE_WEBHOOK_IP_ALLOWLIST", env.str("STRIPE_WEBHOOK_IP_ALLOWLIST", default="")
)
CALENDLY_WEBHOOK_IP_ALLOWLIST = config_env.networks(
    "CALENDLY_WEBHOOK_IP_ALLOWLIST", env.str("CALENDLY_WEBHOOK_IP_ALLOWLIST", default="")
)
# A signature's timestamp may be this old; a future one at most 60 s ahead (clock skew).
WEBHOOK_TOLERANCE_SECONDS = env.int("WEBHOOK_TOLERANCE_SECONDS", default=300)
WEBHOOK_FUTURE_TOLERANCE_SECONDS = 60
WEBHOOK_MAX_BODY_BYTES = env.int("WEBHOOK_MAX_BODY_BYTES", default=256 * 1024)
# Processing: attempts before an event is dead, the first retry's delay (doubling, capped).
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=10)
WEBHOOK_RETRY_BASE_SECONDS = env.int("WEBHOOK_RETRY_BASE_SECONDS", default=30)
WEBHOOK_RETRY_CAP_SECONDS = env.int("WEBHOOK_RETRY_CAP_SECONDS", default=3600)
# The sweeper re-enqueues events stored but not picked up after this long (Redis was
# down), and events left "processing" after the processing timeout (a worker died);
# the timeout outlasts CELERY_TASK_TIME_LIMIT so a live task is never taken over.
WEBHOOK_REQUEUE_AFTER_SECONDS = env.int("WEBHOOK_REQUEUE_AFTER_SECONDS", default=60)
WEBHOOK_PROCESSING_TIMEOUT_SECONDS = env.int("WEBHOOK_PROCESSING_TIMEOUT_SECONDS", default=360)
WEBHOOK_SWEEP_INTERVAL_SECONDS = env.int("WEBHOOK_SWEEP_INTERVAL_SECONDS", default=60)
# Each Celery worker's relay publishes what the endpoint stored (webhooks/relay.py):
# it looks this often when idle; WEBHOOK_RELAY_ENABLED=false leaves it to the sweeper.
WEBHOOK_RELAY_INTERVAL_SECONDS = env.float("WEBHOOK_RELAY_INTERVAL_SECONDS", default=0.1)
WEBHOOK_RELAY_ENABLED = env.bool("WEBHOOK_RELAY_ENABLED", default=True)
# Retention: processed payloads go after 24 h; dedup keys outlive Stripe's 3-day retries.
WEBHOOK_PAYLOAD_RETENTION_HOURS = env.int("WEBHOOK_PAYLOAD_RETENTION_HOURS", default=24)
WEBHOOK_DEDUP_RETENTION_DAYS = env.int("WEBHOOK_DEDUP_RETENTION_DAYS", default=7)
# Rejections are counted per provider, reason and hour; the first this many of each
# in an hour are also written to the audit log (a flood must not flood the chain).
WEBHOOK_REJECTION_AUDIT_LIMIT = env.int("WEBHOOK_REJECTION_AUDIT_LIMIT", default=100)
# Refused deliveries (bad signature or timestamp) per provider in an hour that raise an
# alert (webhooks/watchdogs.py).
WEBHOOK_SIGNATURE_FAILURE_ALERT_THRESHOLD = env.int(
    "WEBHOOK_SIGNATURE_FAILURE_ALERT_THRESHOLD", default=50
)

# Where the Stripe sandbox delivers its events (Calendly's deliver to subscriptions).
SANDBOX_STRIPE_WEBHOOK_URL = env.str(
    "SANDBOX_STRIPE_WEBHOOK_URL",
    default=f"{SITE_URL}/webhooks/stripe/{STRIPE_WEBHOOK_PATH_TOKEN}/",
)
# The sandbox posts webhooks from a thread of the serving process; the test suite
# delivers explicitly instead (sandbox.delivery.deliver_due) unless a test starts it.
SANDBOX_DELIVERY_THREAD = env.bool("SANDBOX_DELIVERY_THREAD", default=not TESTING)
SANDBOX_WEBHOOK_MAX_ATTEMPTS = env.int("SANDBOX_WEBHOOK_MAX_ATTEMPTS", default=8)
SANDBOX_WEBHOOK_BACKOFF_CAP = 60  # seconds: eight attempts span about two minutes

# --- Bookings --------------------------------------------------------------------------

# An unpaid booking holds its Calendly slot this long, then expires and frees it.
# Stripe's Checkout sessions last at least 30 minutes, so a shorter hold is raised to that.
BOOKING_PAYMENT_HOLD_MINUTES = max(30, env.int("BOOKING_PAYMENT_HOLD_MINUTES", default=60))
# A confirmed booking counts as completed this long after its end (time to mark a no-show).
BOOKING_COMPLETE_AFTER_HOURS = env.int("BOOKING_COMPLETE_AFTER_HOURS", default=48)
# How long a "Book" click stays valid: the time a client may take on Calendly's page.
BOOKING_INTENT_MAX_AGE_MINUTES = env.int("BOOKING_INTENT_MAX_AGE_MINUTES", default=120)
# Where the client's browser may be sent after a form (CSP form-action follows redirects).
CHECKOUT_ORIGINS = config_env.split_list(
    env.str("CHECKOUT_ORIGINS", default="https://checkout.stripe.com,https://calendly.com")
)

# --- Email ---------------------------------------------------------------------------

# An SMTP URL with user, password, host and port, ?tls=True etc. (django-environ email_url).
_email_url = config_env.read_secret("EMAIL_URL", required=False) or (
    "consolemail://" if ENVIRONMENT == "development" else "smtp://localhost:25"
)
vars().update(env.email_url_config(_email_url))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Slotpay <no-reply@slotpay.localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Hosts and proxies ---------------------------------------------------------------

_default_hosts = {
    "development": "127.0.0.1,localhost",
    "test": "testserver,127.0.0.1,localhost",
}
ALLOWED_HOSTS = config_env.split_list(
    env.str("ALLOWED_HOSTS", default=None) or _default_hosts.get(ENVIRONMENT)
)
if not ALLOWED_HOSTS:
    raise config_env.ConfigurationError(
        f"ALLOWED_HOSTS is required when ENVIRONMENT={ENVIRONMENT}."
    )
CSRF_TRUSTED_ORIGINS = config_env.split_list(env.str("CSRF_TRUSTED_ORIGINS", default=""))
# How many reverse proxies in front of us append to X-Forwarded-For; 0 trusts none.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
if TRUSTED_PROXY_COUNT:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Applications --------------------------------------------------------------------

INSTALLED_APPS = [
    # First, so that its changepassword (by email) replaces django.contrib.auth's.
    "accounts",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc served from here, not a CDN
    "corsheaders",
    "axes",
    "csp",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "config",
    "core",
    "audit",
    "payments",
    "bookings",
    "webhooks",
]
if SANDBOX_MOUNTED:
    INSTALLED_APPS += ["sandbox", "sandbox.stripe_sandbox", "sandbox.calendly_sandbox"]

MIDDLEWARE = [
    "config.middleware.RequestContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Before anything that answers (WhiteNoise, CommonMiddleware): every /api/ answer,
    # a 429 included, carries the CORS headers an allowed origin needs to read it.
    "corsheaders.middleware.CorsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Refuses a session past its limits before anything reads request.user.
    "accounts.sessions.SessionLimitsMiddleware",
    "core.middleware.TimeZoneMiddleware",
    "config.middleware.ActorContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "config.middleware.SecurityHeadersMiddleware",
    "axes.middleware.AxesMiddleware",
    # Last: after authentication and the CSRF check, so per-user limits know the user.
    "core.ratelimit.RateLimitMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "config.context_processors.site",
            ],
        },
    },
]

# --- Data ----------------------------------------------------------------------------

DEVELOPMENT_DATABASE_URL = f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
_database_url = config_env.read_secret("DATABASE_URL", required=PRODUCTION_LIKE) or (
    DEVELOPMENT_DATABASE_URL if ENVIRONMENT == "development" else "sqlite://:memory:"
)
DATABASES = {"default": env.db_url_config(_database_url)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # BEGIN IMMEDIATE: concurrent writers queue for the lock instead of failing on
    # upgrade, which the audit chain's serialised appends rely on.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20}
    )
else:
    # Development's runserver serves each request on a new thread: a connection kept
    # past the request would be one more per request until PostgreSQL refuses clients.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int(
        "DATABASE_CONN_MAX_AGE", default=0 if ENVIRONMENT == "development" else 60
    )
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

_sandbox_database = config_env.sandbox_database(DATABASES["default"], BASE_DIR)
if SANDBOX_MOUNTED and ENVIRONMENT == "development" and _sandbox_database is not None:
    DATABASES["sandbox"] = _sandbox_database
    DATABASE_ROUTERS = ["sandbox.db.SandboxRouter"]

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "accounts.backends.EmailBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator",
        # Our User has one "name" field, not Django's first_name and last_name.
        "OPTIONS": {"user_attributes": ("email", "name")},
    },
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    {"NAME": "accounts.passwords.NotTheEmailValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "bookings:mine"
LOGOUT_REDIRECT_URL = "home"

# Links emailed to a person (accounts.links): each works once, until it expires.
EMAIL_VERIFICATION_MAX_AGE_HOURS = env.int("EMAIL_VERIFICATION_MAX_AGE_HOURS", default=48)
PASSWORD_RESET_MAX_AGE_MINUTES = env.int("PASSWORD_RESET_MAX_AGE_MINUTES", default=60)
SESSION_RECOVERY_MAX_AGE_MINUTES = env.int("SESSION_RECOVERY_MAX_AGE_MINUTES", default=15)
# Sessions end this long after sign-in (absolute) or after the last request (idle),
# checked on the server at every request; staff sessions are shorter.
SESSION_ABSOLUTE_SECONDS = env.int("SESSION_ABSOLUTE_SECONDS", default=24 * 60 * 60)
SESSION_IDLE_SECONDS = env.int("SESSION_IDLE_SECONDS", default=2 * 60 * 60)
STAFF_SESSION_ABSOLUTE_SECONDS = env.int("STAFF_SESSION_ABSOLUTE_SECONDS", default=8 * 60 * 60)
STAFF_SESSION_IDLE_SECONDS = env.int("STAFF_SESSION_IDLE_SECONDS", default=30 * 60)
# Personal API tokens: a new one lasts API_TOKEN_DEFAULT_DAYS unless its owner picks a
# date, at most API_TOKEN_MAX_DAYS away.
API_TOKEN_DEFAULT_DAYS = env.int("API_TOKEN_DEFAULT_DAYS", default=90)
API_TOKEN_MAX_DAYS = env.int("API_TOKEN_MAX_DAYS", default=365)

# django-axes: lock out after repeated failures per (account, address) pair, per
# address (higher: an office behind one NAT shares it) and per account across
# addresses, each at its own limit (accounts.backends.LoginLimitsHandler; a success
# clears its own pair only). The "username" axes stores is the email's blind index,
# never the address itself.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_ADDRESS_FAILURE_LIMIT = env.int("AXES_ADDRESS_FAILURE_LIMIT", default=20)
AXES_ACCOUNT_FAILURE_LIMIT = env.int("AXES_ACCOUNT_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = timedelta(minutes=15)
# A page of ours that says how long to wait (axes' default is bare text, "Account
# locked", untrue when it is the address that is paused).
AXES_LOCKOUT_CALLABLE = "accounts.backends.lockout_response"
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address", "username"]
AXES_HANDLER = "accounts.backends.LoginLimitsHandler"
AXES_RESET_ON_SUCCESS = True
AXES_DISABLE_ACCESS_LOG = True
# "next" too: signed out, Calendly's redirect (the invitee's name, email and answers in
# its query) reaches the sign-in page as ?next=, which axes stores with each failure.
AXES_SENSITIVE_PARAMETERS = ["username", "email", "ip_address", "next"]
AXES_USERNAME_CALLABLE = "accounts.backends.axes_username"
AXES_CLIENT_IP_CALLABLE = "core.http.client_ip"
# Failed sign-ins and lockouts are all counted per hour (audit.SecurityEventCount); the
# first this many of each per hour are audited.
SECURITY_EVENT_AUDIT_LIMIT = env.int("SECURITY_EVENT_AUDIT_LIMIT", default=100)

# --- Back-office ---------------------------------------------------------------------

# Money, rights, erasure and replay actions need the password again (and a TOTP code
# from staff who enrolled one) within this many seconds.
STEP_UP_MAX_AGE_SECONDS = env.int("STEP_UP_MAX_AGE_SECONDS", default=300)
# Staff groups whose members must have a TOTP device to step up at all.
STEP_UP_TOTP_GROUPS = config_env.split_list(
    env.str("STEP_UP_TOTP_GROUPS", default="Finance,Privacy" if PRODUCTION_LIKE else "")
)
OTP_TOTP_ISSUER = "Slotpay"
OTP_ADMIN_HIDE_SENSITIVE_DATA = True
# A refund from the back-office above any of these waits for a second Finance member:
# "<currency>=<minor units>" entries and/or one "<percent>%" share of the payment.
REFUND_APPROVAL_THRESHOLD = env.str(
    "REFUND_APPROVAL_THRESHOLD", default="eur=10000,usd=10000,gbp=10000,chf=10000,jpy=15000"
)
# A data-subject access export's download link stays valid this long.
DSR_EXPORT_LINK_MAX_AGE_SECONDS = env.int("DSR_EXPORT_LINK_MAX_AGE_SECONDS", default=3600)

# --- Compliance on autopilot (alerts, retention, reconciliation, access review) ------

# Who hears of a critical alert (core/alerts.py): required in production; without it
# ADMINS, then the members of the group an alert names.
ALERT_EMAILS = config_env.split_list(env.str("ALERT_EMAILS", default=""))
ADMINS = [
    ("Slotpay admins", address) for address in config_env.split_list(env.str("ADMINS", default=""))
]
# Rows a retention purge handles in one transaction (short locks; resumable).
RETENTION_BATCH_SIZE = env.int("RETENTION_BATCH_SIZE", default=1000)
# How far back the daily reconciliation looks at Stripe and Calendly.
RECONCILE_LOOKBACK_HOURS = env.int("RECONCILE_LOOKBACK_HOURS", default=72)
# The quarterly access review, and when a staff account counts as inactive.
ACCESS_REVIEW_INTERVAL_DAYS = env.int("ACCESS_REVIEW_INTERVAL_DAYS", default=90)
ACCESS_REVIEW_INACTIVE_DAYS = env.int("ACCESS_REVIEW_INACTIVE_DAYS", default=90)
# Each key's creation date (<NAME>_CREATED, ISO date): rotated every KEY_ROTATION_DAYS,
# warned KEY_ROTATION_WARNING_DAYS before.
KEY_ROTATION_DAYS = env.int("KEY_ROTATION_DAYS", default=90)
KEY_ROTATION_WARNING_DAYS = env.int("KEY_ROTATION_WARNING_DAYS", default=14)
ROTATED_KEYS = (
    "SECRET_KEY",
    "FIELD_ENCRYPTION_KEY",
    "BLIND_INDEX_KEY",
    "AUDIT_CHECKPOINT_KEY",
    "STRIPE_API_KEY",
    "STRIPE_WEBHOOK_SECRETS",
    "CALENDLY_API_TOKEN",
    "CALENDLY_WEBHOOK_SIGNING_KEYS",
)
KEY_CREATED = {name: config_env.iso_date(f"{name}_CREATED") for name in ROTATED_KEYS}
# Optional <NAME>_VERSION: a number raised at each rotation (keys_status; config/keys.py).
KEY_VERSION = {name: env.str(f"{name}_VERSION", default="").strip() for name in ROTATED_KEYS}

LANGUAGE_CODE = "en"
# Date-and-time formats that name the zone (config/formats/en/formats.py).
FORMAT_MODULE_PATH = ["config.formats"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Outside production WhiteNoise serves straight from the app folders (no collectstatic).
WHITENOISE_USE_FINDERS = not PRODUCTION_LIKE
WHITENOISE_AUTOREFRESH = ENVIRONMENT == "development"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION_LIKE
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# --- Tasks ---------------------------------------------------------------------------

REDIS_URL = config_env.read_secret("REDIS_URL", required=PRODUCTION_LIKE)
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or "cache+memory://"
# In-process only where there is no broker in development, and in the unit tests.
CELERY_TASK_ALWAYS_EAGER = env.bool(
    "CELERY_TASK_ALWAYS_EAGER",
    default=TESTING or (ENVIRONMENT == "development" and not REDIS_URL),
)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_RESULT_EXPIRES = timedelta(days=1)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_TASK_TIME_LIMIT = 300
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Longer than the hard time limit, so Redis never redelivers a task still running.
    "visibility_timeout": 3600,
    # A publish with the broker down fails in milliseconds (one reconnection, 2 s at
    # most for an unreachable host) instead of retrying for seconds: a webhook is
    # already safe in the inbox, and the sweeper queues it when Redis is back. The
    # worker's own reconnection loop (broker_connection_max_retries) is not affected.
    "max_retries": 1,
    "interval_start": 0,
    "socket_connect_timeout": 2,
}
CELERY_TASK_DEFAULT_QUEUE = "slotpay"
# An outbox task sent this long ago that no worker has run to an end is sent again
# (core/outbox.py): its message died with a killed worker or a Redis restarted empty.
# Longer than a task waits in a busy queue plus its time limit; a copy still waiting
# when it passes finds its publish replaced and does nothing.
OUTBOX_REDELIVER_AFTER_SECONDS = env.int("OUTBOX_REDELIVER_AFTER_SECONDS", default=900)
# A refund's sender holds its lease this long (payments.services.refund_submit): longer
# than a Stripe call can last (30 s read timeout, two retries), or a live call may be
# sent again beside it. Beat sends what is left pending every
# REFUND_RETRY_INTERVAL_SECONDS.
REFUND_SUBMIT_LEASE_SECONDS = env.int("REFUND_SUBMIT_LEASE_SECONDS", default=180)
REFUND_RETRY_INTERVAL_SECONDS = env.int("REFUND_RETRY_INTERVAL_SECONDS", default=300)
# Verification and checkpoints wait this long for the audit sequencer's lock, then go
# on with the entries integrated and report the rest as queued (audit/sequencer.py).
AUDIT_INTEGRATION_WAIT_SECONDS = env.float("AUDIT_INTEGRATION_WAIT_SECONDS", default=10.0)
CELERY_BEAT_SCHEDULE = {
    "audit-verify-chain": {"task": "audit.tasks.verify_chain", "schedule": 3600.0},
    # Queued audit entries no writer's after-commit try picked up (audit/sequencer.py).
    "audit-integrate": {"task": "audit.tasks.integrate", "schedule": 5.0},
    "webhooks-sweep": {
        "task": "webhooks.tasks.sweep",
        "schedule": float(WEBHOOK_SWEEP_INTERVAL_SECONDS),
    },
    # Every app's retention rules (audit/purges.py; each app's retention.py), hourly:
    # webhook payloads fall due by the hour.
    "retention-purge": {"task": "audit.purges.purge", "schedule": 3600.0},
    "bookings-expire-unpaid": {"task": "bookings.tasks.expire_unpaid", "schedule": 60.0},
    "bookings-complete-past": {"task": "bookings.tasks.complete_past", "schedule": 3600.0},
    # The transactional outbox (core/outbox.py): what a broker outage left unsent.
    "core-relay-outbox": {"task": "core.tasks.relay_outbox", "schedule": 10.0},
    "core-purge-outbox": {"task": "core.tasks.purge_outbox", "schedule": 3600.0},
    "audit-checkpoint": {"task": "audit.tasks.write_checkpoint", "schedule": 86400.0},
    # An erasure's provider steps (Stripe, Calendly) that failed: tried again.
    "accounts-retry-erasure-steps": {
        "task": "accounts.dsr.erasure_steps_retry_task",
        "schedule": 3600.0,
    },
    # Reconciliation (bookings/reconcile.py): Stripe and Calendly against our records.
    "bookings-reconcile": {"task": "bookings.tasks.reconcile", "schedule": 86400.0},
    # Alerts (core/alerts.py): each app's watchdogs, every five minutes.
    "core-run-watchdogs": {"task": "core.tasks.run_watchdogs", "schedule": 300.0},
    # The quarterly access review (accounts/access_review.py): Auditors are told when one
    # is due.
    "accounts-remind-access-review": {
        "task": "accounts.tasks.remind_access_review",
        "schedule": 86400.0,
    },
    "payments-retry-refunds": {
        "task": "payments.tasks.retry_unfinished_refunds",
        "schedule": float(REFUND_RETRY_INTERVAL_SECONDS),
    },
}

# --- Rate limits and CORS --------------------------------------------------------------

# The limits' counters (core.ratelimit) live in the cache: Redis in staging and
# production, so that every web process counts together; this process's memory elsewhere.
if PRODUCTION_LIKE and REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "slotpay",
            # Redis down must not hang requests: the limits then let them through.
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "slotpay",
        }
    }
RATE_LIMIT_CACHE = "default"
# Off in the test profile only, whose many sign-ins come from one address; the tests of
# the limits turn it on. Not read from the environment: production always limits.
RATE_LIMITS_ENABLED = not TESTING


def _rate(name: str, default: str) -> str:
    """The rate in environment variable ``name`` (else ``default``), such as 10/minute,
    5/hour or 3/15min; a malformed one stops start-up."""
    value = env.str(name, default=default)
    try:
        parse_rate(value)
    except ValueError as exc:
        raise config_env.ConfigurationError(f"{name}: {exc}") from None
    return value


# Each rate is "<count>/<period>": at most that many requests in any such period.
RATE_LIMIT_SIGN_IN_PER_ADDRESS = _rate("RATE_LIMIT_SIGN_IN_PER_ADDRESS", "10/minute")
RATE_LIMIT_SIGN_IN_PER_EMAIL = _rate("RATE_LIMIT_SIGN_IN_PER_EMAIL", "20/hour")
RATE_LIMIT_SIGN_UP_PER_ADDRESS = _rate("RATE_LIMIT_SIGN_UP_PER_ADDRESS", "5/hour")
RATE_LIMIT_PASSWORD_RESET_PER_ADDRESS = _rate("RATE_LIMIT_PASSWORD_RESET_PER_ADDRESS", "5/hour")
RATE_LIMIT_PASSWORD_RESET_PER_EMAIL = _rate("RATE_LIMIT_PASSWORD_RESET_PER_EMAIL", "3/hour")
RATE_LIMIT_VERIFY_RESEND_PER_USER = _rate("RATE_LIMIT_VERIFY_RESEND_PER_USER", "5/hour")
RATE_LIMIT_PASSWORD_CHECK_PER_USER = _rate("RATE_LIMIT_PASSWORD_CHECK_PER_USER", "10/hour")
RATE_LIMIT_INVITE_PER_USER = _rate("RATE_LIMIT_INVITE_PER_USER", "20/hour")
RATE_LIMIT_RECOVER_PER_ADDRESS = _rate("RATE_LIMIT_RECOVER_PER_ADDRESS", "5/hour")
RATE_LIMIT_RECOVER_PER_ACCOUNT = _rate("RATE_LIMIT_RECOVER_PER_ACCOUNT", "3/hour")
RATE_LIMIT_BOOKING_PER_USER = _rate("RATE_LIMIT_BOOKING_PER_USER", "20/hour")
RATE_LIMIT_CHECKOUT_PER_USER = _rate("RATE_LIMIT_CHECKOUT_PER_USER", "60/hour")
RATE_LIMIT_API_PER_USER = _rate("RATE_LIMIT_API_PER_USER", "120/minute")
RATE_LIMIT_API_PER_TOKEN = _rate("RATE_LIMIT_API_PER_TOKEN", "60/minute")
RATE_LIMIT_API_PER_ADDRESS = _rate("RATE_LIMIT_API_PER_ADDRESS", "30/minute")
# The pages' limits (core.ratelimit.RateLimitMiddleware), by URL name and method (POST
# unless a row lists "methods"), each counted per "address" (IPv6 by /64), "user" (signed
# out: by address), "email:<form field>" (the typed email's blind index),
# "email_address:<form field>" (that email from that address) or
# "session:<key>[.<key>]"; a request must pass every row that names its page. A name no
# view has (yet) matches nothing. tests/core/test_ratelimit_pages.py needs a recipe per row.
# django-axes' lockouts count failed sign-ins besides; these count every attempt.
RATE_LIMITS = {
    "sign_in.address": {
        "views": ["accounts:login", "admin:login"],
        "key": "address",
        "rate": RATE_LIMIT_SIGN_IN_PER_ADDRESS,
    },
    # Per email from one address, never per email alone: a limit anyone could spend by
    # typing someone's address would lock them out (axes' per-account lock-out is the
    # one that counts failures across addresses).
    "sign_in.email": {
        "views": ["accounts:login", "admin:login"],
        "key": "email_address:username",
        "rate": RATE_LIMIT_SIGN_IN_PER_EMAIL,
    },
    "sign_up.address": {
        "views": ["accounts:signup"],
        "key": "address",
        "rate": RATE_LIMIT_SIGN_UP_PER_ADDRESS,
    },
    "password_reset.address": {
        "views": ["accounts:password_reset"],
        "key": "address",
        "rate": RATE_LIMIT_PASSWORD_RESET_PER_ADDRESS,
    },
    "password_reset.email": {
        "views": ["accounts:password_reset"],
        "key": "email_address:email",
        "rate": RATE_LIMIT_PASSWORD_RESET_PER_EMAIL,
    },
    "verify_resend.user": {
        "views": ["accounts:verify_resend"],
        "key": "user",
        "rate": RATE_LIMIT_VERIFY_RESEND_PER_USER,
    },
    # The account page's forms that check the current password: a guessing oracle for
    # whoever holds a session.
    "password_check.user": {
        "views": ["accounts:profile", "accounts:password_change"],
        "key": "user",
        "rate": RATE_LIMIT_PASSWORD_CHECK_PER_USER,
    },
    # An owner's invitations: each emails someone.
    "invite.user": {
        "views": ["accounts:invite_member"],
        "key": "user",
        "rate": RATE_LIMIT_INVITE_PER_USER,
    },
    "recover.address": {
        "views": ["accounts:recover"],
        "key": "address",
        "rate": RATE_LIMIT_RECOVER_PER_ADDRESS,
    },
    "recover.account": {
        "views": ["accounts:recover"],
        # The account the ended session belonged to (accounts.sessions.ENDED_KEY).
        "key": "session:session_ended.user",
        "rate": RATE_LIMIT_RECOVER_PER_ACCOUNT,
    },
    "booking.user": {
        "views": ["bookings:event_type"],
        "key": "user",
        "rate": RATE_LIMIT_BOOKING_PER_USER,
    },
    # Each of these asks Calendly or Stripe: one counter for the three.
    "checkout.user": {
        "views": ["bookings:scheduled", "bookings:pay", "bookings:paid"],
        "key": "user",
        "rate": RATE_LIMIT_CHECKOUT_PER_USER,
    },
}

# django-cors-headers, for the API only. No origin is allowed unless listed (scheme and
# host, such as https://app.example.com); credentials (cookies) are off unless asked
# for, and a check (config/cors.py, slotpay.E030) refuses them with any wildcard.
CORS_ALLOWED_ORIGINS = config_env.split_list(env.str("CORS_ALLOWED_ORIGINS", default=""))
CORS_ALLOW_CREDENTIALS = env.bool("CORS_ALLOW_CREDENTIALS", default=False)
CORS_URLS_REGEX = r"^/api/"
# Readable by the calling page's script: how long to wait, and the reference to quote.
CORS_EXPOSE_HEADERS = ["Retry-After", "X-Request-ID"]

# --- HTTP security -------------------------------------------------------------------

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# The cookie outlives no session (accounts.sessions enforces the shorter limits).
SESSION_COOKIE_AGE = SESSION_ABSOLUTE_SECONDS
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
CSRF_FAILURE_VIEW = "config.views.csrf_failure"
if PRODUCTION_LIKE:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    # Providers treat a redirect as a failed delivery: webhooks are never redirected.
    SECURE_REDIRECT_EXEMPT = [r"^webhooks/"]
    SECURE_HSTS_SECONDS = 31_536_000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # __Host- cookies are Secure, host-only and path=/: no subdomain can set them.
    SESSION_COOKIE_NAME = "__Host-session"
    CSRF_COOKIE_NAME = "__Host-csrftoken"
else:
    SESSION_COOKIE_NAME = "slotpay_session"
    CSRF_COOKIE_NAME = "slotpay_csrftoken"

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "form-action": [SELF, *CHECKOUT_ORIGINS],
        "frame-ancestors": [NONE],
        "object-src": [NONE],
        "base-uri": [NONE],
    },
}
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
    "microphone=(), payment=(), usb=(), interest-cohort=()"
)

REST_FRAMEWORK = {
    # The token class first: an anonymous request gets 401 with its Bearer challenge.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.api_auth.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "bookings.api.handle_exception",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    # core.ratelimit: every user's calls (session or token), each token's, and anonymous
    # calls per address; 429 with Retry-After (the rates: "Rate limits and CORS" above).
    "DEFAULT_THROTTLE_CLASSES": [
        "core.ratelimit.ApiUserThrottle",
        "core.ratelimit.ApiTokenThrottle",
        "core.ratelimit.ApiAddressThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "user": RATE_LIMIT_API_PER_USER,
        "token": RATE_LIMIT_API_PER_TOKEN,
        "address": RATE_LIMIT_API_PER_ADDRESS,
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Slotpay API",
    "VERSION": "1",
    "DESCRIPTION": (
        "Bookings for clients and builders. Send a personal API token "
        "(`Authorization: Bearer slp_...`, made at /accounts/tokens/, shown once) with the "
        "scopes each operation names, or, in a browser, the site's session cookie (unsafe "
        "methods then need the CSRF token). Without either: 401 with a `WWW-Authenticate` "
        "challenge. Someone else's booking is a 404. Errors are "
        '`{"error": {"code", "message"}}` with code one of: not_authenticated, '
        "authentication_failed, permission_denied, not_found, method_not_allowed, "
        "cancel_refused, provider_unavailable, throttled, invalid."
    ),
    "SERVE_INCLUDE_SCHEMA": False,
    # Every operation documents the errors it may answer, in their one shape.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "bookings.api.document_errors",
    ],
    # Operations tagged and named by resource (bookings_list), not by version (v1_...).
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Observability -------------------------------------------------------------------

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
LOG_FORMAT = env.str("LOG_FORMAT", default="json" if PRODUCTION_LIKE else "text")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_context": {"()": "config.logging.RequestContextFilter"},
        "forbidden_without_traceback": {"()": "config.logging.ForbiddenFilter"},
        "suspicious_request_as_warning": {"()": "config.logging.SuspiciousRequestFilter"},
        "redact_query_strings": {"()": "config.logging.QueryStringFilter"},
        "mask_personal_data": {"()": "core.masking.MaskingFilter"},
        "one_line": {"()": "config.logging.OneLineFilter"},
    },
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "text": {
            "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s",
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": [
                "request_context",
                "forbidden_without_traceback",
                "suspicious_request_as_warning",
                "redact_query_strings",
                "mask_personal_data",
                "one_line",
            ],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "axes": {"level": "WARNING"},
        # runserver's request lines, and gunicorn's access log when it is turned on
        # (--access-logfile), go through the same filters: they print query strings.
        # Their own handlers (Django's default, gunicorn's file) are replaced.
        "django.server": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        # Django's own "django" handlers (an unfiltered console copy in DEBUG, mail to
        # ADMINS) would print what ours mask: its records go through ours only.
        "django": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "gunicorn.access": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        # A worker's "<name> ready." line and beat's "Starting...", whatever LOG_LEVEL
        # (``--loglevel`` applies to Celery's own logging, which ours replaces):
        # process managers and the benchmarks' stack wait for them.
        "celery.apps.worker": {"level": "INFO"},
        "celery.beat": {"level": "INFO"},
    },
}

SENTRY_DSN = config_env.read_secret("SENTRY_DSN", required=False)
SENTRY_ENVIRONMENT = env.str("SENTRY_ENVIRONMENT", default=ENVIRONMENT)
if SENTRY_DSN:
    from config.sentry import init_sentry

    init_sentry(dsn=SENTRY_DSN, environment=SENTRY_ENVIRONMENT)
