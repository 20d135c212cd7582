"""Every call is an MLflow trace linked to its run; keys never reach MLflow or the logs."""

import logging
import subprocess

import mlflow

from workbench import Experiment
from workbench.prompts.registry import client
from workbench.testing import FakeSend

from .conftest import sentiment
from .llm_server import Faults

FAKE_KEY = "sk-wbtest-7f3a9c1e5b2d4680aa"


def _calls(trace):
    return [span for span in trace.data.spans if span.span_type == "LLM"]


def answers(latency_s=0.001):
    """The loopback server's model, in memory: these tests read spans, not HTTP."""
    return FakeSend(lambda config, messages: sentiment({"messages": messages}),
                    latency_s=latency_s)


def test_each_call_is_a_span_with_tokens_cost_latency_and_prompt_version(offline_experiment):
    results = Experiment.from_yaml(offline_experiment()).run(progress=False, send=answers())
    run_id = results.run_ids["guided"]
    experiment_id = client().get_run(run_id).info.experiment_id
    traces = mlflow.search_traces(locations=[experiment_id], run_id=run_id,
                                  return_type="list")
    assert len(traces) == 1  # the variant run's calls, one child span each
    assert traces[0].info.request_metadata["mlflow.sourceRun"] == run_id
    root = traces[0].data.spans[0]
    calls = _calls(traces[0])
    assert len(calls) == 20 and {span.parent_id for span in calls} == {root.span_id}
    span = min(calls, key=lambda span: span.name)
    assert span.name == "guided/t000"
    version = results.prompt_versions["guided"]
    assert span.attributes["prompt_version"] == f"prompts:/triage/{version}"
    assert span.attributes["prompt_tokens"] > 0 and span.attributes["latency_s"] > 0
    assert "cost_usd" in span.attributes
    assert span.inputs["variables"]["ticket"].startswith("I love this app")
    assert span.outputs == {"output": "positive"}
    row = results.frame.query("variant == 'guided' and example_id == 't000'").iloc[0]
    assert span.start_time_ns == int(row.started_at * 1e9)
    assert span.end_time_ns - span.start_time_ns == int(row.latency_s * 1e9)
    # a single call is found by its span, in the API as in the UI's search box
    found = mlflow.search_traces(locations=[experiment_id], run_id=run_id, return_type="list",
                                 filter_string="span.name = 'guided/t007'")
    assert [trace.info.trace_id for trace in found] == [traces[0].info.trace_id]


def test_a_failed_call_is_an_error_span_and_the_others_are_not(offline_experiment):
    def answer(config, messages):
        if "(order 3)" in messages[-1]["content"]:
            raise RuntimeError("the model fell over")
        return "positive"

    results = Experiment.from_yaml(offline_experiment()).run(progress=False,
                                                             send=FakeSend(answer))
    assert results.frame["error"].notna().sum() == 2  # t003, in each variant
    run_id = results.run_ids["guided"]
    experiment_id = client().get_run(run_id).info.experiment_id
    [trace] = mlflow.search_traces(locations=[experiment_id], run_id=run_id,
                                   return_type="list")
    assert trace.info.state == "ERROR"
    failed = [span for span in _calls(trace) if span.status.status_code == "ERROR"]
    assert [span.name for span in failed] == ["guided/t003"]
    assert "fell over" in failed[0].attributes["error"]
    assert all("error" not in span.attributes for span in _calls(trace) if span not in failed)


def test_a_cached_rerun_makes_no_new_traces(make_experiment):
    folder = make_experiment()
    Experiment.from_yaml(folder).run(progress=False)
    again = Experiment.from_yaml(folder).run(progress=False, log_again=True)
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


def test_pii_is_redacted_before_logging_when_asked(offline_experiment, project):
    folder = offline_experiment()
    text = (folder / "experiment.yaml").read_text().replace(
        "concurrency: 4", "concurrency: 4\n  redact_pii: true")
    (folder / "experiment.yaml").write_text(text)
    mentions = FakeSend(lambda config, messages: "write to jane.doe@example.com for a refund")
    results = Experiment.from_yaml(folder).run(progress=False, send=mentions)
    assert "jane.doe@example.com" in results.frame["output"].iloc[0]  # kept in memory
    mlflow.flush_trace_async_logging()
    found = subprocess.run(["grep", "-r", "-l", "-a", "jane.doe@example.com",
                            str(project / "mlruns")], capture_output=True, text=True)
    assert found.stdout == ""


def test_a_long_run_is_split_into_several_traces_and_no_call_is_lost(offline_experiment,
                                                                     monkeypatch):
    from workbench import run_traces

    monkeypatch.setattr(run_traces, "_CALLS_PER_TRACE", 7)
    results = Experiment.from_yaml(offline_experiment()).run(progress=False, send=answers())
    for variant in ("bare", "guided"):
        run_id = results.run_ids[variant]
        experiment_id = client().get_run(run_id).info.experiment_id
        traces = mlflow.search_traces(locations=[experiment_id], run_id=run_id,
                                      return_type="list")
        assert sorted(trace.info.tags["mlflow.traceName"] for trace in traces) == [
            f"{variant} (1/3)", f"{variant} (2/3)", f"{variant} (3/3)"]
        names = sorted(span.name for trace in traces for span in _calls(trace))
        assert names == [f"{variant}/t{i:03d}" for i in range(20)]
