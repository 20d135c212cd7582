"""Serving with retrieval: ``PromptService(..., index="kb@production")`` fills {{context}},
answers with its sources and records the retrieve step; and query drift."""

from __future__ import annotations

import json

import numpy as np
import pytest

from workbench import ModelConfig, PromptService, PromptTemplate
from workbench.errors import TemplateError
from workbench.observe import default_ledger, queries
from workbench.prompts.registry import promote, register_version
from workbench.rag import Corpus, Document, build_index, update_index
from workbench.rag.aliases import IndexRegistry
from workbench.rag.drift import QueryDrift
from workbench.rag.errors import FingerprintMismatch, RagError

from .rag_topics import TOPICS as ALL_TOPICS

TOPICS = {k: v for k, v in ALL_TOPICS.items() if k != "dict"}  # dict comes later


def build(project, topics=TOPICS, embedder="bm25"):
    kb = Corpus([Document(k, v) for k, v in topics.items()])
    return build_index(kb, name="kb", chunker={"size": 16, "overlap": 0}, embedder=embedder,
                       root=project / ".workbench" / "indexes", track=False)


@pytest.fixture
def served(project, llm_server):
    build(project)
    promote("kb", 1, "production", approver="ops", mlflow_client=IndexRegistry())
    model = ModelConfig(model="openai/test-model", api_base=llm_server.base_url,
                        params={"temperature": 0}, num_retries=0)
    version, _ = register_version("kbqa", PromptTemplate(
        [{"role": "system", "content": "Answer from the passages."},
         {"role": "user", "content": "{{context}}\n\nQ: {{query}}"}]), model)
    promote("kbqa", version, "production", approver="ops")
    return version


def test_a_served_request_retrieves_fills_the_context_and_names_its_sources(served,
                                                                            llm_server):
    service = PromptService("kbqa", index="kb@production")
    reply = service.complete(query="which clause catches exceptions")

    assert reply.sources[0] == "try" and service.index.index.ref == "kb@v1"
    sent = llm_server.last_request["messages"][1]["content"]
    assert sent.startswith("[1] (try) ") and sent.endswith("Q: which clause catches exceptions")
    ledger = default_ledger()
    assert ledger.flush()
    steps = queries.steps_frame(ledger.store(), "1h", []).set_index("step")["seconds"]
    assert {"prompt", "retrieve", "render", "call", "total"} == set(steps.index)
    assert steps["total"] == pytest.approx(steps["prompt"] + steps["retrieve"]
                                           + steps["render"] + steps["call"])


def test_streaming_retrieves_too(served, llm_server):
    stream = PromptService("kbqa", index="kb@production").stream(query="anonymous functions")
    "".join(stream)
    assert stream.reply is not None and "(lambda)" in json.dumps(llm_server.last_request)
    assert stream.steps["retrieve"] > 0


def test_a_request_without_the_query_or_with_its_own_context_is_refused(served):
    service = PromptService("kbqa", index="kb@production")
    with pytest.raises(TemplateError, match="variable 'query'"):
        service.complete(question="loops")
    with pytest.raises(TemplateError, match="filled by retrieval"):
        service.complete(query="loops", context="mine")


def test_an_alias_move_is_served_after_reload(served, project):
    service = PromptService("kbqa", index="kb@production")
    update_index("kb", Corpus([Document(k, v) for k, v in {**TOPICS, "dict": "Maps."}.items()]),
                 root=project / ".workbench" / "indexes", track=False)
    promote("kb", 2, "production", approver="ops", mlflow_client=IndexRegistry())
    assert service.index.index.ref == "kb@v1"
    assert service.index.reload() == "kb@v2"


def test_an_unknown_alias_fails_when_the_service_starts(served):
    with pytest.raises(RagError, match="no alias 'staging'.*workbench rag refresh kb"):
        PromptService("kbqa", index="kb@staging")


def test_an_index_whose_embedder_changed_is_not_served(served, project, monkeypatch):
    import workbench.rag.embedders as embedders

    original = embedders.BM25Embedder.probe_vectors
    monkeypatch.setattr(embedders.BM25Embedder, "probe_vectors",
                        lambda self: original(self) * 2)
    with pytest.raises(FingerprintMismatch, match="rebuild"):
        PromptService("kbqa", index="kb@production")


REFERENCE = ["which clause catches exceptions", "what does finally do", "how do loops end",
             "iterate over a sequence", "context manager methods", "closing files",
             "anonymous functions", "what does a lambda hold", "exception handlers",
             "break out of a for loop", "with statement blocks", "lambda expressions"]


def test_served_queries_like_the_reference_raise_no_alert_and_a_shift_does(project):
    index = build(project, embedder="lsa")
    drift = QueryDrift(index, REFERENCE, window_s=60, min_queries=10, factor=1.0)
    rng = np.random.default_rng(0)
    for i, query in enumerate(rng.choice(REFERENCE, 30)):
        drift.observe(query, index.search(query, 1)[0].score, at=1000 + i)
    assert drift.check() == []

    for i in range(30):  # a new topic: gardening questions the corpus cannot answer
        query = f"when should I water tomato seedlings {i}"
        drift.observe(query, index.search(query, 1)[0].score, at=2000 + i)
    alerts = drift.check()
    assert {a.signal for a in alerts} == {"centroid", "top1"}
    assert all(a.window_start == 1980 and a.observed > a.threshold for a in alerts)
    assert "query drift on kb@v1" in str(alerts[0])


def test_drift_needs_enough_reference_queries(project):
    with pytest.raises(RagError, match="at least 10 reference queries"):
        QueryDrift(build(project), REFERENCE[:3])
