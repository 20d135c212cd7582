"""Cost-based routing: a rule moves a request type to a cheaper model only on an A/B's logged
verdict (checked in MLflow before any call), or when forced with a reason; routed and
shadow calls are in the usage ledger."""

from __future__ import annotations

import logging

import pytest

from workbench import Experiment, ModelConfig, PromptService, PromptTemplate
from workbench.gateway.routing import RoutePolicy, RoutingError, load
from workbench.observe import default_ledger, queries
from workbench.prompts.registry import promote, register_version
from workbench.serving import shadow


def ledger_calls():
    ledger = default_ledger()
    assert ledger.flush()
    return queries.calls_frame(ledger.store(), since="1h")


def models(server):
    big = ModelConfig(model="openai/test-model", api_base=server.base_url, num_retries=0)
    small = ModelConfig(model="openai/test-model-2", api_base=server.base_url, num_retries=0)
    return big, small


@pytest.fixture
def served(project, llm_server):
    big, small = models(llm_server)
    register_version("triage", PromptTemplate("Sentiment: {{ticket}}"), big)
    promote("triage", 1, "production", approver="test")
    return big, small


@pytest.mark.parametrize(("rule", "message"), [
    ({"name": "r", "to": {"model": "openai/x"}, "request_type": "triage"},
     "without evidence; fix: give evidence"),
    ({"name": "r", "to": {"model": "openai/x"}, "request_type": "triage", "forced": "  "},
     "without evidence"),
    ({"name": "r", "to": {"model": "openai/x"}, "forced": "cheap"},
     "give request_type and/or max_prompt_chars"),
    ({"name": "r", "to": {"model": "openai/x"}, "request_type": "t", "forced": "x",
      "shadow": 2}, "shadow"),
])
def test_a_rule_without_evidence_or_match_is_refused_when_loaded(rule, message):
    with pytest.raises(RoutingError, match=message):
        load([rule])


def test_a_policy_loads_from_workbench_yaml(tmp_path):
    (tmp_path / "workbench.yaml").write_text(
        "routing:\n  - name: short\n    max_prompt_chars: 40\n    to: {model: openai/m}\n"
        "    forced: tried by hand\n")
    policy = load(tmp_path / "workbench.yaml")
    assert [r.name for r in policy.rules] == ["short"]
    (tmp_path / "workbench.yaml").write_text("routing:\n  - name: s\n    to: {model: m}\n")
    with pytest.raises(RoutingError,
                       match="workbench.yaml: routing: rule 0: route 's': .*max_prompt_chars"):
        load(tmp_path / "workbench.yaml")


def test_a_forced_length_rule_routes_short_prompts_and_says_so(served, llm_server, caplog):
    big, small = served
    policy = load([{"name": "short", "max_prompt_chars": 30, "to": small.model_dump(),
                    "forced": "an offline spot check"}])
    with caplog.at_level(logging.WARNING, logger="workbench.gateway.routing"):
        service = PromptService("triage", routes=policy)
    assert "without evidence (forced: an offline spot check)" in caplog.text
    short = service.complete(ticket="ok")
    long = service.complete(ticket="a much longer ticket about an invoice that is wrong")
    assert (short.model, long.model) == (small.model, big.model)
    calls = ledger_calls().set_index("model")
    assert calls.loc[small.model, "route"] == "short"
    assert calls.loc[small.model, "requested_model"] == small.model
    assert calls["route"].isna()[big.model]
    assert [r["model"] for r in llm_server.requests] == ["test-model-2", "test-model"]


def ab_run(make_experiment, llm_server):
    """A tracked A/B of the two models on one prompt; returns the results."""
    big, small = models(llm_server)
    folder = make_experiment(
        name="triage-models", prompts={"guided": {"template": "One word: {{ticket}}"}},
        models={"big": big.model_dump(exclude_defaults=True),
                "small": small.model_dump(exclude_defaults=True)}, baseline="big")
    return Experiment.from_yaml(folder).run(progress=False)


def test_a_downgrade_stands_only_on_a_non_inferior_verdict_of_that_request_type(
        make_experiment, llm_server, caplog):
    from mlflow.tracking import MlflowClient

    from workbench.settings import tracking_uri

    results = ab_run(make_experiment, llm_server)
    run_id = results.run_ids["parent"]
    big, small = models(llm_server)
    register_version("triage", PromptTemplate("Sentiment: {{ticket}}"), big)
    promote("triage", 1, "production", approver="test")
    rule = {"name": "cheap-triage", "request_type": "triage", "to": small.model_dump(),
            "evidence": run_id, "shadow": 1.0}
    sent = llm_server.request_count

    def refused(message, **changes):
        with pytest.raises(RoutingError, match=message):
            PromptService("triage", routes=load([{**rule, **changes}]))
        assert llm_server.request_count == sent  # checked before any call

    refused("is not in the tracking store", evidence="0" * 32)
    refused("does not say which request type")
    client = MlflowClient(tracking_uri())
    client.set_tag(run_id, "workbench.request_type", "triage")
    refused("does not show openai/test-model-2 non-inferior to openai/test-model")
    report = results.compare("big", "small", non_inferiority_margin=0.2)
    assert report.pairs[0].non_inferior
    client.log_dict(run_id, report.to_dict(), "ab_report.json")
    refused("says it tested 'triage'", request_type="chat")

    service = PromptService("triage", routes=load([rule]))
    routed = service.complete(ticket="I love it", tags={"request_type": "triage"})
    other = service.complete(ticket="I love it", tags={"request_type": "chat"})
    assert (routed.model, other.model) == (small.model, big.model)
    with caplog.at_level(logging.INFO, logger="workbench.serving"):
        assert shadow.join(timeout=30)
    calls = ledger_calls()
    calls = calls[calls["prompt"] == "triage"].set_index("route", drop=False)
    assert sorted(calls["route"].fillna("-")) == ["-", "cheap-triage", "cheap-triage:shadow"]
    assert calls.loc["cheap-triage", "model"] == small.model
    assert calls.loc["cheap-triage:shadow", "model"] == big.model  # the replaced model
    assert calls.loc["cheap-triage:shadow", "request_type"] == "triage"
    usage = queries.usage(default_ledger().store(), "1h", by="route")
    assert set(usage["route"].fillna("-")) >= {"cheap-triage", "cheap-triage:shadow"}


def test_shadow_comparison_is_logged(served, llm_server, caplog):
    big, small = served
    policy = RoutePolicy(rules=[{"name": "t", "request_type": "triage", "to": small,
                                 "forced": "test", "shadow": 1.0}])
    service = PromptService("triage", routes=policy)
    with caplog.at_level(logging.INFO, logger="workbench.serving"):
        service.complete(ticket="same", tags={"request_type": "triage"})
        assert shadow.join(timeout=30)
    [event] = [r.workbench for r in caplog.records if getattr(r, "workbench", {}).get(
        "event") == "shadow"]
    assert (event["routed_model"], event["shadow_model"]) == (small.model, big.model)
    assert event["same_answer"] is True  # the loopback server answers both alike


def test_the_project_rules_of_a_prompt_apply_to_its_service(served, llm_server, project):
    big, small = served
    (project / "workbench.yaml").write_text(
        "routing:\n"
        "  - name: other\n    prompt: summaries\n    request_type: triage\n"
        "    to: {model: openai/none}\n    evidence: not-checked-for-this-prompt\n"
        f"  - name: mine\n    prompt: triage\n    request_type: triage\n"
        f"    to: {{model: {small.model}, api_base: '{llm_server.base_url}'}}\n"
        "    forced: a spot check\n")
    service = PromptService("triage")
    assert [r.name for r in service.routes.rules] == ["mine"]
    assert service.complete(ticket="x", tags={"request_type": "triage"}).model == small.model


def test_a_stream_is_routed_and_recorded_with_its_rule_and_fingerprint(served, llm_server):
    big, small = served
    policy = load([{"name": "t", "request_type": "triage", "to": small.model_dump(),
                    "forced": "test"}])
    service = PromptService("triage", routes=policy)
    stream = service.stream(ticket="same", tags={"request_type": "triage"})
    "".join(stream)
    assert stream.reply.model == small.model
    row = ledger_calls().iloc[0]
    assert (row.model, row.route) == (small.model, "t") and len(row.fingerprint) == 32


def test_routes_stay_off_when_the_served_model_changes(served, llm_server, caplog):
    import asyncio

    from workbench.prompts.versions import load as load_version

    big, small = served
    policy = load([{"name": "t", "request_type": "triage", "to": small.model_dump(),
                    "forced": "test"}])
    service = PromptService("triage", routes=policy)
    other = ModelConfig(model="openai/other-model", api_base=llm_server.base_url,
                        num_retries=0)
    register_version("triage", PromptTemplate("Mood: {{ticket}}"), other)
    moved = load_version("triage", version=2)  # what a refresh after a promotion serves
    with caplog.at_level(logging.WARNING, logger="workbench.serving"):
        for _ in range(2):
            reply = asyncio.run(service.acomplete_version(
                moved, {"ticket": "x"}, tags={"request_type": "triage"}))
            assert reply.model == "openai/other-model"  # not routed
    warnings = [r for r in caplog.records if "route rules were checked against" in
                r.getMessage()]
    assert len(warnings) == 1
