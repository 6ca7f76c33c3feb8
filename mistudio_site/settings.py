"""miStudio settings: one module, driven by environment variables (see docs/operating.md, "Configuration")."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF

from .env import (
    BadSetting,
    env_bool,
    env_int,
    env_list,
    env_path,
    env_str,
    make_private,
    private_dir,
    secret_key_from,
    token_keys_from,
)

# What the studio writes is for its own user alone: the database holds sessions, password hashes
# and encrypted tokens, next to the secret key, the models and the activations. Set before any
# file is made, in every process that loads the settings (web server, workers, commands) and in
# their children (the download's transfer process); huggingface_hub follows it for its blobs.
os.umask(0o077)

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = private_dir(env_path("MISTUDIO_DATA_DIR", BASE_DIR / "data"))
MODELS_DIR = DATA_DIR / "models"
HF_CACHE_DIR = MODELS_DIR / "hub"
QUANTIZED_DIR = MODELS_DIR / "quantized"
DATASETS_DIR = DATA_DIR / "datasets"
ACTIVATIONS_DIR = DATA_DIR / "activations"

SECRET_KEY = secret_key_from(DATA_DIR)
TOKEN_KEYS = token_keys_from(DATA_DIR)  # access tokens at rest (models_app/token_crypto.py)
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# None lets huggingface_hub use HF_ENDPOINT itself; read per call so a mirror set later counts.
HF_ENDPOINT = env_str("HF_ENDPOINT") or None

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "channels",
    "django_q",
    "csp",
    "ninja",  # the API page's Swagger UI, served from the package
    "models_app",
    "templates_app",
    "axes",  # login lockout: its records live in the database
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "models_app.middleware.QueueUnavailableMiddleware",
    "axes.middleware.AxesMiddleware",  # last: it turns a refused login into the lockout page
]

ROOT_URLCONF = "mistudio_site.urls"
ASGI_APPLICATION = "mistudio_site.asgi.application"
WSGI_APPLICATION = None

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
                "models_app.context_processors.section",
            ],
        },
    },
]

DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(DATA_DIR / "db.sqlite3"),
            # The web server and the worker write at the same time: WAL lets readers go on
            # while one writer commits, and IMMEDIATE avoids upgrade deadlocks.
            "OPTIONS": {
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
    for suffix in ("", "-wal", "-shm"):  # a database from before the studio kept its files private
        make_private(DATA_DIR / f"db.sqlite3{suffix}")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    # channels_redis waits for messages with a 5 s blocking pop; redis-py's default 5 s read
    # timeout races it and drops idle pages' consumers, so the socket timeout is longer.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 15}]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Django-Q2: downloads have their own cluster (queue) so they never wait behind GPU work; GPU
# jobs (extractions) run one at a time per "gpu" cluster: start one per GPU.
DOWNLOAD_CLUSTER = "downloads"
GPU_CLUSTER = "gpu"
JOB_TIMEOUT = env_int("MISTUDIO_JOB_TIMEOUT", 6 * 3600)
# A running job writes a heartbeat this often; one silent for JOB_STALE_SECONDS has lost its
# worker (killed, out of memory, machine gone) and is failed by whoever notices first.
JOB_HEARTBEAT_SECONDS = env_int("MISTUDIO_HEARTBEAT_SECONDS", 5)
JOB_STALE_SECONDS = env_int("MISTUDIO_STALE_SECONDS", 30)
# An extraction checkpoints this often (ml/checkpoint.py): the most work a killed worker loses.
EXTRACTION_CHECKPOINT_SECONDS = env_int("MISTUDIO_CHECKPOINT_SECONDS", 5)
# Repository code (trust_remote_code) runs Python from the Hub in the worker: only staff may
# ask for it, and only when the operator allows it here.
ALLOW_REMOTE_CODE = env_bool("MISTUDIO_ALLOW_REMOTE_CODE", False)
# Who may download with the operator's Hub credentials (HF_TOKEN or a cached login) when they
# give no token: staff (default), everyone or nobody. The terminal commands are the operator's.
OPERATOR_TOKEN_FOR = env_str("MISTUDIO_OPERATOR_TOKEN", "staff")
if OPERATOR_TOKEN_FOR not in ("staff", "everyone", "nobody"):
    raise BadSetting(f"MISTUDIO_OPERATOR_TOKEN={OPERATOR_TOKEN_FOR!r} must be staff, everyone or nobody")
# Everyone signed in reads every record (a shared studio) unless this scopes each user's lists
# and pages to their own records; staff see all either way (models_app/models/owned.py).
PRIVATE = env_bool("MISTUDIO_PRIVATE", False)
_Q_COMMON = {
    "timeout": JOB_TIMEOUT,
    "retry": JOB_TIMEOUT + 60,  # redelivery only after the timeout has stopped the first try
    "max_attempts": 1,
    "ack_failures": True,
    "catch_up": False,
    "label": "Jobs",
}
if REDIS_URL:
    _Q_COMMON["redis"] = REDIS_URL
else:
    _Q_COMMON["orm"] = "default"
    _Q_COMMON["poll"] = 0.5
Q_CLUSTER = {
    "name": DOWNLOAD_CLUSTER,
    "workers": env_int("MISTUDIO_DOWNLOAD_WORKERS", 1),
    **_Q_COMMON,
    "ALT_CLUSTERS": {GPU_CLUSTER: {"workers": 1}},
}
# Models a worker keeps loaded between extractions (footprint bytes, least recently used released
# first; 0: none). Unset: a quarter of the machine's memory, half the GPU's on a GPU worker.
WORKER_MODEL_CACHE_BYTES = (
    env_int("MISTUDIO_WORKER_MODEL_CACHE_BYTES", 0)
    if env_str("MISTUDIO_WORKER_MODEL_CACHE_BYTES").strip()
    else None
)
if WORKER_MODEL_CACHE_BYTES is not None and WORKER_MODEL_CACHE_BYTES < 0:
    raise BadSetting("MISTUDIO_WORKER_MODEL_CACHE_BYTES must be 0 or more")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "models_app:index"
LOGOUT_REDIRECT_URL = "login"

# Login lockout (django-axes): LOGIN_FAILURE_LIMIT failed logins for one username, or from one
# address, within LOGIN_COOLOFF minutes refuse every login of that username / from that address,
# the right password included, until LOGIN_COOLOFF minutes have passed since the last failure.
# Attempts while locked out are not counted, so waiting out the cool-off always ends it. The
# studio and admin logins go through it; API tokens and the terminal do not authenticate here.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
LOGIN_FAILURE_LIMIT = env_int("MISTUDIO_LOGIN_FAILURE_LIMIT", 20)
LOGIN_COOLOFF_MINUTES = env_int("MISTUDIO_LOGIN_COOLOFF_MINUTES", 10)
if LOGIN_FAILURE_LIMIT < 1 or LOGIN_COOLOFF_MINUTES < 1:
    raise BadSetting("MISTUDIO_LOGIN_FAILURE_LIMIT and MISTUDIO_LOGIN_COOLOFF_MINUTES must be at least 1")
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "mistudio_site.lockout.lockout_page"
AXES_CLIENT_IP_CALLABLE = "mistudio_site.lockout.client_address"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
WHITENOISE_USE_FINDERS = True  # serve straight from static/ and app folders: no collectstatic step
WHITENOISE_AUTOREFRESH = DEBUG

# Uploads over 2.5 MB stream to a temporary file (never into memory); larger than this is refused.
MAX_UPLOAD_BYTES = env_int("MISTUDIO_MAX_UPLOAD_BYTES", 1 << 30)
# ...in the data directory, on the disk the dataset will use, so keeping one is a rename.
FILE_UPLOAD_TEMP_DIR = DATA_DIR / "tmp"
FILE_UPLOAD_TEMP_DIR.mkdir(exist_ok=True)
# A request's headers must arrive within REQUEST_GRACE_SECONDS, and its body at BODY_MIN_RATE
# bytes a second on average once that long has passed, or the server drops it (server.py).
REQUEST_GRACE_SECONDS = env_int("MISTUDIO_REQUEST_GRACE_SECONDS", 10)
BODY_MIN_RATE = env_int("MISTUDIO_BODY_MIN_RATE", 1024)
# Bodies that are not files (a form, an API call's JSON) up to this size: room for a 5 MB
# templates file posted to the API.
DATA_UPLOAD_MAX_MEMORY_SIZE = 6 * 1024 * 1024

# Error reports (the DEBUG page, mails to ADMINS) hide tokens in every frame and header.
DEFAULT_EXCEPTION_REPORTER_FILTER = "models_app.token_crypto.ErrorReportFilter"

# Content-Security-Policy (django-csp, docs/operating.md): everything a page loads or talks
# to comes from the studio itself; no inline script, eval or inline style (pages use static/js and
# CSS classes), so injected markup cannot run or restyle anything. 'self' in connect-src also
# admits the live websocket on the same host and port (ws: under http, wss: under https).
# Exceptions are scoped to the one view that needs them (the API docs, models_app/api).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [NONE],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF],
        "font-src": [SELF],
        "connect-src": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "base-uri": [NONE],
        "object-src": [NONE],
    },
}

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads it from the page's hx-headers, not the cookie

# Served over HTTPS by a TLS-terminating proxy (MISTUDIO_HTTPS=1): cookies travel only over
# HTTPS, browsers are told to use HTTPS only (HSTS), the proxy's X-Forwarded-Proto is trusted
# (the proxy must set it, and strip it from clients), and each allowed host is a trusted CSRF
# origin over HTTPS. `manage.py check --deploy` is clean with it (a test runs it).
HTTPS = env_bool("MISTUDIO_HTTPS", False)
if HTTPS:
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("MISTUDIO_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("MISTUDIO_HSTS_SECONDS", 365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("MISTUDIO_HSTS_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("MISTUDIO_HSTS_PRELOAD", True)
    CSRF_TRUSTED_ORIGINS = CSRF_TRUSTED_ORIGINS + [
        f"https://{host.lstrip('.')}" for host in ALLOWED_HOSTS if host != "*"
    ]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # Request URLs can carry nothing secret here, but huggingface_hub's debug logs print
        # headers; keep it at WARNING so an Authorization header never reaches a log.
        "huggingface_hub": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
        # Its start-up banner would be a line on the terminal of every manage.py command.
        "axes.apps": {"level": "WARNING"},
    },
}
