"""config.metrics_launcher: each role starts with a fresh multiprocess directory in its environment."""

from __future__ import annotations

import pytest

from config.metrics_launcher import prepare


def test_the_worker_directory_is_created_emptied_and_shared_with_dramatiq(tmp_path):
    stale = tmp_path / "prometheus" / "worker"
    stale.mkdir(parents=True)
    (stale / "counter_4242.db").write_bytes(b"old run")
    (stale / "README").write_text("not ours")
    environ = {"METRICS_DIR": str(tmp_path / "prometheus")}

    directory = prepare("worker", environ)

    assert directory == stale
    assert sorted(path.name for path in directory.iterdir()) == ["README"]  # only prometheus_client's files go
    assert environ["PROMETHEUS_MULTIPROC_DIR"] == environ["dramatiq_prom_db"] == str(stale)


def test_web_gets_its_own_directory_and_an_explicit_one_wins(tmp_path):
    environ = {"METRICS_DIR": str(tmp_path)}
    assert prepare("web", environ) == tmp_path / "web"
    assert "dramatiq_prom_db" not in environ

    explicit = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "volume"), "METRICS_DIR": str(tmp_path)}
    assert prepare("web", explicit) == tmp_path / "volume"
    assert (tmp_path / "volume").is_dir()


def test_an_unknown_role_is_refused(tmp_path):
    environ = {"METRICS_DIR": str(tmp_path)}
    with pytest.raises(ValueError, match="scheduler"):
        prepare("scheduler", environ)  # one process: it serves its own registry
    assert environ == {"METRICS_DIR": str(tmp_path)}
    assert list(tmp_path.iterdir()) == []
