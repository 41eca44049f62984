"""The files of platform/observability/ agree with Prometheus, with Grafana and with the code.

- `promtool` (Prometheus's own checker; scripts/ensure_promtool.sh installs it) accepts the scrape
  configuration and the rules, and the rules' unit tests pass (the alerts fire when they should).
- Every metric a rule or a dashboard names is one the code exports (docs/OBSERVABILITY.md), with labels
  it has and label values the code writes; every alert has a severity and a runbook that exists.
- The dashboards are Grafana dashboards: uid, schemaVersion, panels on the grid, targets on the
  provisioned datasource, and the template variables they use.

The exported metrics are read from the code itself: the modules that define metrics are imported and
prometheus_client's registry, the scheduler's health gauges, django-prometheus and the Dramatiq
Prometheus middleware named in the settings are asked what they export. Renaming a metric in the code
without the rules and dashboards (or the other way round) fails here.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.urls import Resolver404, get_resolver, resolve
from django.utils.module_loading import import_string
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from conversations.models import OutboundMessage
from conversations.vocabulary import ModelOutcome, Outcome, Stage

ROOT = Path(__file__).resolve().parents[2]
OBSERVABILITY = ROOT / "platform" / "observability"
PROMETHEUS_CONFIG = OBSERVABILITY / "prometheus.yml"
RULES = OBSERVABILITY / "rules" / "wecomdesk.rules.yml"
RULE_TESTS = OBSERVABILITY / "tests" / "wecomdesk.rules.test.yml"
DASHBOARDS = sorted((OBSERVABILITY / "grafana" / "dashboards").glob("*.json"))
DATASOURCES = OBSERVABILITY / "grafana" / "provisioning" / "datasources" / "wecomdesk.yml"
RUNBOOKS = ROOT / "docs" / "RUNBOOKS.md"
CONTRACT = ROOT / "docs" / "OBSERVABILITY.md"
PROJECT_PACKAGES = ("config", "tenants", "kb", "conversations", "tickets")
JOBS = {"wecomdesk-web": 8000, "wecomdesk-worker": 9191, "wecomdesk-scheduler": 9192}


# -- promtool -------------------------------------------------------------------------------------------

def promtool_path() -> str:
    """PROMTOOL, else promtool on PATH, else the venv's copy (ensure_promtool.sh without root)."""
    candidates = [os.environ.get("PROMTOOL"), shutil.which("promtool"), str(ROOT / ".venv" / "bin" / "promtool")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail("promtool is missing: run `make promtool` (scripts/ensure_promtool.sh installs Debian's "
                "prometheus package, or copies its promtool into .venv/bin), or point PROMTOOL at one.")


def promtool(*args: str) -> str:
    result = subprocess.run([promtool_path(), *args], capture_output=True, text=True, timeout=60, cwd=ROOT)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def test_promtool_accepts_the_scrape_configuration_and_finds_the_rules():
    output = promtool("check", "config", str(PROMETHEUS_CONFIG))
    assert "SUCCESS: 1 rule files found" in output, output  # the rule_files glob reaches the rules


def test_promtool_accepts_the_rules():
    output = promtool("check", "rules", str(RULES))
    assert f"SUCCESS: {len(all_rules())} rules found" in output, output


def test_the_alerts_fire_as_their_unit_tests_say():
    output = promtool("test", "rules", str(RULE_TESTS))
    assert "SUCCESS" in output, output
    tested = set(re.findall(r'alertname="(\w+)"', RULE_TESTS.read_text()))
    # At least: backlog, dead letters (new and unhandled), breaker, no worker, stale health gauges.
    assert {"WecomdeskInboundBacklog", "WecomdeskDeadLetters", "WecomdeskDeadLettersUnhandled",
            "WecomdeskAIBreakerOpen", "WecomdeskNoWorkerAlive", "WecomdeskHealthGaugesStale"} <= tested
    assert tested <= {rule["alert"] for rule in all_rules() if "alert" in rule}


# -- the scrape configuration ---------------------------------------------------------------------------

def test_the_scrape_jobs_are_the_three_of_the_contract():
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(JOBS)
    contract = CONTRACT.read_text()
    for name, port in JOBS.items():
        targets = [target for static in jobs[name]["static_configs"] for target in static["targets"]]
        assert targets and targets[0].endswith(f":{port}"), (name, targets)
        assert f"`{name}`" in contract and f":{port}/metrics" in contract
    # The web tier is two processes on one machine: gunicorn (web, :8000) and uvicorn (websocket, :8001).
    assert [target for static in jobs["wecomdesk-web"]["static_configs"] for target in static["targets"]] == [
        "127.0.0.1:8000", "127.0.0.1:8001"]
    assert ":8001/metrics" in contract


# -- what the code exports ------------------------------------------------------------------------------

SCRAPE_LABELS = frozenset({"job", "instance"})
# Series Prometheus itself writes: per scrape target, and for the alerting rules.
BUILTIN_SERIES = {
    "up": SCRAPE_LABELS, "scrape_duration_seconds": SCRAPE_LABELS, "scrape_samples_scraped": SCRAPE_LABELS,
    "ALERTS": None, "ALERTS_FOR_STATE": None,  # None: any label (those of the alerts)
}
DEFINES_A_METRIC = re.compile(r"\b(?:Counter|Gauge|Histogram|Summary|Info|Enum|TenantCounter|TenantHistogram"
                              r"|HealthGauge|GaugeMetricFamily|CounterMetricFamily)\(\s*[\"']")


def _import_metric_modules() -> list[str]:
    """Import every production module of the project that defines a metric (its name as a string literal)."""
    imported = []
    for package in PROJECT_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if {"tests", "migrations", "settings"} & set(parts) or not DEFINES_A_METRIC.search(path.read_text()):
                continue
            module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            importlib.import_module(module)
            imported.append(module)
    return imported


def _series(name: str, kind: str, labels) -> dict[str, frozenset[str]]:
    """The series names a metric family of this type exposes, each with its label names."""
    labels = frozenset(labels)
    if kind == "counter":
        return {f"{name}_total": labels, f"{name}_created": labels}
    if kind == "histogram":
        return {f"{name}_bucket": labels | {"le"}, f"{name}_sum": labels, f"{name}_count": labels,
                f"{name}_created": labels}
    if kind == "summary":
        return {name: labels | {"quantile"}, f"{name}_sum": labels, f"{name}_count": labels,
                f"{name}_created": labels}
    if kind == "info":
        return {f"{name}_info": labels}
    if kind == "gauge":  # in multiprocess mode a gauge may carry the process' pid
        return {name: labels | {"pid"}}
    return {name: labels | {name}}  # enum / stateset


def _wrapper_series(metric: MetricWrapperBase) -> dict[str, frozenset[str]]:
    # prometheus_client keeps a metric's name, type and label names in these attributes (no public API).
    return _series(metric._name, metric._type, metric._labelnames)


def _dramatiq_series(monkeypatch) -> dict[str, frozenset[str]]:
    """The metrics of the Dramatiq Prometheus middleware, if the settings install it in the workers."""
    from dramatiq.middleware.prometheus import Prometheus

    exported = {}
    for path in settings.DRAMATIQ_BROKER["MIDDLEWARE"]:
        middleware_class = import_string(path)
        if not (isinstance(middleware_class, type) and issubclass(middleware_class, Prometheus)):
            continue
        middleware = middleware_class()
        # after_process_boot declares the metrics (in a registry of its own) and points the process at a
        # multiprocess directory through the environment; monkeypatch gives the environment back.
        for variable in ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir"):
            monkeypatch.setenv(variable, os.environ.get(variable, ""))
        middleware.after_process_boot(broker=None)
        for value in vars(middleware).values():
            if isinstance(value, MetricWrapperBase):
                exported.update(_wrapper_series(value))
    return exported


def _health_series() -> dict[str, frozenset[str]]:
    """The scheduler's health gauges, and the two series its collector adds (last update, leader)."""
    from tenants.metrics import HEALTH, HealthCollector, HealthGauge

    exported = {gauge.name: frozenset(gauge.labelnames) for gauge in HEALTH.gauges}
    probe = HealthCollector()
    probe.leader = True
    HealthGauge("probe", "", collector=probe).publish({})
    exported.update({family.name: frozenset() for family in probe.collect() if family.name != "probe"})
    return exported


@pytest.fixture(scope="module")
def exported() -> dict[str, frozenset[str] | None]:
    """Every series name the code exports, with its label names (scrape labels included)."""
    assert _import_metric_modules(), "no module of the project defines a metric"
    if "django_prometheus.middleware.PrometheusBeforeMiddleware" in settings.MIDDLEWARE:
        from django_prometheus.middleware import Metrics
        Metrics.get_instance()  # registers django-prometheus' HTTP metrics, as the middleware does
    series: dict[str, frozenset[str] | None] = {}
    # _collector_to_names: the registry's collectors (no public API lists them).
    for collector in list(REGISTRY._collector_to_names):
        if isinstance(collector, MetricWrapperBase):
            series.update(_wrapper_series(collector))
    with pytest.MonkeyPatch.context() as monkeypatch:
        series.update(_dramatiq_series(monkeypatch))
    series.update(_health_series())
    series = {name: (labels | SCRAPE_LABELS) for name, labels in series.items()}
    series.update(BUILTIN_SERIES)
    return series


# -- PromQL: the metric names, label matchers and grouping labels of an expression ---------------------

AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk",
                "topk", "quantile", "limitk", "limit_ratio"}
FUNCTIONS = {
    "abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh", "avg_over_time",
    "ceil", "changes", "clamp", "clamp_max", "clamp_min", "cos", "cosh", "count_over_time", "day_of_month",
    "day_of_week", "day_of_year", "days_in_month", "deg", "delta", "deriv", "exp", "floor", "histogram_avg",
    "histogram_count", "histogram_fraction", "histogram_quantile", "histogram_stddev", "histogram_stdvar",
    "histogram_sum", "holt_winters", "hour", "idelta", "increase", "irate", "label_join", "label_replace",
    "last_over_time", "ln", "log10", "log2", "mad_over_time", "max_over_time", "min_over_time", "minute",
    "month", "pi", "predict_linear", "present_over_time", "quantile_over_time", "rad", "rate", "resets",
    "round", "scalar", "sgn", "sin", "sinh", "sort", "sort_desc", "sqrt", "stddev_over_time",
    "stdvar_over_time", "sum_over_time", "tan", "tanh", "time", "timestamp", "vector", "year",
}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = {"and", "or", "unless", "offset", "bool", "atan2", "inf", "nan", "Inf", "NaN"}
TOKEN = re.compile(r"""
    (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<duration>(?<![\w:])(?:\d+(?:ms|[smhdwy]))+(?![\w:]))
  | (?P<number>(?<![\w:])\d+(?:\.\d+)?(?:e[+-]?\d+)?(?![\w:]))
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<matcher>=~|!~|!=|==|=|>=|<=)
  | (?P<punct>[(){},+\-*/%^<>@])
  | (?P<space>\s+)
""", re.VERBOSE)


@dataclass
class Selector:
    name: str
    matchers: list[tuple[str, str, str]] = field(default_factory=list)  # (label, operator, value)


@dataclass
class Query:
    selectors: list[Selector] = field(default_factory=list)
    grouping: set[str] = field(default_factory=set)  # labels named in by / without / on / ignoring / group_*
    functions: set[str] = field(default_factory=set)


def tokens(expr: str) -> list[tuple[str, str]]:
    found, position = [], 0
    while position < len(expr):
        match = TOKEN.match(expr, position)
        assert match, f"cannot read {expr[position:position + 30]!r} in {expr!r}"
        if match.lastgroup != "space":
            found.append((match.lastgroup, match.group()))
        position = match.end()
    return found


def parse(expr: str) -> Query:
    """The selectors, grouping labels and functions of a PromQL expression (Grafana's $variables allowed
    in strings and ranges). Strict: an identifier it cannot place is taken for a metric name."""
    query, items, i = Query(), tokens(expr), 0

    def label_list(start: int) -> int:
        assert items[start] == ("punct", "("), f"expected a label list in {expr!r}"
        j = start + 1
        while items[j] != ("punct", ")"):
            kind, text = items[j]
            if kind == "ident":
                query.grouping.add(text)
            else:
                assert (kind, text) == ("punct", ","), f"unexpected {text!r} in a label list of {expr!r}"
            j += 1
        return j + 1

    while i < len(items):
        kind, text = items[i]
        following = items[i + 1] if i + 1 < len(items) else ("", "")
        if kind == "ident" and text in GROUPING:
            # group_left / group_right may stand without a list (then they add no label).
            i = label_list(i + 1) if following == ("punct", "(") else i + 1
        elif kind == "ident" and (following == ("punct", "(")
                                  or text in AGGREGATIONS and following in (("ident", "by"), ("ident", "without"))):
            assert text in FUNCTIONS | AGGREGATIONS, f"unknown PromQL function {text!r} in {expr!r}"
            query.functions.add(text)
            i += 1
        elif kind == "ident" and text in KEYWORDS:
            i += 1
        elif kind == "ident":
            selector = Selector(text)
            query.selectors.append(selector)
            i += 1
            if following == ("punct", "{"):
                i += 1
                while items[i] != ("punct", "}"):
                    (label_kind, label), (_, operator), (value_kind, value) = items[i:i + 3]
                    assert label_kind == "ident" and value_kind == "string", f"bad matcher in {expr!r}"
                    selector.matchers.append((label, operator, value[1:-1]))
                    i += 3
                    if items[i] == ("punct", ","):
                        i += 1
                i += 1
        else:
            assert (kind, text) != ("punct", "{"), f"a selector without a metric name in {expr!r}"
            i += 1
    return query


def test_the_promql_reader_finds_names_labels_and_functions():
    query = parse('sum by (tenant, le) (rate(foo_bucket{stage="a|b", tenant=~"$tenant"}[$__rate_interval])) '
                  '/ ignoring (outcome) group_left sum(bar:baz:ratio5m offset 10m) or vector(0) > bool 2e3')
    assert [(s.name, s.matchers) for s in query.selectors] == [
        ("foo_bucket", [("stage", "=", "a|b"), ("tenant", "=~", "$tenant")]), ("bar:baz:ratio5m", [])]
    assert query.grouping == {"tenant", "le", "outcome"}
    assert query.functions == {"sum", "rate", "vector"}
    with pytest.raises(AssertionError, match="unknown PromQL function"):
        parse("sums(foo)")


# -- the rules ------------------------------------------------------------------------------------------

def all_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def recorded(exported) -> dict[str, frozenset[str]]:
    """The recording rules' series, each with the labels of what it is computed from."""
    series: dict[str, frozenset[str]] = {}
    for rule in all_rules():
        if "record" in rule:
            labels = set()
            for selector in parse(rule["expr"]).selectors:
                known = {**exported, **series}.get(selector.name)
                labels |= known or set()
            series[rule["record"]] = frozenset(labels)
    return series


def every_query() -> list[tuple[str, str]]:
    """(where, PromQL) for every expression of the rules and the dashboards."""
    queries = [(f"rule {rule.get('alert') or rule.get('record')}", rule["expr"]) for rule in all_rules()]
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in walk_panels(board["panels"]):
            for target in panel.get("targets", []):
                queries.append((f"{path.name} panel {panel['title']!r} {target['refId']}", target["expr"]))
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                metric, label = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variable["query"]["query"]).groups()
                queries.append((f"{path.name} variable {variable['name']}", f'{metric}{{{label}!=""}}'))
    return queries


def walk_panels(panels):
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels", []))


def url_names() -> set[str]:
    """Names of the tenant URLs (django-prometheus labels requests by their view name)."""
    return {name for name in get_resolver("config.urls").reverse_dict if isinstance(name, str)}


def label_vocabulary() -> list[tuple[re.Pattern, str, set[str]]]:
    """(series pattern, label, values the code writes) for labels whose values the rules pick by name."""
    outcome_series = r"wecomdesk_outcomes_total|tenant_outcome:wecomdesk_outcomes:.*"
    llm_series = r"wecomdesk_llm_seconds_\w+|tenant_outcome:wecomdesk_llm_seconds:.*"
    return [
        (re.compile(r"wecomdesk_inbound_stage_total"), "stage", set(Stage.values)),
        (re.compile(outcome_series), "outcome", set(Outcome.values)),
        (re.compile(llm_series), "outcome", set(ModelOutcome.values)),
        (re.compile(r"wecomdesk_outbound_rows"), "state", set(OutboundMessage.Status.values)),
        (re.compile(r"django_http_\w+"), "view", url_names()),
        (re.compile(r"up|scrape_\w+"), "job", set(JOBS)),
    ]


def label_values(operator: str, value: str) -> list[str]:
    """The values a matcher names: an exact one, or those of a regex that is a plain alternation
    ("processed|failed"). Negations, real regexes and Grafana variables name none."""
    if "$" in value:
        return []
    if operator == "=":
        return [value]
    if operator == "=~" and re.fullmatch(r"[\w-]+(?:\|[\w-]+)*", value):
        return value.split("|")
    return []


def problems_of(where: str, expr: str, known: dict[str, frozenset[str] | None]) -> list[str]:
    """What in one expression does not exist in the code: metric names, label names, label values."""
    query, problems, labels_here = parse(expr), [], set()
    for selector in query.selectors:
        if selector.name not in known:
            problems.append(f"{where}: {selector.name} is not exported by the code")
            continue
        labels = known[selector.name]
        labels_here |= labels if labels is not None else {label for label, _, _ in selector.matchers}
        for label, operator, value in selector.matchers:
            if labels is not None and label not in labels:
                problems.append(f"{where}: {selector.name} has no label {label!r} (it has {sorted(labels)})")
            words = label_values(operator, value)
            for pattern, vocabulary_label, vocabulary in label_vocabulary():
                if label == vocabulary_label and pattern.fullmatch(selector.name):
                    problems += [f"{where}: {selector.name}{{{label}={word!r}}}: the code never writes {word!r}"
                                 for word in words if word not in vocabulary]
    for label in sorted(query.grouping - labels_here):
        problems.append(f"{where}: groups by {label!r}, which none of its metrics has")
    return problems


def test_every_metric_label_and_value_the_rules_and_dashboards_name_is_exported(exported):
    known = {**exported, **recorded(exported)}
    problems = [problem for where, expr in every_query() for problem in problems_of(where, expr, known)]
    assert problems == []


def test_the_check_catches_a_renamed_metric_a_wrong_label_and_an_unknown_value(exported):
    known = {**exported, **recorded(exported)}
    assert problems_of("x", 'sum by (tenant) (rate(wecomdesk_outcomes_total{outcome="answered"}[5m]))', known) == [
        "x: wecomdesk_outcomes_total{outcome='answered'}: the code never writes 'answered'"]
    assert problems_of("x", "max by (queue) (wecomdesk_inbound_waiting)", known) == [
        "x: groups by 'queue', which none of its metrics has"]
    assert problems_of("x", 'wecomdesk_inbound_waitings{tenant="alpha"}', known) == [
        "x: wecomdesk_inbound_waitings is not exported by the code"]
    assert problems_of("x", 'wecomdesk_outbound_dead_total{state="dead"}', known) == [
        "x: wecomdesk_outbound_dead_total has no label 'state' (it has ['instance', 'job', 'tenant'])"]


def test_the_catalogue_of_the_contract_is_what_the_code_exports(exported):
    """docs/OBSERVABILITY.md lists each metric; each one listed is exported (the rules rely on the list)."""
    catalogue = re.search(r"^## Metric catalogue$(.*?)^## ", CONTRACT.read_text(), re.MULTILINE | re.DOTALL)[1]
    first_cells = re.findall(r"^\| ([^|]+) \|", catalogue, re.MULTILINE)
    listed = {name for cell in first_cells for name in re.findall(r"`(\w+)`", cell)}
    missing = sorted(name for name in listed if not ({name, f"{name}_bucket", f"{name}_total"} & set(exported)))
    assert len(listed) >= 25 and missing == []  # the two tables, read whole


def test_every_alert_has_a_severity_a_summary_and_a_runbook_that_exists():
    anchors = {slug(heading) for heading in re.findall(r"^#{2,3} (.+)$", RUNBOOKS.read_text(), re.MULTILINE)}
    alerts = [rule for rule in all_rules() if "alert" in rule]
    assert len(alerts) >= 9
    for rule in alerts:
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        annotations = rule["annotations"]
        assert {"summary", "description", "runbook", "runbook_url"} <= set(annotations), rule["alert"]
        path, _, anchor = annotations["runbook_url"].partition("#")
        assert path == "docs/RUNBOOKS.md" and anchor == slug(rule["alert"]) and anchor in anchors, rule["alert"]


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_admin_pages_the_runbooks_send_people_to_exist():
    texts = [RUNBOOKS.read_text()] + [" ".join(rule.get("annotations", {}).values()) for rule in all_rules()]
    paths = set()
    for text in texts:
        paths |= set(re.findall(r"/t/(?:\{\{ \$labels\.tenant \}\}|<tenant>)(/[\w/-]+)", text))
    assert any(path.startswith("/admin/") for path in paths)
    for path in sorted(paths):
        try:
            # The admin answers any path under it with its catch-all view (which has no name).
            assert resolve(path, urlconf="config.urls").url_name, path
        except (Resolver404, AssertionError):
            pytest.fail(f"the runbooks send people to /t/<tenant>{path}, which does not exist")


# -- the dashboards -------------------------------------------------------------------------------------

def test_the_dashboards_are_provisioned_grafana_dashboards():
    datasources = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    assert [source["type"] for source in datasources] == ["prometheus"]
    uid = datasources[0]["uid"]
    boards = {path.stem: json.loads(path.read_text()) for path in DASHBOARDS}
    assert set(boards) == {"ingress", "pipeline", "ai", "delivery", "agents"}
    assert len({board["uid"] for board in boards.values()}) == len(boards)
    for name, board in boards.items():
        assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= 36, name
        assert board["title"].startswith("WeCom Desk / ") and board["uid"] == f"wecomdesk-{name}"
        variables = {variable["name"]: variable for variable in board["templating"]["list"]}
        panels = list(walk_panels(board["panels"]))
        assert len({panel["id"] for panel in panels}) == len(panels), f"{name}: panel ids repeat"
        occupied = set()
        for panel in panels:
            where = f"{name} {panel['title']!r}"
            grid = panel["gridPos"]
            assert all(isinstance(grid[key], int) for key in "hwxy") and grid["x"] + grid["w"] <= 24, where
            cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                     for y in range(grid["y"], grid["y"] + grid["h"])}
            assert not cells & occupied, f"{where} overlaps another panel"
            occupied |= cells
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": uid}, where
            assert panel["targets"], where
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == uid and target["expr"].strip() and target["refId"], where
                for variable in re.findall(r"\$(\w+)", target["expr"]):
                    assert variable.startswith("__") or variable in variables, f"{where}: ${variable} undefined"
        for variable in variables.values():
            assert variable["datasource"]["uid"] == uid
        uses_tenant = any("$tenant" in target["expr"] for panel in panels for target in panel.get("targets", []))
        assert uses_tenant == ("tenant" in variables), f"{name}: the tenant variable and its use go together"
    # All five show per-tenant metrics: each lets the reader pick tenants.
    assert all(any(v["name"] == "tenant" for v in board["templating"]["list"]) for board in boards.values())
