"""What the MLflow UI shows of a run: readable names, durations that cover the calls, failed
runs marked so, per-example tables with the example's fields, labelled prompt versions."""

import time

import pytest

from workbench import Experiment
from workbench.prompts.registry import client
from workbench.tracking import load_results

from .llm_server import Faults


@pytest.fixture
def experiment(make_experiment):
    return Experiment.from_yaml(make_experiment())


def _runs(results):
    c = client()
    return c.get_run(results.run_ids["parent"]), {
        v: c.get_run(results.run_ids[v]) for v in ("bare", "guided")}


def test_run_names_say_experiment_variants_and_a_short_id(experiment):
    results = experiment.run(progress=False)
    parent, children = _runs(results)
    short = parent.info.run_id[:7]
    assert parent.info.run_name == f"triage: bare vs guided · {short}"
    assert children["guided"].info.run_name == f"guided · triage · {short}"


def test_child_runs_last_from_the_first_call_to_the_end_of_logging(experiment, llm_server):
    llm_server.latency = 0.2
    before = time.time() * 1000
    results = experiment.run(progress=False)
    parent, children = _runs(results)
    for run in (parent, *children.values()):
        # the calls started before the run was created: the run starts with them
        assert before <= run.info.start_time
        assert run.info.end_time - run.info.start_time >= 200
    first_call = results.frame["started_at"].min() * 1000
    assert parent.info.start_time == int(first_call)
    assert parent.info.status == "FINISHED" and "workbench.errors" not in parent.data.tags


def test_a_run_where_every_call_failed_is_not_shown_as_finished(experiment, llm_server):
    llm_server.faults = Faults(server_error=1.0)
    results = experiment.run(progress=False)
    parent, children = _runs(results)
    assert parent.info.status == "FAILED"
    assert parent.data.tags["workbench.errors"] == "all"
    assert parent.data.tags["workbench.most_common_error"].startswith("40 of 40 failed calls:")
    assert {run.info.status for run in children.values()} == {"FAILED"}


def test_some_failed_calls_are_a_tag_on_a_finished_run(experiment, llm_server):
    llm_server.faults = Faults(by_content={"refund": "server_error"})
    results = experiment.run(progress=False)
    parent, children = _runs(results)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["workbench.errors"] == "10 of 40"
    assert children["bare"].data.tags["workbench.errors"] == "5 of 20"


def test_the_per_example_table_shows_inputs_and_expected_values(experiment):
    results = experiment.run(progress=False)
    c = client()
    run = c.get_run(results.run_ids["guided"])
    table = c.load_table(run.info.experiment_id, "results.json", run_ids=[run.info.run_id])
    columns = list(table.columns)
    at = columns.index("example_id")
    assert columns[at + 1:at + 3] == ["inputs.ticket", "expectations.label"]
    row = table[table["example_id"] == "t001"].iloc[0]
    assert row["inputs.ticket"] == "I want a refund now (order 1)"
    assert row["expectations.label"] == "negative" and row["output"] == "negative"
    # read back for a comparison, the table is the results again, without the copies
    again = load_results(results.run_ids["parent"])
    assert not [c for c in again.frame.columns if c.startswith(("inputs.", "expectations."))]
    assert len(again.frame) == 40


def test_each_prompt_version_names_its_variant(experiment):
    results = experiment.run(progress=False)
    c = client()
    for variant in ("bare", "guided"):
        version = c.get_prompt_version("triage", results.prompt_versions[variant])
        assert version.tags["workbench.variant"] == variant
        assert version.commit_message == f"variant {variant} of experiment triage"


def test_audit_records_stay_one_short_readable_line(experiment):
    from workbench.prompts.registry import AUDIT_PREFIX, history, promote

    results = experiment.run(progress=False)
    verdict = "guided better than bare " + "x" * 2000 + "\nper-metric details\n" * 50
    promote("triage", results.prompt_versions["guided"], "staging", approver="alice",
            reason="wins", evidence={"verdict": verdict, "run_id": "r1"})
    tags = client().get_prompt("triage").tags
    (record,) = [v for k, v in tags.items() if k.startswith(AUDIT_PREFIX)]
    assert len(record) < 600 and "\\n" not in record
    assert history("triage").iloc[-1]["evidence"]["verdict"].startswith("guided better")
    version_tags = client().get_prompt_version("triage", results.prompt_versions["guided"]).tags
    assert len(version_tags["workbench.promoted.staging.verdict"]) <= 240


@pytest.mark.parametrize(("uri", "env", "expected"), [
    ("http://mlflow.team:8080/", None, "http://mlflow.team:8080/#/runs/r1"),
    ("https://mlflow.example.org", "http://127.0.0.1:9999", "https://mlflow.example.org/#/runs/r1"),
    ("sqlite:///tmp/mlflow.db", None, "http://127.0.0.1:5000/#/runs/r1"),
    ("sqlite:///tmp/mlflow.db", "http://127.0.0.1:5055/", "http://127.0.0.1:5055/#/runs/r1"),
])
def test_links_follow_the_configured_tracking_server(monkeypatch, uri, env, expected):
    from workbench.tracking import UI_ENV, run_url

    if env:
        monkeypatch.setenv(UI_ENV, env)
    else:
        monkeypatch.delenv(UI_ENV, raising=False)
    assert run_url("r1", uri=uri) == expected
    assert run_url("r1", experiment_id="7", uri=uri) == expected.replace(
        "#/runs/", "#/experiments/7/runs/")


def test_links_default_to_the_projects_tracking_uri(project, monkeypatch):
    from workbench.tracking import ui_url

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5123")
    assert ui_url() == "http://127.0.0.1:5123"


def test_a_version_reused_by_a_renamed_variant_names_both(make_experiment):
    first = Experiment.from_yaml(make_experiment()).run(progress=False)
    renamed = Experiment.from_yaml(make_experiment(
        prompts={"plain": {"template": "Sentiment of: {{ticket}}"},
                 "guided": {"messages": [
                     {"role": "system",
                      "content": "Answer with one word: positive or negative."},
                     {"role": "user", "content": "{{ticket}}"}]}},
        baseline="plain")).run(progress=False)
    version = first.prompt_versions["bare"]
    assert renamed.prompt_versions["plain"] == version  # same content: no new version
    tags = client().get_prompt_version("triage", version).tags
    assert tags["workbench.variant"] == "bare, plain"
    assert client().get_prompt_version(
        "triage", first.prompt_versions["guided"]).tags["workbench.variant"] == "guided"
