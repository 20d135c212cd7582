"""What an execution leaves in MLflow: runs, params, metrics, tables, prompts, aliases."""

import json
import os
import socket

import mlflow
import pytest

from workbench import Experiment
from workbench.prompts.registry import HASH_TAG, alias_version, client, load, promote


@pytest.fixture
def tracked(make_experiment):
    experiment = Experiment.from_yaml(make_experiment())
    return experiment, experiment.run(progress=False)


def test_one_parent_run_and_one_child_run_per_variant(tracked):
    experiment, results = tracked
    c = client()
    parent = c.get_run(results.run_ids["parent"])
    children = {v: c.get_run(results.run_ids[v]) for v in ("bare", "guided")}
    assert parent.info.status == "FINISHED"
    # who logs it: a later run can tell a killed logger from a live one
    assert parent.data.tags["workbench.pid"] == str(os.getpid())
    assert parent.data.tags["workbench.host"] == socket.gethostname()
    for variant, run in children.items():
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.params["variant"] == variant
        assert run.data.params["model"] == "openai/test-model"
        assert run.data.params["model.max_tokens"] == "8"
        assert run.data.params["eval_set_digest"] == experiment.evalset.digest[:16]
    assert children["guided"].data.metrics["exact_match"] == 1.0
    assert children["bare"].data.metrics["exact_match"] == 0.5
    assert {"exact_match_ci_low", "exact_match_ci_high", "latency_p50", "latency_p95",
            "cost", "n_errors"} <= children["bare"].data.metrics.keys()
    assert parent.data.metrics["ab/exact_match/bare_vs_guided/diff"] == 0.5
    assert parent.data.metrics["ab/exact_match/bare_vs_guided/p_adj"] < 0.05
    artifacts = {a.path for a in c.list_artifacts(parent.info.run_id)}
    assert {"ab_report.json", "ab_report.txt", "ab_forest_plot.png", "results.json"} <= artifacts


def test_the_per_example_table_and_the_eval_set_are_logged(tracked):
    _, results = tracked
    run_id = results.run_ids["guided"]
    experiment_id = client().get_run(run_id).info.experiment_id
    table = client().load_table(experiment_id, "results.json", run_ids=[run_id])
    assert len(table) == 20 and set(table["example_id"]) == set(results.frame["example_id"])
    inputs = client().get_run(run_id).inputs.dataset_inputs
    assert inputs[0].dataset.name == "tickets"


def test_each_variant_is_a_prompt_version_linked_to_its_run(tracked):
    _, results = tracked
    c = client()
    guided = load("triage", version=results.prompt_versions["guided"])
    assert guided.template.is_chat and guided.model.model == "openai/test-model"
    assert guided.model.params["max_tokens"] == 8
    linked = json.loads(c.get_run(results.run_ids["guided"]).data.tags["mlflow.linkedPrompts"])
    assert linked == [{"name": "triage", "version": str(results.prompt_versions["guided"])}]


def test_an_unchanged_prompt_is_not_registered_again(make_experiment, tracked):
    experiment, first = tracked
    second = experiment.run(progress=False)
    assert second.prompt_versions == first.prompt_versions
    versions = client().search_prompt_versions("triage")
    assert len(versions) == 2 and all(HASH_TAG in v.tags for v in versions)


def test_promotion_moves_the_alias_that_plain_mlflow_reads(tracked):
    _, results = tracked
    version = results.prompt_versions["guided"]
    promote("triage", version, "production", approver="alice", reason="wins on exact match")
    assert alias_version("triage", "production") == version
    plain = mlflow.genai.load_prompt("prompts:/triage@production")
    assert plain.template == load("triage", version=version).template.template
    assert plain.tags["workbench.promoted.production.by"] == "alice"
    assert plain.tags["workbench.promoted.production.reason"] == "wins on exact match"


def test_an_eval_set_with_integer_columns_logs_without_mlflows_schema_warning(make_experiment,
                                                                              recwarn):
    # MLflow warns that integer columns "cannot represent missing values" at model-serving
    # time: nothing of the kind happens here, so the user must not be told it
    rows = [{"id": f"t{i}", "ticket": f"ticket {i}", "label": "positive", "stars": i % 5}
            for i in range(6)]
    results = Experiment.from_yaml(make_experiment(rows=rows)).run(progress=False)
    assert results.run_ids
    inputs = client().get_run(results.run_ids["parent"]).inputs.dataset_inputs
    assert "stars" in inputs[0].dataset.schema
    assert not [w for w in recwarn if "Integer columns" in str(w.message)]
