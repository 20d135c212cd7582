"""Every call is an MLflow trace linked to its run; keys never reach MLflow or the logs."""

import logging
import subprocess

import mlflow

from workbench import Experiment
from workbench.registry import client

from .llm_server import Faults

FAKE_KEY = "sk-wbtest-7f3a9c1e5b2d4680aa"


def test_each_call_is_a_trace_with_tokens_cost_latency_and_prompt_version(make_experiment):
    results = Experiment.from_yaml(make_experiment()).run(progress=False)
    run_id = results.run_ids["guided"]
    experiment_id = client().get_run(run_id).info.experiment_id
    traces = mlflow.search_traces(locations=[experiment_id], run_id=run_id,
                                  return_type="list")
    assert len(traces) == 20
    span = traces[0].data.spans[0]
    assert span.span_type == "LLM"
    version = results.prompt_versions["guided"]
    assert span.attributes["prompt_version"] == f"prompts:/triage/{version}"
    assert span.attributes["prompt_tokens"] > 0 and span.attributes["latency_s"] > 0
    assert "cost_usd" in span.attributes
    assert traces[0].info.request_metadata["mlflow.sourceRun"] == run_id


def test_a_cached_rerun_makes_no_new_traces(make_experiment):
    folder = make_experiment()
    Experiment.from_yaml(folder).run(progress=False)
    again = Experiment.from_yaml(folder).run(progress=False)
    run_id = again.run_ids["guided"]
    experiment_id = client().get_run(run_id).info.experiment_id
    assert mlflow.search_traces(locations=[experiment_id], run_id=run_id,
                                return_type="list") == []


def test_the_api_key_never_reaches_mlflow_or_the_logs(make_experiment, llm_server, project,
                                                      monkeypatch, caplog):
    llm_server.faults = Faults(auth_key=FAKE_KEY, fail_first=3)
    monkeypatch.setenv("WB_SECRET_KEY", FAKE_KEY)
    folder = make_experiment()
    text = (folder / "experiment.yaml").read_text().replace(
        "num_retries: 0", "num_retries: 1\n    api_key_env: WB_SECRET_KEY")
    (folder / "experiment.yaml").write_text(text)
    caplog.set_level(logging.DEBUG)
    results = Experiment.from_yaml(folder).run(progress=False)
    assert len(results.frame) == 40 and results.frame["retries"].sum() > 0
    mlflow.flush_trace_async_logging()
    found = subprocess.run(["grep", "-r", "-l", "-a", FAKE_KEY, str(project)],
                           capture_output=True, text=True)
    assert found.stdout == "", f"the key was written to {found.stdout}"
    assert FAKE_KEY not in caplog.text


def test_pii_is_redacted_before_logging_when_asked(make_experiment, llm_server, project):
    llm_server.responder = lambda body: "write to jane.doe@example.com for a refund"
    folder = make_experiment()
    text = (folder / "experiment.yaml").read_text().replace(
        "concurrency: 4", "concurrency: 4\n  redact_pii: true")
    (folder / "experiment.yaml").write_text(text)
    results = Experiment.from_yaml(folder).run(progress=False)
    assert "jane.doe@example.com" in results.frame["output"].iloc[0]  # kept in memory
    mlflow.flush_trace_async_logging()
    found = subprocess.run(["grep", "-r", "-l", "-a", "jane.doe@example.com",
                            str(project / "mlruns")], capture_output=True, text=True)
    assert found.stdout == ""


def test_traces_are_flushed_in_batches_so_none_is_dropped(make_experiment, monkeypatch):
    from workbench import tracking

    flushes = []
    real_flush = mlflow.flush_trace_async_logging
    monkeypatch.setattr(tracking, "_TRACE_BATCH", 7)
    monkeypatch.setattr(mlflow, "flush_trace_async_logging",
                        lambda *a, **k: (flushes.append(1), real_flush(*a, **k)))
    results = Experiment.from_yaml(make_experiment()).run(progress=False)
    assert len(flushes) >= 40 // 7
    for variant in ("bare", "guided"):
        run_id = results.run_ids[variant]
        experiment_id = client().get_run(run_id).info.experiment_id
        assert len(mlflow.search_traces(locations=[experiment_id], run_id=run_id,
                                        return_type="list")) == 20
