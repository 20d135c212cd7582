"""An experiment's non-inferiority margin and request type make its run routing evidence:
the A/B report is logged with the margin, the run is tagged with the request type."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench import ModelConfig, PromptService, PromptTemplate
from workbench.cli import main
from workbench.errors import SpecError
from workbench.gateway.routing import RoutingError, load
from workbench.prompts.registry import promote, register_version
from workbench.spec import load_spec


def two_models(make_experiment, server, **overrides):
    big = ModelConfig(model="openai/test-model", api_base=server.base_url, num_retries=0)
    small = ModelConfig(model="openai/test-model-2", api_base=server.base_url, num_retries=0)
    folder = make_experiment(
        name="triage-models", prompts={"guided": {"template": "One word: {{ticket}}"}},
        models={"big": big.model_dump(exclude_defaults=True),
                "small": small.model_dump(exclude_defaults=True)}, baseline="big",
        **overrides)
    return folder, big, small


def parent_run():
    from mlflow.tracking import MlflowClient

    from workbench.settings import tracking_uri

    client = MlflowClient(tracking_uri())
    ids = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(ids, "tags.`workbench.child_runs` != ''")
    assert len(runs) == 1
    return client, runs[0]


@pytest.mark.parametrize(("field", "value", "message"), [
    ("non_inferiority_margin", 0, "non_inferiority_margin"),
    ("non_inferiority_margin", "small", "non_inferiority_margin"),
    ("request_type", "", "request_type"),
    ("request_type", "it's", "leave out quote characters"),
])
def test_a_bad_margin_or_request_type_is_refused_at_load(make_experiment, llm_server, field,
                                                         value, message):
    folder, _, _ = two_models(make_experiment, llm_server, **{field: value})
    with pytest.raises(SpecError, match=message):
        load_spec(folder)


def test_a_margin_on_a_single_variant_is_refused_at_load(make_experiment):
    folder = make_experiment(prompts={"bare": {"template": "Sentiment of: {{ticket}}"}},
                             baseline=None, non_inferiority_margin=0.1)
    with pytest.raises(SpecError, match="a margin needs two or more variants"):
        load_spec(folder)


def test_a_run_with_margin_and_request_type_is_accepted_as_routing_evidence(
        make_experiment, llm_server):
    folder, big, small = two_models(make_experiment, llm_server,
                                    non_inferiority_margin=0.2, request_type="triage")
    assert main(["run", str(folder)]) == 0
    client, run = parent_run()
    assert run.data.tags["workbench.request_type"] == "triage"
    assert run.data.params["non_inferiority_margin"] == "0.2"
    path = client.download_artifacts(run.info.run_id, "ab_report.json", str(folder))
    report = json.loads(Path(path).read_text())
    assert report["settings"]["non_inferiority_margin"] == 0.2
    assert report["pairs"][0]["non_inferior"] is True

    register_version("triage", PromptTemplate("Sentiment: {{ticket}}"), big)
    promote("triage", 1, "production", approver="test")
    rule = {"name": "cheap", "request_type": "triage", "to": small.model_dump(),
            "evidence": run.info.run_id}
    service = PromptService("triage", routes=load([rule]))
    answer = service.complete(ticket="I love it", tags={"request_type": "triage"})
    assert answer.model == small.model


def test_a_run_without_margin_is_refused_as_evidence_with_the_reason(make_experiment,
                                                                      llm_server):
    folder, big, small = two_models(make_experiment, llm_server, request_type="triage")
    assert main(["run", str(folder)]) == 0
    _, run = parent_run()
    assert run.data.tags["workbench.request_type"] == "triage"
    register_version("triage", PromptTemplate("Sentiment: {{ticket}}"), big)
    promote("triage", 1, "production", approver="test")
    rule = {"name": "cheap", "request_type": "triage", "to": small.model_dump(),
            "evidence": run.info.run_id}
    with pytest.raises(RoutingError, match="does not show openai/test-model-2 non-inferior "
                       "to openai/test-model .*run the A/B with a non-inferiority margin"):
        PromptService("triage", routes=load([rule]))
