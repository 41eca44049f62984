"""WSGI entry point: plain HTTP (admin, API, WeCom callbacks, agent pages), served by gunicorn (config/gunicorn.py).

The WebSocket routes (/ws/, /t/<slug>/ws/) need the ASGI app (config/asgi.py), which a process of its own
serves beside this one (docs/DEPLOYMENT.md, "Processes"). Django costs about a third less CPU per request
here than through ASGI: no thread hop per request for the synchronous views and middleware.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

from config.telemetry import configure as configure_telemetry  # noqa: E402

# Before the handler builds its middleware chain: Django's tracing middleware must be in it (config/telemetry.py).
# gunicorn loads this module in each worker after the fork (no preload_app), so the exporter's thread is the worker's.
configure_telemetry("web")

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
