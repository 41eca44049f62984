# WeCom Desk's one image: the roles of platform/entrypoint.sh (web, websocket, worker, scheduler, migrate, check) on a slim
# Python 3.11, as a non-root user. docs/DEPLOYMENT.md says how compose.yaml and platform/k8s/ run it.
#
#   docker build -t wecomdesk .
#   docker run --env-file prod.env wecomdesk migrate && docker run --env-file prod.env -p 8000:8000 wecomdesk web

# -- build: compile every pinned requirement into a wheel (gcc and headers stay in this stage) -------------
FROM python:3.11-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends build-essential libpq-dev \
    && rm -rf /var/lib/apt/lists/*
COPY requirements.txt /tmp/requirements.txt
RUN pip wheel --no-cache-dir --wheel-dir /wheels -r /tmp/requirements.txt

# -- run -------------------------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=config.settings.production \
    HOST=0.0.0.0 PORT=8000 \
    METRICS_DIR=/tmp/wecomdesk-metrics MEDIA_ROOT=/data/media
# libpq for psycopg, tini as PID 1 so SIGTERM reaches the role and zombies are reaped
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 --user-group wecomdesk \
    && mkdir -p /data/media && chown wecomdesk:wecomdesk /data/media
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels /wheels/* && rm -rf /wheels
WORKDIR /app
COPY --chown=wecomdesk:wecomdesk . /app
# Static files are part of the image (whitenoise serves them): collected with throw-away settings values.
RUN SECRET_KEY=build-only-not-a-secret-0123456789-abcdefghijklmnopqrstuvwxyz ALLOWED_HOSTS=localhost \
    FIELD_ENCRYPTION_KEYS=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= \
    DATABASE_URL=postgresql://build@localhost/build REDIS_URL=redis://localhost:6379/0 \
    python manage.py collectstatic --noinput --verbosity 0
USER wecomdesk
EXPOSE 8000 9191 9192
ENTRYPOINT ["/usr/bin/tini", "--", "/app/platform/entrypoint.sh"]
CMD ["web"]
