"""Django settings, read from SLIPWAY_* environment variables with embedded defaults.

SLIPWAY_ENV=production turns DEBUG off, requires SLIPWAY_SECRET_KEY, and turns on
the HTTPS settings that `manage.py check --deploy` asks for.
"""

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), not {value!r}")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}") from None


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


SLIPWAY_ENV = env_str("SLIPWAY_ENV", "development")
if SLIPWAY_ENV not in {"development", "production"}:
    raise ImproperlyConfigured(
        f"SLIPWAY_ENV must be 'development' or 'production', not {SLIPWAY_ENV!r}"
    )
PRODUCTION = SLIPWAY_ENV == "production"

if PRODUCTION:
    DEBUG = False
    SECRET_KEY = os.environ.get("SLIPWAY_SECRET_KEY", "")
    if not SECRET_KEY:
        raise ImproperlyConfigured(
            "SLIPWAY_ENV=production needs SLIPWAY_SECRET_KEY (50 or more random characters)"
        )
else:
    DEBUG = env_bool("SLIPWAY_DEBUG", True)
    SECRET_KEY = env_str(
        "SLIPWAY_SECRET_KEY", "django-insecure-slipway-development-key-do-not-use-in-production"
    )

ALLOWED_HOSTS = env_list("SLIPWAY_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("SLIPWAY_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    # daphne first, so that `manage.py runserver` serves ASGI with daphne.
    "daphne",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "webui",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "webui.urls"

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

ASGI_APPLICATION = "webui.asgi.application"

# The embedded defaults: SQLite and the in-memory channel layer (DESIGN.md,
# decision 8). Bigger installs swap in PostgreSQL and channels-redis here.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": env_str("SLIPWAY_DB_PATH", str(BASE_DIR / "db.sqlite3")),
    }
}

CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("SLIPWAY_STATIC_ROOT", str(BASE_DIR / "staticfiles")))
# Whether daphne serves /static/ itself (Django's ASGIStaticFilesHandler, see
# webui/asgi.py). On by default in development. In production, run
# `manage.py collectstatic` and let the HTTPS proxy serve STATIC_ROOT, or set this.
SLIPWAY_SERVE_STATIC = env_bool("SLIPWAY_SERVE_STATIC", DEBUG)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if PRODUCTION:
    # Slipway expects to sit behind an HTTPS proxy in production.
    SECURE_SSL_REDIRECT = env_bool("SLIPWAY_SSL_REDIRECT", True)
    # Load balancers probe /healthz over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SECURE_HSTS_SECONDS = env_int("SLIPWAY_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SLIPWAY_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SLIPWAY_HSTS_PRELOAD", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # Trust X-Forwarded-Proto only when the proxy in front sets it.
    if env_bool("SLIPWAY_TRUST_X_FORWARDED_PROTO", False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
