#!/usr/bin/env bash
# The image's one entrypoint (Dockerfile): `entrypoint.sh <role> [args...]`. The roles are platform/Procfile's
# processes, ready for a container: listening on 0.0.0.0 where a probe must reach them, and `exec`ed so the
# role is the process that receives SIGTERM (tini forwards it) and drains within the grace period
# (docs/DEPLOYMENT.md, "Graceful shutdown"). Works the same outside a container, from the repository root.
#
#   web        plain HTTP (gunicorn, WSGI: config/gunicorn.py) on $HOST:$PORT, metrics at /metrics
#   websocket  the WebSocket routes (uvicorn, ASGI: config/asgi.py) on $HOST:$PORT, metrics at /metrics; a load
#              balancer sends it /ws/ and /t/<slug>/ws/ (docs/DEPLOYMENT.md, "Processes")
#   worker     Dramatiq; WORKER_QUEUES="inbound ai" limits it to those queues (a pool per queue family)
#   scheduler  periodic jobs; one leader through the Redis lock, the others wait
#   migrate    migrate_schemas for the shared and every tenant schema (a release's Job, before the roles)
#   check      Django's deploy checks with these settings (fails on a warning we have not accepted)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}

role=${1:-web}
shift || true
case "$role" in
  web)
    # WEB_WORKERS, WEB_THREADS and WEB_GRACEFUL_SECONDS are read by config/gunicorn.py
    export HOST=${HOST:-0.0.0.0} PORT=${PORT:-8000}
    exec "$PYTHON" -m config.metrics_launcher web "$PYTHON" -m gunicorn -c python:config.gunicorn "$@" config.wsgi
    ;;
  websocket)
    exec "$PYTHON" -m config.metrics_launcher websocket "$PYTHON" -m uvicorn config.asgi:application \
      --host "${HOST:-0.0.0.0}" --port "${PORT:-8000}" --no-access-log \
      --timeout-graceful-shutdown "${WEB_GRACEFUL_SECONDS:-20}" "$@"
    ;;
  worker)
    queues=()
    if [ -n "${WORKER_QUEUES:-}" ]; then
      read -r -a names <<< "$WORKER_QUEUES"
      queues=(--queues "${names[@]}")
    fi
    export dramatiq_worker_timeout=${WORKER_POLL_MS:-100}
    exec "$PYTHON" -m config.metrics_launcher worker "$PYTHON" manage.py rundramatiq \
      --processes "${WORKER_PROCESSES:-1}" --threads "${WORKER_THREADS:-8}" \
      --worker-shutdown-timeout "${WORKER_SHUTDOWN_MS:-25000}" "${queues[@]}" "$@"
    ;;
  scheduler)
    exec "$PYTHON" manage.py scheduler "$@"
    ;;
  migrate)
    exec "$PYTHON" manage.py migrate_schemas --noinput "$@"
    ;;
  check)
    exec "$PYTHON" manage.py check --deploy --fail-level WARNING "$@"
    ;;
  *)
    echo "entrypoint: unknown role '$role' (web, websocket, worker, scheduler, migrate, check)" >&2
    exit 64
    ;;
esac
