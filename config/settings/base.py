"""Settings shared by every environment. Values that vary come from config.env."""

from __future__ import annotations

import os

from config import database_url, env, redis_sentinel
from config.env import BASE_DIR
from config.logging import configure_logging
from config.storage import media_storage
from conversations.encryption import derive_dev_key

SECRET_KEY = env.get("SECRET_KEY", "dev-insecure-secret-key-change-me-in-production")
DEBUG = False
ALLOWED_HOSTS = env.get_list("ALLOWED_HOSTS", ["localhost", ".localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env.get_list("CSRF_TRUSTED_ORIGINS", [])
# Base URL operators reach this deployment at; printed by `tenants create`.
PUBLIC_BASE_URL = env.get("PUBLIC_BASE_URL", "http://localhost:8000").rstrip("/")
# Hostname of the platform (public schema) admin.
PUBLIC_DOMAIN = env.get("PUBLIC_DOMAIN", "localhost")
# Where the agent screens open their WebSocket (served by the websocket process, uvicorn): "" = the page's own
# origin, a proxy sending /ws/ and /t/<slug>/ws/ there; ":8001" = the page's host name on that port (`make run`);
# or an origin, "wss://ws.desk.example.com". docs/DEPLOYMENT.md, "Processes".
WEBSOCKET_BASE_URL = env.get("WEBSOCKET_BASE_URL", "").rstrip("/")

# --- Tenancy (django-tenants: one PostgreSQL schema per tenant) -------------
# Apps in both lists get tables in public AND in every tenant schema, so each
# tenant has its own staff users, sessions and admin log.
SHARED_APPS = [
    "django_tenants",
    "tenants",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.admin",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_prometheus",
    "django_dramatiq",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc assets, served by us (no CDN)
    "django_filters",
    "channels",
]
TENANT_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.admin",
    "django.contrib.sessions",
    "django.contrib.messages",
    "conversations",
    "tickets",
    "kb",
]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
# Slugs that can never name a tenant: schema names Postgres or we reserve, and
# path segments the platform itself uses.
RESERVED_TENANT_SLUGS = {
    "public", "information_schema", "default", "admin", "api", "static", "media",
    "www", "t", "ws", "metrics", "healthz", "readyz", "sandbox",
}
# Served on every host, in the public schema, before tenant resolution:
# load balancers probe by IP, not by tenant hostname.
TENANT_EXEMPT_PATHS = ("/healthz", "/readyz", "/metrics")

MIDDLEWARE = [
    "tenants.log_context.RequestLogContextMiddleware",  # first: every later line carries the request id
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "tenants.middleware.TenantMiddleware",
    "tenants.middleware.TenantCookiePathMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "conversations.api.audit.AuditApiWritesMiddleware",  # every successful API write in the audit log
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
    "config.middleware.SyncChainMiddleware",  # last: keeps the chain sync under ASGI (see the module)
]

ROOT_URLCONF = "config.urls"  # tenant schemas
PUBLIC_SCHEMA_URLCONF = "config.urls_public"
ASGI_APPLICATION = "config.asgi.application"

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
            ],
        },
    },
]

# --- PostgreSQL: pooled connections (CONN_MAX_AGE must stay 0 with a pool) ---
_db = database_url.parse(env.DATABASE_URL)  # host lists too: postgresql://u@pg-a,pg-b/db?target_session_attrs=...
_db_options = _db.pop("OPTIONS", {}) or {}
if "host" in _db_options:  # unix-socket URLs: postgresql://user:@/db?host=/run/dir
    _db["HOST"] = _db_options.pop("host")
_db.update(
    ENGINE="django_tenants.postgresql_backend",
    CONN_MAX_AGE=0,
    OPTIONS={
        **_db_options,
        "pool": {
            "min_size": env.get_int("DB_POOL_MIN_SIZE", 1),
            "max_size": env.get_int("DB_POOL_MAX_SIZE", 10),
            # Below WeCom's 5 s callback deadline: a database outage must answer 503 in time.
            "timeout": env.get_int("DB_POOL_TIMEOUT", 3),
        },
    },
)
DATABASES = {"default": _db}
# `SET search_path` once per connection use and schema, not before every cursor (5 of a callback's 12 statements):
# django-tenants forgets the path it set on set_tenant()/set_schema() (every request, job, socket message and
# schema_context), on close() (each request and job hands its pooled connection back), on rollback and on a
# savepoint's rollback (PostgreSQL undoes a SET with its transaction). tenants/tests/test_search_path.py
# proves each of these.
TENANT_LIMIT_SET_CALLS = True
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache, channel layer; keys carry the tenant schema --------------
REDIS_URL = env.REDIS_URL
# REDIS_SENTINELS set: every Redis client (cache, channel layer, Redis broker, our own) asks these Sentinels
# for the master, and a redis:// URL gives only its db number and password (config/redis_sentinel.py).
REDIS_SENTINEL = redis_sentinel.from_env()
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        **redis_sentinel.cache_location(REDIS_URL, REDIS_SENTINEL),
        "KEY_PREFIX": env.get("CACHE_KEY_PREFIX", "wecomdesk"),
        # django-tenants prefixes every key with the current schema name.
        "KEY_FUNCTION": "django_tenants.cache.make_key",
        "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
    }
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [redis_sentinel.channel_layer_host(REDIS_URL, REDIS_SENTINEL)],
                   "prefix": env.get("CHANNELS_PREFIX", "wecomdesk:asgi")},
    }
}

# --- Dramatiq ----------------------------------------------------------------
BROKER_URL = env.BROKER_URL
DRAMATIQ_NAMESPACE = env.get("DRAMATIQ_NAMESPACE", "dramatiq")
if BROKER_URL.startswith("amqp"):
    _broker = {"BROKER": "dramatiq.brokers.rabbitmq.RabbitmqBroker", "OPTIONS": {"url": BROKER_URL}}
else:
    _broker = redis_sentinel.dramatiq_broker(BROKER_URL, REDIS_SENTINEL, namespace=DRAMATIQ_NAMESPACE)
DRAMATIQ_BROKER = {
    **_broker,
    "MIDDLEWARE": [
        # Tracing before the rest: the job's span covers what they do (the tenant lookup too) and ends
        # after them; a worker process sets up tracing as it boots (config/telemetry.py).
        "config.telemetry.WorkerTelemetry",
        "tenants.dramatiq_tracing.DramatiqTracing",
        # The log context before the tenant's, so even its refusals carry the job id.
        "tenants.log_context.LogContextMiddleware",
        # Tenant next: it must enter the schema before any other middleware
        # or the actor touches the database.
        "tenants.dramatiq.TenantMiddleware",
        "dramatiq.middleware.AgeLimit",
        "dramatiq.middleware.TimeLimit",
        "dramatiq.middleware.ShutdownNotifications",
        # Long jobs stop between rounds on SIGTERM and hand the rest on (tenants/worker_shutdown.py).
        "tenants.worker_shutdown.DrainOnShutdown",
        "dramatiq.middleware.Callbacks",
        "dramatiq.middleware.Pipelines",
        "dramatiq.middleware.Retries",
        "django_dramatiq.middleware.DbConnectionsMiddleware",
        # Answering's models load as the worker boots, not on its first question (conversations/warmup.py).
        "conversations.warmup.WarmUpAnswering",
        # Message metrics and the worker's exposition server (docs/OBSERVABILITY.md).
        "dramatiq.middleware.prometheus.Prometheus",
    ],
}
DRAMATIQ_AUTODISCOVER_MODULES = ["actors"]
# A worker of the answering queue loads jieba and the built-in embedding model as it boots (conversations/warmup.py).
WARM_UP_ANSWERING = env.get_bool("WARM_UP_ANSWERING", True)
# How long a worker waits between polls of a Redis queue it holds messages of (an idle urgent queue is woken
# instead, config/broker_wakeups.py). Dramatiq's default (1000 ms) alone could miss the agent screens' one
# second (bench/realtime.py, before wake-ups: p95 791 ms vs 103 ms at 100 ms).
# rundramatiq loads these settings and then starts the worker with this environment.
os.environ.setdefault("dramatiq_worker_timeout", env.get("WORKER_POLL_MS", "100"))
DRAMATIQ_TASKS_DATABASE = "default"

# --- Metrics (docs/OBSERVABILITY.md) -----------------------------------------------
# Tenants beyond the first METRICS_MAX_TENANTS (oldest active first) share the label tenant="_other".
METRICS_MAX_TENANTS = env.get_int("METRICS_MAX_TENANTS", 200)
# When set, the web's /metrics answers only `Authorization: Bearer <METRICS_TOKEN>` (tenant names leak).
METRICS_TOKEN = env.get("METRICS_TOKEN", "")
# How often the leading scheduler computes the health gauges.
METRICS_HEALTH_SECONDS = float(env.get("METRICS_HEALTH_SECONDS", "15"))
# The scheduler's own exposition server; port 0 turns it off.
SCHEDULER_METRICS_HOST = env.get("SCHEDULER_METRICS_HOST", "127.0.0.1")
SCHEDULER_METRICS_PORT = env.get_int("SCHEDULER_METRICS_PORT", 9192)
# Dramatiq's Prometheus middleware reads its address and directory from the environment when it is
# imported, after these settings: loopback unless told otherwise (its own default is 0.0.0.0), and the
# process role's multiprocess directory (config/metrics_launcher.py), so the worker's endpoint also
# serves the metrics our code records in the worker processes.
os.environ.setdefault("dramatiq_prom_host", env.get("WORKER_METRICS_HOST", "127.0.0.1"))
os.environ.setdefault("dramatiq_prom_port", env.get("WORKER_METRICS_PORT", "9191"))
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["dramatiq_prom_db"] = os.environ["PROMETHEUS_MULTIPROC_DIR"]

# --- Auth, i18n, static --------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", "简体中文"), ("en", "English")]
TIME_ZONE = env.get("TIME_ZONE", "Asia/Shanghai")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": media_storage(env.get),
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Media files are never served from MEDIA_URL: the agent screens serve them through a view that
# checks access (tickets/views.py); S3-compatible storage: docs/DEPLOYMENT.md.
MEDIA_ROOT = env.MEDIA_ROOT
# The largest file we download from WeCom or accept from an agent (WeCom's own largest, a file, is 20 MB).
MEDIA_MAX_BYTES = env.get_int("MEDIA_MAX_BYTES", 20 * 1024 * 1024)
# A customer's media neither stored nor refused this long after arrival lost its job: the sweeper retries.
MEDIA_SWEEP_AFTER_SECONDS = env.get_int("MEDIA_SWEEP_AFTER_SECONDS", 300)

# Knowledge-base embeddings (docs/KNOWLEDGE.md, "Embeddings"): "off" leaves retrieval lexical and enqueues no embed job.
KB_EMBEDDINGS = env.get("KB_EMBEDDINGS", "on")
# The platform's sensitive words (conversations/services/sensitive_words.py): one per line; empty: none.
SENSITIVE_WORDS_FILE = env.get("SENSITIVE_WORDS_FILE", str(BASE_DIR / "conversations" / "data" / "sensitive_words.txt"))
# Vector search (kb/vectors.py): "auto" uses pgvector's HNSW index when the database has the extension and the
# index is in sync, else the exact in-process search; "exact" or "pgvector" force one. The exact search caches
# each tenant's vectors in every process, up to KB_VECTOR_CACHE_MB (10,000 entries x 2 x 512 dims: 40 MB).
KB_VECTOR_BACKEND = env.get("KB_VECTOR_BACKEND", "auto")
KB_VECTOR_CACHE_MB = env.get_int("KB_VECTOR_CACHE_MB", 256)
KB_VECTOR_EF_SEARCH = env.get_int("KB_VECTOR_EF_SEARCH", 100)  # HNSW candidates per search: recall vs time

# --- REST API -------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "config.api_schema.ApiAutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "conversations.api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # A key or staff; a key only within its scopes (each view's api_scope; docs/API.md, "Scopes").
    "DEFAULT_PERMISSION_CLASSES": ["conversations.api.permissions.HasApiScope"],
    # Per key (its own rate) and per staff user (API_STAFF_RATE_PER_MINUTE), in Redis: 429 with Retry-After.
    "DEFAULT_THROTTLE_CLASSES": ["conversations.api.throttling.ApiKeyRateThrottle"],
    "DEFAULT_PAGINATION_CLASS": "config.api_pagination.Pagination",
    "PAGE_SIZE": 100,
    # Bodies are JSON (the browsable API's forms send JSON too); anything else is 415.
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    # ?field=value filters (each list's FilterSet) and ?ordering=field,-other (each list's ordering_fields).
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    # Every error is {"detail": ..., "code": ...} (docs/API.md).
    "EXCEPTION_HANDLER": "config.api_errors.api_exception_handler",
}
# The API request rate of a signed-in staff user (the browsable API, Swagger UI); keys have their own.
API_STAFF_RATE_PER_MINUTE = env.get_int("API_STAFF_RATE_PER_MINUTE", 600)
SPECTACULAR_SETTINGS = {
    "TITLE": "WeCom Desk API",
    "DESCRIPTION": "A tenant's REST API: send `Authorization: Api-Key <key>`. Conventions, errors, "
                   "pagination and filtering: docs/API.md.",
    "VERSION": "0.1.0",
    # The schema is the tenant's: for its integrators (a key) and its staff (the docs pages' session).
    "SERVE_PERMISSIONS": ["conversations.api.permissions.IsIntegrationOrStaff"],
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "config.api_schema.add_tenant_server"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "persistAuthorization": True, "validatorUrl": None},
    # Fields named alike with different choices get one named enum each (else a warning, and a made-up name).
    "ENUM_NAME_OVERRIDES": {
        # One name per choice set that several fields share, or that shares a field name with another set.
        "OutboundStatusEnum": "conversations.models.OutboundMessage.Status",
        "InboundStatusEnum": "conversations.models.InboundMessage.Status",
        "WeComAppKindEnum": "conversations.models.WeComApp.Kind",
        "MediaKindEnum": "conversations.api.conversations.MEDIA_KINDS",
        "MediaStatusEnum": "conversations.api.conversations.MEDIA_STATUSES",
        "WebhookDeliveryStatusEnum": "conversations.webhooks.models.WebhookDelivery.Status",
        "TicketStatusEnum": "tickets.models.Ticket.Status",
        "SettableTicketStatusEnum": "tickets.api.serializers.SETTABLE_STATUS_CHOICES",  # POST /api/tickets/{id}/status/
    },
    "TAGS": [
        {"name": "audit-log", "description": "Every write through the API and the admin's sensitive actions"},
        {"name": "dead-letters", "description": "Outbound messages that went dead; re-send them"},
        {"name": "desk-settings", "description": "The tenant's answering policy"},
        {"name": "fallback-scripts", "description": "What customers get when the AI cannot answer"},
        {"name": "knowledge", "description": "Knowledge entries and search"},
        {"name": "messages", "description": "Inbound messages: their trace from callback to delivery"},
        {"name": "webhook-deliveries", "description": "Each event's delivery to each endpoint; re-send dead ones"},
        {"name": "webhook-endpoints", "description": "Where the tenant's events are POSTed, signed (docs: Webhooks)"},
    ],
}

# Outbound URL safety (tenants/outbound_urls.py): URLs tenants give us (the AI provider's base URL, webhooks)
# may not reach private, loopback, link-local, multicast or reserved addresses unless this is on. On in local
# and test settings (the sandbox and model run on 127.0.0.1); off in production unless the environment says so.
ALLOW_PRIVATE_OUTBOUND_URLS = env.get_bool("ALLOW_PRIVATE_OUTBOUND_URLS", False)

# --- Logging: structured events through structlog -----------------------------
LOG_LEVEL = env.get("LOG_LEVEL", "INFO")
LOG_FORMAT = env.get("LOG_FORMAT", "console")  # console | json
LOGGING = configure_logging(level=LOG_LEVEL, fmt=LOG_FORMAT)
LOGGING_CONFIG = "config.logging.apply_logging"  # dictConfig, then uvicorn's own handlers through ours

WECOM_API_BASE = env.WECOM_API_BASE
# Oldest callback timestamp accepted; WeCom's redeliveries come within ~20 s.
WECOM_CALLBACK_MAX_AGE_SECONDS = env.get_int("WECOM_CALLBACK_MAX_AGE_SECONDS", 300)
WECOM_CALLBACK_MAX_BYTES = env.get_int("WECOM_CALLBACK_MAX_BYTES", 64 * 1024)
WECOM_HTTP_TIMEOUT_SECONDS = float(env.get("WECOM_HTTP_TIMEOUT_SECONDS", "10"))
# Inbound rows still unprocessed this long after their last enqueue are enqueued again.
INBOUND_SWEEP_AFTER_SECONDS = env.get_int("INBOUND_SWEEP_AFTER_SECONDS", 60)

# Answering works in rounds over many contacts at once (conversations/services/answering/):
# at most this many contacts per claim, their model calls and WeCom sends side by side on a
# per-process pool of IO_CONCURRENCY threads (a model answering in seconds must not serialise them).
ANSWER_BATCH_CONTACTS = env.get_int("ANSWER_BATCH_CONTACTS", 50)
# Threads of one worker process answering one tenant at a time: fewer claimers, bigger rounds;
# each claimer has up to ANSWER_BATCH_CONTACTS model calls in flight. One: a second claimer's round
# in the same process made both slower than their CPU explains (most likely the GIL: each of their
# many short database and Redis calls waits to get it back). A claimer waiting for a slow model lends its
# slot meanwhile (answering/claiming.py, docs/BENCHMARKS.md "Pipeline").
ANSWER_CLAIMERS_PER_PROCESS = env.get_int("ANSWER_CLAIMERS_PER_PROCESS", 1)
IO_CONCURRENCY = env.get_int("IO_CONCURRENCY", 32)

# Platform-wide ceiling on answered messages (all tenants), in `limits` notation.
GLOBAL_RATE_LIMIT = env.get("GLOBAL_RATE_LIMIT", "20000/minute")
# Outbound pacing: our own per-app ceiling (below WeCom's per-corp API limits) and per member
# (WeCom silently drops more than 30 messages a minute to one member: we wait instead).
OUTBOUND_APP_RATE_LIMIT = env.get("OUTBOUND_APP_RATE_LIMIT", "3000/minute")
OUTBOUND_MEMBER_PER_MINUTE = env.get_int("OUTBOUND_MEMBER_PER_MINUTE", 28)
OUTBOUND_MAX_ATTEMPTS = env.get_int("OUTBOUND_MAX_ATTEMPTS", 8)
OUTBOUND_RETRY_BASE_SECONDS = float(env.get("OUTBOUND_RETRY_BASE_SECONDS", "2"))
OUTBOUND_RETRY_MAX_SECONDS = float(env.get("OUTBOUND_RETRY_MAX_SECONDS", "300"))
# A row left "sending" this long (the worker died mid-call) is sent again; WeCom's duplicate
# check (message/send) or our kf msgid makes the second call a no-op if the first got through.
OUTBOUND_SENDING_TIMEOUT_SECONDS = env.get_int("OUTBOUND_SENDING_TIMEOUT_SECONDS", 60)
WECOM_DUPLICATE_CHECK_SECONDS = env.get_int("WECOM_DUPLICATE_CHECK_SECONDS", 1800)

# Fernet keys for secrets at rest, newest first (rotation: prepend, re-encrypt, drop).
FIELD_ENCRYPTION_KEYS = env.get_list("FIELD_ENCRYPTION_KEYS") or [derive_dev_key(SECRET_KEY)]
