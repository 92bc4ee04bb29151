"""Under `dvc repro`, stages spool their logs and one flusher writes them: same runs in MLflow, in stage
order, under one parent, with nothing secret in the spool, and nothing left behind."""

from mlflow.tracking import MlflowClient

from distillery.core.params import load_params
from distillery.track import _payload, tracking_params
from distillery.track.spool import pending, run_flusher, spool_payload, wait_drained

from .conftest import SECRET


def _spooled(project, name, metrics):
    tp = tracking_params(load_params(None))
    p = _payload(tp, name, {"teacher_key_env": "FAKE_TEACHER_API_KEY", "api_key": SECRET}, metrics, [], {})
    p["group"].update(key="dvc:test-host:123:456:", kind="dvc", command="dvc repro", pid=None)
    return spool_payload(project, p)


def test_flusher_logs_spooled_stages_under_one_parent_in_order(project):
    for i, name in enumerate(["ingest", "dedup", "mix"]):
        _spooled(project, name, {"records_out": 10 * (i + 1)})
    assert len(pending(project)) == 3
    assert SECRET.encode() not in b"".join(p.read_bytes() for p in pending(project))
    run_flusher(project, watch_pid=None, idle_exit_s=0)   # dvc is gone: drain and exit
    assert pending(project) == []
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    exp = client.get_experiment_by_name("distillery")
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert [r.info.run_name for r in children] == ["ingest", "dedup", "mix"]
    assert len({r.data.tags["mlflow.parentRunId"] for r in children}) == 1
    assert children[1].data.metrics["records_out"] == 20
    assert children[0].data.params["api_key"] == "***"


def test_report_drains_the_spool_itself_when_no_flusher_runs(project):
    _spooled(project, "export", {"records_out": 5})
    wait_drained(project, timeout_s=120)
    assert pending(project) == []
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    exp = client.get_experiment_by_name("distillery")
    assert any(r.info.run_name == "export" for r in client.search_runs([exp.experiment_id]))
