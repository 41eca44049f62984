"""Prometheus plumbing every app uses: the bounded `tenant` label, health gauges, the exposition registry.

1. `tenant_label(schema)`: the schema name for the METRICS_MAX_TENANTS oldest active tenants, `_other`
   beyond them, so a platform with many tenants cannot blow up Prometheus. The named set is read from
   the database, cached per process (NAMED_TENANTS_TTL_SECONDS), and is the same in every process.
   `TenantCounter` / `TenantHistogram` apply it to their `tenant` label, so call sites pass the schema.
2. `HealthGauge`: a gauge whose series are all computed at once by the leading scheduler from the
   database, Redis and the broker (docs/OBSERVABILITY.md). Served by the `HEALTH` collector, not by
   prometheus_client's multiprocess files: a sweep replaces every series, so a tenant that went away
   or was suspended disappears with the next sweep (multiprocess mode cannot remove a label), and a
   scheduler that stops leading drops them all.
3. `exposition_registry()`: what a metrics endpoint serves: the multiprocess directory of the process
   role when PROMETHEUS_MULTIPROC_DIR is set (config/metrics_launcher.py), else this process's registry.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping

from django.conf import settings
from django.db import connection
from django_tenants.utils import get_public_schema_name
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from tenants.models import Tenant

logger = logging.getLogger("tenants.metrics")

OTHER_TENANTS = "_other"
TENANT = "tenant"
# How long a process trusts its list of named tenants; a tenant created meanwhile is looked up at once
# (while the list is not full), so only a change among the first METRICS_MAX_TENANTS waits this long.
NAMED_TENANTS_TTL_SECONDS = 60.0
RETRY_AFTER_FAILURE_SECONDS = 5.0
NEWCOMER_RELOAD_SECONDS = 1.0


# -- 1. the tenant label ------------------------------------------------------------------------------

class _NamedTenants:
    """The schemas that keep their own label, cached; reloaded when stale, or (at most once a second) when
    a schema shows up that is not among them while there is room for it (a tenant created meanwhile)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._names: frozenset[str] | None = None  # None: never loaded (the database could not say yet)
        self._loaded_at = float("-inf")
        self._fresh_until = 0.0

    def contains(self, schema: str) -> bool:
        names, now = self._names, time.monotonic()
        stale = names is None or now >= self._fresh_until
        newcomer = (names is not None and schema not in names and len(names) < settings.METRICS_MAX_TENANTS
                    and now - self._loaded_at >= NEWCOMER_RELOAD_SECONDS)
        if stale or newcomer:
            names = self.reload(unless_loaded_after=now)
        return names is not None and schema in names

    def reload(self, *, unless_loaded_after: float | None = None) -> frozenset[str] | None:
        with self._lock:
            # Another thread reloaded while this one waited for the lock.
            if unless_loaded_after is not None and self._loaded_at > unless_loaded_after:
                return self._names
            loaded = _load_named_tenants()
            now = self._loaded_at = time.monotonic()
            if loaded is not None:
                self._names, self._fresh_until = loaded, now + NAMED_TENANTS_TTL_SECONDS
            elif self._names is not None:  # keep the last list a while; never loaded: try again next call
                self._fresh_until = now + RETRY_AFTER_FAILURE_SECONDS
            return self._names


def _load_named_tenants() -> frozenset[str] | None:
    """The first METRICS_MAX_TENANTS active tenants by creation; None when the database cannot say.

    Metrics are recorded on the I/O pool threads too (tenants/concurrency.py), which must not keep a
    database connection: a connection opened here for the lookup is closed again.
    """
    opened_here = connection.connection is None
    try:
        names = (Tenant.objects.filter(is_active=True).exclude(schema_name=get_public_schema_name())
                 .order_by("id").values_list("schema_name", flat=True)[:settings.METRICS_MAX_TENANTS])
        return frozenset(names)
    except Exception as exc:  # noqa: BLE001 - a metric label must never fail the work it measures
        logger.warning("metrics.tenant_labels_unavailable error=%s", type(exc).__name__)
        return None
    finally:
        if opened_here and not connection.in_atomic_block:
            connection.close()


NAMED_TENANTS = _NamedTenants()


def tenant_label(schema: str) -> str:
    """The `tenant` label of a schema: its name while it is among the named tenants, else `_other`."""
    if schema == get_public_schema_name() or NAMED_TENANTS.contains(schema):
        return schema
    return OTHER_TENANTS


class _BoundedTenant:
    """`labels(tenant=<schema>, ...)` records under `tenant_label(schema)`."""

    def labels(self, *labelvalues, **labelkwargs):
        if TENANT in labelkwargs:
            labelkwargs[TENANT] = tenant_label(str(labelkwargs[TENANT]))
        elif labelvalues and TENANT in self._labelnames:
            values = list(labelvalues)
            index = self._labelnames.index(TENANT)
            values[index] = tenant_label(str(values[index]))
            labelvalues = tuple(values)
        return super().labels(*labelvalues, **labelkwargs)


class TenantCounter(_BoundedTenant, Counter):
    pass


class TenantHistogram(_BoundedTenant, Histogram):
    pass


# -- 2. health gauges ---------------------------------------------------------------------------------

class HealthGauge:
    """A gauge computed whole by the leading scheduler: `publish()` replaces every series at once.

    Values are given per schema (and further labels); schemas beyond the named tenants are combined
    under `_other` with `combine` (a sum for counts, max for ages and flags).
    """

    def __init__(self, name: str, documentation: str, labelnames: Iterable[str] = (), *,
                 combine: Callable[[Iterable[float]], float] = sum, collector: HealthCollector | None = None):
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.combine = combine
        self.values: dict[tuple[str, ...], float] = {}
        self.published_at: float | None = None
        (collector or HEALTH).add(self)

    def publish(self, values: Mapping[tuple[str, ...] | str, float]) -> None:
        grouped: dict[tuple[str, ...], list[float]] = defaultdict(list)
        for key, value in values.items():
            labels = (key,) if isinstance(key, str) else tuple(key)
            if len(labels) != len(self.labelnames):
                raise ValueError(f"{self.name} has labels {self.labelnames}, got {labels}")
            if TENANT in self.labelnames:
                index = self.labelnames.index(TENANT)
                labels = (*labels[:index], tenant_label(labels[index]), *labels[index + 1:])
            grouped[labels].append(float(value))
        self.values = {labels: float(self.combine(group)) for labels, group in grouped.items()}
        self.published_at = time.time()

    def clear(self) -> None:
        self.values, self.published_at = {}, None

    def family(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, value in sorted(self.values.items()):
            family.add_metric(labels, value)
        return family


class HealthCollector(Collector):
    """Serves the health gauges, whether this scheduler leads, and when the gauges were last computed."""

    def __init__(self):
        self.gauges: list[HealthGauge] = []
        self.leader: bool | None = None  # None: not a scheduler (nothing to say)

    def add(self, gauge: HealthGauge) -> None:
        if any(existing.name == gauge.name for existing in self.gauges):
            raise ValueError(f"health gauge {gauge.name} declared twice")
        self.gauges.append(gauge)

    def clear(self) -> None:
        for gauge in self.gauges:
            gauge.clear()

    def collect(self):
        published = [gauge for gauge in self.gauges if gauge.published_at is not None]
        for gauge in published:
            yield gauge.family()
        if published:
            # The oldest part: a sweep that stopped (one job failing every time) shows as stale.
            yield GaugeMetricFamily("wecomdesk_health_updated_timestamp_seconds",
                                    "When the health gauges were last computed (unix time)",
                                    value=min(gauge.published_at for gauge in published))
        if self.leader is not None:
            yield GaugeMetricFamily("wecomdesk_scheduler_leader", "1 in the scheduler that leads",
                                    value=1 if self.leader else 0)


HEALTH = HealthCollector()


# -- 3. exposition ------------------------------------------------------------------------------------

def multiprocess_dir() -> str | None:
    """The process role's prometheus_client multiprocess directory, if this process runs in that mode."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def exposition_registry(*collectors: Collector) -> CollectorRegistry:
    """What an endpoint of this process serves: every process of its role (multiprocess mode) or this
    process's own registry, plus `collectors` (e.g. HEALTH in the scheduler)."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    for collector in collectors:
        if collector not in registry._collector_to_names:  # registering twice raises
            registry.register(collector)
    return registry
