"""A model downgrade offered as a ready A/B from logged traffic: the folder holds the served
version as baseline, the cheaper model as candidate, the stored (redacted) requests of that
type, a margin and the request type; its run is the evidence a route rule cites."""

from __future__ import annotations

import json

import pytest
import yaml

from workbench import ModelConfig, PromptService, PromptTemplate
from workbench.cli import main
from workbench.gateway.routing import load
from workbench.observe.abtest import AbFromTrafficError, ab_from_traffic
from workbench.prompts.registry import promote, register_version

EMAIL = "bob.jones@example.org"
TICKETS = [f"{text} (order {i})" for i, text in enumerate(
    ["I love it", f"I want a refund, write to {EMAIL}", "The screen arrived broken",
     "Great support"] * 6)]


def models(server):
    big = ModelConfig(model="openai/test-model", api_base=server.base_url, num_retries=0,
                      params={"temperature": 0})
    small = ModelConfig(model="openai/test-model-2", api_base=server.base_url, num_retries=0,
                        params={"temperature": 0})
    return big, small


def serve(server, **options):
    big, small = models(server)
    register_version("triage", PromptTemplate("One word, positive or negative: {{ticket}}"),
                     big)
    promote("triage", 1, "production", approver="test")
    service = PromptService("triage", **options)
    for ticket in TICKETS:
        service.complete(ticket=ticket, tags={"request_type": "triage"})
    service.complete(ticket="other", tags={"request_type": "chat"})
    if service.monitor is not None:
        assert service.monitor.idle()
    return big, small


def test_the_written_folder_runs_and_its_run_is_routing_evidence(project, llm_server):
    big, small = serve(llm_server, guard={"pii": "log"})
    folder = ab_from_traffic("triage", "triage", small, margin=0.2)
    assert folder == project / "experiments" / "triage-triage-downgrade"
    spec = yaml.safe_load((folder / "experiment.yaml").read_text())
    assert (spec["request_type"], spec["non_inferiority_margin"]) == ("triage", 0.2)
    assert spec["baseline"] == "served"
    assert spec["models"]["served"]["model"] == big.model
    assert spec["models"]["cheaper"]["model"] == small.model
    served = yaml.safe_load((folder / "prompts" / "served.yaml").read_text())
    assert served["template"] == "One word, positive or negative: {{ticket}}"
    rows = [json.loads(line) for line in (folder / spec["eval_set"]["path"]).open()]
    assert len(rows) == len(TICKETS)  # the triage requests only, not the chat one
    assert {r["ticket"] for r in rows} >= {t for t in TICKETS if EMAIL not in t}
    assert EMAIL not in (folder / spec["eval_set"]["path"]).read_text()
    sent = llm_server.request_count

    assert main(["run", str(folder)]) == 0
    assert llm_server.request_count == sent + 2 * len(TICKETS)
    from mlflow.tracking import MlflowClient

    from workbench.settings import tracking_uri

    client = MlflowClient(tracking_uri())
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              "tags.`workbench.request_type` = 'triage'")
    parent = next(r for r in runs if r.data.tags.get("workbench.child_runs"))
    rule = {"name": "cheap", "request_type": "triage", "to": small.model_dump(),
            "evidence": parent.info.run_id}
    PromptService("triage", routes=load([rule]))  # accepted: checked at construction


def test_without_stored_traffic_the_error_says_what_to_turn_on(project, llm_server):
    _, small = serve(llm_server)
    with pytest.raises(AbFromTrafficError,
                       match=r"is stored with its inputs.*guard=\{'pii': 'log'\}"):
        ab_from_traffic("triage", "triage", small)
    assert not (project / "experiments" / "triage-triage-downgrade").exists()


@pytest.mark.parametrize(("args", "message"), [
    (("triage", "billing"), "no served 'billing' requests of 'triage'"),
    (("triage", "triage", "openai/test-model"), "is the model serving"),
])
def test_bad_requests_are_refused_before_anything_is_written(project, llm_server, args,
                                                             message):
    _, small = serve(llm_server, guard={"pii": "log"})
    with pytest.raises(AbFromTrafficError, match=message):
        ab_from_traffic(*args if len(args) == 3 else (*args, small))
    assert not (project / "experiments").exists() or not any(
        (project / "experiments").iterdir())


@pytest.fixture
def ledger(project):
    from workbench.observe.store import Store

    opened = Store(f"sqlite:///{project / 'usage.sqlite'}")
    yield opened
    opened.dispose()


def test_recommend_offers_the_ab_and_says_what_to_turn_on_without_stored_traffic(ledger):
    from workbench.gateway.pricing import price
    from workbench.monitor.store import MonitorStore
    from workbench.observe import savings

    from .test_observe_savings import MINI, ab_evidence, spread

    big = ModelConfig(model="openai/gpt-4o")
    cost = price(big, 1000, 100)
    triage = spread(100, model=big.model, tokens_in=1000, tokens_out=100, cost=cost)
    for i, r in enumerate(triage):
        r.request_id, r.fingerprint = f"r{i}", f"f{i}"
    chat = spread(10, request_type="chat", fingerprint="c")  # the project calls MINI too
    ledger.write(triage + chat)

    def offered():
        return [r for r in savings.recommend(ledger, "30d") if r.kind == "downgrade_ab"]

    (advice,) = offered()
    assert advice.key == "request_type=triage model=openai/gpt-4o prompt=triage"
    expected = (cost - price(ModelConfig(model=MINI), 1000, 100)) * 100 * 3
    assert advice.monthly_savings_usd == pytest.approx(expected, rel=0.01)
    assert advice.offer is None
    assert "None of them is stored" in advice.detail and "guard={'pii': 'log'}" in advice.detail

    MonitorStore(ledger.url).insert("served_requests", [
        {"request_id": f"r{i}", "ts": r.ts, "prompt": "triage", "inputs": "{}"}
        for i, r in enumerate(triage[:40])])
    (advice,) = offered()
    assert advice.offer == {"prompt": "triage", "request_type": "triage",
                            "cheaper_model": MINI}
    assert "ab_from_traffic('triage', 'triage', 'openai/gpt-4o-mini') writes the A/B from " \
        "the 40 stored requests" in advice.detail

    ab_evidence("triage", non_inferior=True)
    assert offered() == []  # an A/B already backs it: the downgrade itself is proposed
    assert "downgrade" in {r.kind for r in savings.recommend(ledger, "30d")}


def test_the_cost_panel_button_writes_the_offered_ab_and_says_where(project):
    from workbench.monitor.store import MonitorStore
    from workbench.observe import default_ledger
    from workbench.ui import CostPanel

    from .test_observe_savings import spread

    register_version("triage", PromptTemplate("Sentiment: {{ticket}}"),
                     ModelConfig(model="openai/gpt-4o"))
    triage = spread(30, model="openai/gpt-4o", tokens_in=1000, tokens_out=100, cost=0.0035,
                    prompt_version=1)
    for i, r in enumerate(triage):
        r.request_id, r.fingerprint = f"r{i}", f"f{i}"
    store = default_ledger().store()
    store.write(triage + spread(10, request_type="chat", fingerprint="c"))
    panel = CostPanel(store=store, window="30 days")
    panel.ab_button.click()
    assert "No downgrade A/B is offered" in panel.ab_status.value  # nothing stored yet
    assert "None of them is stored" in panel.advice.value

    MonitorStore(store.url).insert("served_requests", [
        {"request_id": f"r{i}", "ts": r.ts, "prompt": "triage", "prompt_version": 1,
         "inputs": json.dumps({"ticket": f"ticket {i}"}),
         "output": None if i == 0 else "positive",  # r0 was blocked by a guard
         "flagged": i == 0, "blocked": i == 0, "sampled": False}
        for i, r in enumerate(triage)])
    panel.refresh()
    assert panel.offer_choice.options[0][1] == ("triage", "triage", "openai/gpt-4o-mini")
    panel.ab_button.click()
    folder = project / "experiments" / "triage-triage-downgrade"
    assert f"Wrote the A/B to {folder}" in panel.ab_status.value
    spec = yaml.safe_load((folder / "experiment.yaml").read_text())
    assert spec["models"]["cheaper"]["model"] == "openai/gpt-4o-mini"
    rows = [json.loads(line) for line in (folder / spec["eval_set"]["path"]).open()]
    assert len(rows) == 29 and "r0" not in {r["id"] for r in rows}  # no answer to compare
    panel.ab_button.click()  # a second click does not overwrite it
    assert "already exists" in panel.ab_status.value
