"""The deployment files, checked offline (docs/DEPLOYMENT.md): compose.yaml against the Compose specification,
the Kubernetes overlays rendered by kustomize and validated against Kubernetes' own schemas, and what the files
must agree on with the code — every queue a job uses is drained by exactly one worker pool, which KEDA scales on
exactly those queues, and every grace period outlasts the drain it waits for. The image's entrypoint roles are
run for real, outside a container (Docker cannot run here)."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import kubernetes_validate
import pytest
import yaml
from django.conf import settings

from conversations import jobs as conversation_jobs
from kb import jobs as kb_jobs
from tenants.dramatiq import Job
from testing.processes import LiveProcess, free_port, live_env
from testing.waiting import wait_until
from tickets import jobs as ticket_jobs

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = ["redis-broker", "rabbitmq-broker"]
KUBERNETES_VERSION = "1.30.0"  # the oldest Kubernetes we support (PodDisruptionBudget v1, HPA v2, ...)
ENTRYPOINT = ROOT / "platform" / "entrypoint.sh"


def job_queues() -> set[str]:
    return {value.queue_name for module in (conversation_jobs, ticket_jobs, kb_jobs)
            for value in vars(module).values() if isinstance(value, Job)}


def render(overlay: str) -> list[dict]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed to render the manifests: scripts/ensure_kubectl.sh (make test runs it)"
    out = subprocess.run([kubectl, "kustomize", str(ROOT / "platform" / "k8s" / "overlays" / overlay)],
                         capture_output=True, text=True, check=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def env_of(deployment: dict) -> dict[str, str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item.get("value", "") for item in container.get("env", [])}


# -- compose --------------------------------------------------------------------------------------------


def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_compose_follows_the_compose_specification():
    result = subprocess.run([str(Path(sys.executable).parent / "check-jsonschema"), "--builtin-schema",
                             "vendor.compose-spec", str(ROOT / "compose.yaml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_runs_every_role_and_drains_every_queue_once():
    services = compose()["services"]
    commands = {name: service.get("command") for name, service in services.items()}
    assert commands["migrate"] == ["migrate"] and commands["web"] == ["web"] and commands["scheduler"] == ["scheduler"]
    assert commands["websocket"] == ["websocket"]
    pools = {name: service["environment"]["WORKER_QUEUES"].split() for name, service in services.items()
             if commands[name] == ["worker"]}
    drained = [queue for queues in pools.values() for queue in queues]
    assert sorted(drained) == sorted(job_queues())  # every queue once, no queue nobody uses
    for name in [*pools, "web", "websocket"]:  # the roles wait for the migrations and their brokers
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    for name in pools:  # longer than the worker's drain (WORKER_SHUTDOWN_MS, 25 s by default)
        assert int(services[name]["stop_grace_period"].rstrip("s")) > 25
    for name in ("web", "websocket"):  # longer than their drain (WEB_GRACEFUL_SECONDS, 20 s by default)
        assert int(services[name]["stop_grace_period"].rstrip("s")) > 20


def test_compose_serves_web_and_websocket_behind_one_address():
    services = compose()["services"]
    published = {name: service["ports"] for name, service in services.items() if "ports" in service}
    assert "web" not in published and "websocket" not in published
    assert published["front"] == ["8000:8000"]
    assert services["front"]["image"].startswith("caddy:")
    [mount] = services["front"]["volumes"]
    caddyfile = (ROOT / mount.split(":")[0]).read_text()
    # The socket routes, by host (/ws/) or under /t/<slug>/, to uvicorn; the rest to gunicorn.
    assert "@websocket path_regexp ^(/t/[^/]+)?/ws/" in caddyfile
    assert "reverse_proxy websocket:8000" in caddyfile and "reverse_proxy web:8000" in caddyfile
    pattern = re.compile(r"^(/t/[^/]+)?/ws/")
    assert all(pattern.match(path) for path in ("/ws/agent/", "/t/alpha/ws/agent/"))
    assert not any(pattern.match(path) for path in ("/agent/", "/t/alpha/agent/", "/t/alpha/wecom/callback/x/"))
    scraped = yaml.safe_load((ROOT / "platform" / "compose" / "prometheus.yml").read_text())["scrape_configs"]
    [web_job] = [job for job in scraped if job["job_name"] == "wecomdesk-web"]
    assert web_job["static_configs"][0]["targets"] == ["web:8000", "websocket:8000"]


# -- Kubernetes -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_renders_and_every_object_is_valid_kubernetes(overlay):
    docs = render(overlay)
    ids = [(doc["kind"], doc["metadata"].get("namespace"), doc["metadata"]["name"]) for doc in docs]
    assert len(ids) == len(set(ids)), "an object is defined twice"
    assert {namespace for kind, namespace, _ in ids if kind != "Namespace"} == {"wecomdesk"}
    for doc in docs:
        if doc["apiVersion"].startswith("keda.sh/"):
            continue  # a CRD: checked against the workers below
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    assert {"Deployment", "Service", "Job", "PodDisruptionBudget", "HorizontalPodAutoscaler", "Secret",
            "ConfigMap", "ScaledObject", "Ingress"} <= {kind for kind, _, _ in ids}


def test_one_ingress_sends_the_websocket_routes_to_uvicorn_and_the_rest_to_gunicorn():
    docs = render("redis-broker")
    deployments, services = by_kind(docs, "Deployment"), by_kind(docs, "Service")
    assert deployments["web"]["spec"]["template"]["spec"]["containers"][0]["args"] == ["web"]
    assert deployments["websocket"]["spec"]["template"]["spec"]["containers"][0]["args"] == ["websocket"]
    for name in ("web", "websocket"):  # each Service selects its own pods, on the port the container names
        assert services[name]["spec"]["selector"] == deployments[name]["spec"]["selector"]["matchLabels"]
        ports = deployments[name]["spec"]["template"]["spec"]["containers"][0]["ports"]
        assert [port["name"] for port in ports] == [services[name]["spec"]["ports"][0]["targetPort"]]
    [ingress] = by_kind(docs, "Ingress").values()
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/use-regex"] == "true"
    hosts = ingress["spec"]["rules"]
    assert [rule["host"] for rule in hosts] == ["desk.example.com", "*.desk.example.com"]
    allowed = by_kind(docs, "ConfigMap")["wecomdesk-config"]["data"]["ALLOWED_HOSTS"].split(",")
    assert allowed == ["desk.example.com", ".desk.example.com"]  # every host routed is a host Django accepts
    for rule in hosts:
        routes = [(path["path"], path["pathType"], path["backend"]["service"]["name"],
                   path["backend"]["service"]["port"]["name"]) for path in rule["http"]["paths"]]
        assert routes == [("/ws/", "Prefix", "websocket", "http"),
                          ("/t/[^/]+/ws/", "ImplementationSpecific", "websocket", "http"),
                          ("/", "Prefix", "web", "http")]
        regex = re.compile(routes[1][0])
        assert regex.match("/t/alpha/ws/agent/") and not regex.match("/t/alpha/agent/")
    # Both tiers scale on CPU and keep a pod through voluntary disruptions.
    autoscalers = by_kind(docs, "HorizontalPodAutoscaler")
    budgets = by_kind(docs, "PodDisruptionBudget")
    for name in ("web", "websocket"):
        assert autoscalers[name]["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                                               "name": name}
        [metric] = autoscalers[name]["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"
        assert autoscalers[name]["spec"]["minReplicas"] >= 2
        assert budgets[name]["spec"]["minAvailable"] == 1
        assert budgets[name]["spec"]["selector"] == deployments[name]["spec"]["selector"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keda_scales_each_worker_pool_on_exactly_its_queues(overlay):
    docs = render(overlay)
    deployments = by_kind(docs, "Deployment")
    pools = {name: env_of(deployment)["WORKER_QUEUES"].split() for name, deployment in deployments.items()
             if deployment["spec"]["template"]["spec"]["containers"][0]["args"] == ["worker"]}
    assert sorted(queue for queues in pools.values() for queue in queues) == sorted(job_queues())
    scaled = by_kind(docs, "ScaledObject")
    assert set(scaled) == set(pools)
    for name, queues in pools.items():
        spec = scaled[name]["spec"]
        assert spec["scaleTargetRef"]["name"] == name
        assert spec["minReplicaCount"] >= 1  # never to zero: a delayed retry must find a worker
        if overlay == "redis-broker":
            assert [t["type"] for t in spec["triggers"]] == ["redis"] * len(queues)
            assert [t["metadata"]["listName"] for t in spec["triggers"]] == [
                f"{settings.DRAMATIQ_NAMESPACE}:{queue}" for queue in queues]
        else:
            assert [t["metadata"]["queueName"] for t in spec["triggers"]] == queues
            auth = {t["authenticationRef"]["name"] for t in spec["triggers"]}
            assert auth == set(by_kind(docs, "TriggerAuthentication"))
    if overlay == "redis-broker":
        assert "REDIS_BROKER_ADDRESS" in by_kind(docs, "ConfigMap")["wecomdesk-config"]["data"]
    else:
        secret = by_kind(docs, "Secret")["wecomdesk-secrets"]["stringData"]
        assert secret["BROKER_URL"].startswith("amqp://")
        refs = by_kind(docs, "TriggerAuthentication")["rabbitmq-broker"]["spec"]["secretTargetRef"]
        assert [(ref["name"], ref["key"]) for ref in refs] == [("wecomdesk-secrets", "BROKER_URL")]


def test_grace_periods_outlast_the_drains_and_probes_use_the_health_endpoints():
    docs = render("redis-broker")
    deployments = by_kind(docs, "Deployment")
    for name in ("web", "websocket"):
        web = deployments[name]["spec"]["template"]["spec"]
        container = web["containers"][0]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
        assert web["terminationGracePeriodSeconds"] > pre_stop + int(env_of(deployments[name])["WEB_GRACEFUL_SECONDS"])
        assert deployments[name]["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    for name, deployment in deployments.items():
        spec = deployment["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        if spec["containers"][0]["args"] == ["worker"]:
            assert spec["terminationGracePeriodSeconds"] * 1000 > int(env_of(deployment)["WORKER_SHUTDOWN_MS"]), name
    assert deployments["scheduler"]["spec"]["replicas"] == 2  # a standby; the Redis lock keeps one leader
    migrate = by_kind(docs, "Job")["migrate"]["spec"]["template"]["spec"]["containers"][0]
    assert migrate["args"] == ["migrate"]


def test_the_image_is_multi_stage_slim_non_root_and_starts_through_the_entrypoint():
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("FROM ")]
    assert len(stages) == 2 and all(stage.startswith("python:3.11-slim") for stage in stages)
    assert "\nUSER wecomdesk\n" in dockerfile
    assert 'ENTRYPOINT ["/usr/bin/tini", "--", "/app/platform/entrypoint.sh"]' in dockerfile
    assert "collectstatic" in dockerfile


# -- the entrypoint's roles, outside a container -------------------------------------------------------


def entrypoint(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ENTRYPOINT), *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=live_env(PYTHON=sys.executable, **env))


def test_an_unknown_role_is_refused_with_the_list_of_roles():
    result = entrypoint("serve")
    assert result.returncode == 64
    assert "unknown role 'serve' (web, websocket, worker, scheduler, migrate, check)" in result.stderr


PRODUCTION = {"DJANGO_SETTINGS_MODULE": "config.settings.production", "ALLOWED_HOSTS": "desk.example.com",
              "SECRET_KEY": "x" * 20 + "0123456789abcdefghijklmnopqrstuvwxyzABCDEF",
              "FIELD_ENCRYPTION_KEYS": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}


def test_the_check_role_passes_djangos_deploy_checks_with_production_settings():
    result = entrypoint("check", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.live
def test_the_migrate_role_migrates_every_schema(tenants_world):
    result = entrypoint("migrate")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[standard:public]" in result.stdout and "alpha" in result.stdout and "beta" in result.stdout


@pytest.mark.live
def test_the_web_role_serves_http_with_gunicorn_and_drains_on_sigterm(tenants_world, tmp_path):
    port = free_port()
    web = LiveProcess("web", ["bash", str(ENTRYPOINT), "web"], tmp_path,
                      live_env(PYTHON=sys.executable, HOST="127.0.0.1", PORT=str(port), WEB_THREADS="2",
                               METRICS_DIR=str(tmp_path / "metrics"), WEB_GRACEFUL_SECONDS="5"))
    try:
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), timeout=30, message=web.output)
        # exec all the way down: the role's process is gunicorn's master, the one SIGTERM reaches
        command = Path(f"/proc/{web.proc.pid}/cmdline").read_bytes().split(b"\0")
        assert command[1:5] == [b"-m", b"gunicorn", b"-c", b"python:config.gunicorn"], command
        assert (tmp_path / "metrics" / "web").is_dir()  # config.metrics_launcher's directory of the role
        web.proc.send_signal(signal.SIGTERM)
        assert web.proc.wait(timeout=15) == 0, web.output()
        assert "Shutting down: Master" in web.output()
    finally:
        web.stop()


@pytest.mark.live
def test_the_websocket_role_serves_the_asgi_app_with_uvicorn_and_drains_on_sigterm(tenants_world, tmp_path):
    port = free_port()
    websocket = LiveProcess("websocket", ["bash", str(ENTRYPOINT), "websocket"], tmp_path,
                            live_env(PYTHON=sys.executable, HOST="127.0.0.1", PORT=str(port),
                                     METRICS_DIR=str(tmp_path / "metrics"), WEB_GRACEFUL_SECONDS="5"))
    try:
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), timeout=30, message=websocket.output)
        assert (tmp_path / "metrics" / "websocket").is_dir()
        websocket.proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal so the exit status says what stopped it
        assert websocket.proc.wait(timeout=15) in (0, -signal.SIGTERM), websocket.output()
        assert "Finished server process" in websocket.output()
    finally:
        websocket.stop()


@pytest.mark.live
def test_the_worker_role_listens_to_its_queues_only_and_stops_on_sigterm(tenants_world, tmp_path):
    worker = LiveProcess("worker", ["bash", str(ENTRYPOINT), "worker"], tmp_path,
                         live_env(PYTHON=sys.executable, WORKER_QUEUES="kb", WORKER_THREADS="1",
                                  METRICS_DIR=str(tmp_path / "metrics"), WORKER_METRICS_PORT=str(free_port()),
                                  WORKER_SHUTDOWN_MS="5000"))
    try:
        wait_until(lambda: "ready for action" in worker.output(), timeout=60, message=worker.output)
        command = Path(f"/proc/{worker.proc.pid}/cmdline").read_bytes().split(b"\0")
        assert [b"--queues", b"kb"] == command[command.index(b"--queues"):command.index(b"--queues") + 2]
        worker.proc.send_signal(signal.SIGTERM)
        assert worker.proc.wait(timeout=30) == 0, worker.output()
    finally:
        worker.stop()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
