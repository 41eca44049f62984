"""The bounded tenant label (METRICS_MAX_TENANTS, `_other` beyond) and the health gauges' collector."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from tenants.metrics import (
    NAMED_TENANTS,
    OTHER_TENANTS,
    HealthCollector,
    HealthGauge,
    TenantCounter,
    TenantHistogram,
    tenant_label,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def max_tenants(settings, tenants_world):
    """Set METRICS_MAX_TENANTS and reload the named tenants; the session's own list comes back afterwards."""

    def limit(count: int) -> None:
        settings.METRICS_MAX_TENANTS = count
        NAMED_TENANTS.reload()

    yield limit
    settings.METRICS_MAX_TENANTS = 200
    NAMED_TENANTS.reload()


def test_tenants_within_the_bound_keep_their_name_the_rest_are_other(max_tenants):
    max_tenants(1)  # alpha was created first
    assert (tenant_label("alpha"), tenant_label("beta")) == ("alpha", OTHER_TENANTS)
    max_tenants(200)
    assert (tenant_label("alpha"), tenant_label("beta")) == ("alpha", "beta")


def test_public_stays_public_and_unknown_schemas_are_other(max_tenants):
    max_tenants(200)
    assert tenant_label("public") == "public"
    assert tenant_label("no_such_tenant") == OTHER_TENANTS


def test_counters_and_histograms_record_under_the_bounded_label(max_tenants):
    max_tenants(1)
    registry = CollectorRegistry()
    counter = TenantCounter("probe_events_total", "probe", ["tenant", "kind"], registry=registry)
    histogram = TenantHistogram("probe_seconds", "probe", ["tenant"], registry=registry, buckets=(1, 2))

    counter.labels(tenant="alpha", kind="x").inc()
    counter.labels(tenant="beta", kind="x").inc(2)
    counter.labels("beta", "y").inc(3)  # positional labels are bounded too
    histogram.labels(tenant="beta").observe(0.5)

    value = registry.get_sample_value
    assert value("probe_events_total", {"tenant": "alpha", "kind": "x"}) == 1
    assert value("probe_events_total", {"tenant": OTHER_TENANTS, "kind": "x"}) == 2
    assert value("probe_events_total", {"tenant": OTHER_TENANTS, "kind": "y"}) == 3
    assert value("probe_events_total", {"tenant": "beta", "kind": "x"}) is None
    assert value("probe_seconds_count", {"tenant": OTHER_TENANTS}) == 1


def test_health_gauges_combine_other_tenants_and_forget_those_gone(max_tenants):
    max_tenants(1)
    collector = HealthCollector()
    waiting = HealthGauge("probe_waiting", "probe", ["tenant"], collector=collector)
    oldest = HealthGauge("probe_oldest_seconds", "probe", ["tenant"], combine=max, collector=collector)
    rows = HealthGauge("probe_rows", "probe", ["tenant", "state"], collector=collector)
    registry = CollectorRegistry()
    registry.register(collector)

    waiting.publish({"alpha": 1, "beta": 2, "gamma": 3})
    oldest.publish({"alpha": 5, "beta": 7, "gamma": 4})
    rows.publish({("alpha", "dead"): 1, ("beta", "dead"): 4})
    value = registry.get_sample_value
    assert value("probe_waiting", {"tenant": "alpha"}) == 1
    assert value("probe_waiting", {"tenant": OTHER_TENANTS}) == 5  # beta + gamma
    assert value("probe_oldest_seconds", {"tenant": OTHER_TENANTS}) == 7  # the older of the two
    assert value("probe_rows", {"tenant": OTHER_TENANTS, "state": "dead"}) == 4
    first_sweep = value("wecomdesk_health_updated_timestamp_seconds")
    assert first_sweep == min(gauge.published_at for gauge in (waiting, oldest, rows))

    max_tenants(200)
    waiting.publish({"alpha": 0})  # beta and gamma are gone (suspended, deleted): their series too
    assert value("probe_waiting", {"tenant": "alpha"}) == 0
    assert value("probe_waiting", {"tenant": OTHER_TENANTS}) is None
    assert value("probe_waiting", {"tenant": "beta"}) is None

    collector.leader = False
    collector.clear()
    assert value("probe_waiting", {"tenant": "alpha"}) is None
    assert value("wecomdesk_health_updated_timestamp_seconds") is None
    assert value("wecomdesk_scheduler_leader") == 0


def test_a_health_gauge_refuses_values_with_the_wrong_labels():
    gauge = HealthGauge("probe_queue_length", "probe", ["queue"], collector=HealthCollector())
    with pytest.raises(ValueError, match="labels"):
        gauge.publish({("inbound", "extra"): 1})
    assert gauge.values == {}
