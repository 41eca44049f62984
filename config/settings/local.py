"""Developer machine and `make run`."""

from config import env
from config.settings.base import *  # noqa: F403

DEBUG = env.get_bool("DEBUG", True)
ALLOWED_HOSTS = env.get_list("ALLOWED_HOSTS", ["*"])
# Serve static files straight from the apps, no collectstatic needed locally.
WHITENOISE_USE_FINDERS = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# `make run` starts the WeCom sandbox here (platform/Procfile.dev).
WECOM_API_BASE = env.get("WECOM_API_BASE", "http://127.0.0.1:8090")
# The sandbox and a local model listen on 127.0.0.1 (tenants/outbound_urls.py).
ALLOW_PRIVATE_OUTBOUND_URLS = env.get_bool("ALLOW_PRIVATE_OUTBOUND_URLS", True)
