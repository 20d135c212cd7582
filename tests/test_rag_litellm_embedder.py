"""Hosted embedding models through litellm and the gateway, against the loopback server:
indexes build and search, rebuilds come from the cache, failures are clear errors, and a
model changed behind the same name is caught."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from workbench.errors import Unauthorized
from workbench.gateway.config import ModelConfig
from workbench.observe import attribute
from workbench.rag import Corpus, Document, build_index, load_index
from workbench.rag.embedders import PROBES, make_embedder
from workbench.rag.errors import FingerprintMismatch, RagError
from workbench.rag.litellm_embedder import LiteLLMEmbedder

from .test_observe_recording import ledger_calls
from .test_rag_index import CHUNKER, TOPICS

KB = Corpus([Document(k, v) for k, v in TOPICS.items()])


@pytest.fixture
def embedder_spec(project, llm_server):
    return {"model": "openai/test-embed", "api_base": llm_server.base_url, "num_retries": 1}


def build(spec, **options):
    return build_index(KB, name="kb", chunker=CHUNKER, embedder=spec, track=False, **options)


def inputs(server):
    return [r.get("input") for r in server.requests]


def test_an_index_built_on_a_hosted_model_finds_the_document_that_answers(
        embedder_spec, llm_server):
    idx = build(embedder_spec)
    loaded = load_index("kb")

    assert idx.manifest["embedder"]["kind"] == "litellm"
    assert idx.manifest["embedder"]["params"]["model"] == "openai/test-embed"
    assert loaded.vectors.shape == (len(idx.chunks), llm_server.embedding_dimensions)
    assert np.allclose(np.linalg.norm(loaded.vectors, axis=1), 1.0, atol=1e-5)
    assert loaded.search("which clause catches exceptions", k=1)[0].doc_id == "try"
    assert loaded.search("anonymous lambda functions", k=1)[0].doc_id == "lambda"


def test_a_rebuild_embeds_from_the_cache_and_sends_only_the_probes(embedder_spec, llm_server):
    build(embedder_spec)
    before = llm_server.request_count

    again = build(embedder_spec)

    assert again.version == "v2"
    assert inputs(llm_server)[before:] == [list(PROBES)]  # the model check, never cached


def test_a_changed_model_is_caught_when_the_index_is_loaded(embedder_spec, llm_server):
    build(embedder_spec)
    llm_server.embedding_salt = "retrained"

    with pytest.raises(FingerprintMismatch, match="litellm embedder .* changed since the build"):
        load_index("kb")


def test_a_rebuild_after_the_model_changed_bypasses_the_stale_cache(
        embedder_spec, llm_server, caplog):
    first = build(embedder_spec)
    llm_server.embedding_salt = "retrained"
    before = llm_server.request_count

    with caplog.at_level(logging.WARNING, logger="workbench.rag"):
        second = build(embedder_spec)

    assert "re-embeds without the cache" in caplog.text
    sent = [t for batch in inputs(llm_server)[before:] for t in batch]
    assert set(sent) == set(PROBES) | {c.text for c in first.chunks}
    assert second.manifest["embedder"]["fingerprint"] != first.manifest["embedder"]["fingerprint"]
    assert load_index("kb").version == "v2"  # built and loaded with the same model


def test_a_rejected_key_is_a_clear_error_without_the_key(embedder_spec, llm_server,
                                                         monkeypatch):
    from tests.llm_server import Faults

    monkeypatch.setenv("EMBED_KEY", "sk-wrong-0123456789abcdef")
    llm_server.faults = Faults(auth_key="sk-right", echo_key=True)

    with pytest.raises(Unauthorized) as caught:
        build({**embedder_spec, "api_key_env": "EMBED_KEY"})

    assert caught.value.status == 401 and caught.value.model == "openai/test-embed"
    assert "check the key" in str(caught.value)
    assert "sk-wrong-0123456789abcdef" not in str(caught.value)


@pytest.mark.parametrize("spec, variable", [
    ({"api_key_env": "NO_SUCH_EMBED_KEY"}, "NO_SUCH_EMBED_KEY"),
    ({"api_base": None}, "OPENAI_API_KEY"),  # litellm's own variable for the provider
])
def test_a_missing_key_is_an_error_before_any_call(embedder_spec, llm_server, monkeypatch,
                                                   spec, variable):
    monkeypatch.delenv("NO_SUCH_EMBED_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    with pytest.raises(Unauthorized, match=variable):
        build({**embedder_spec, **spec})

    assert llm_server.request_count == 0


def test_a_failed_request_is_retried(embedder_spec, llm_server):
    from tests.llm_server import Faults

    llm_server.faults = Faults(fail_first=1)

    idx = build(embedder_spec)

    assert llm_server.request_count == 3  # a 500, its retry, the chunks
    assert idx.search("files closed when the block ends", k=1)[0].doc_id == "with"


def test_calls_are_priced_and_recorded_as_embedding_requests(project, llm_server):
    from workbench.gateway.cache import ResponseCache
    from workbench.gateway.client import Gateway

    config = ModelConfig(model="openai/test-embed", api_base=llm_server.base_url,
                         input_cost_per_token=1e-6)
    texts = ["one two three", "four five"]
    gateway = Gateway(ResponseCache(project / "cache.sqlite"))
    with attribute("kb-answer", request_type="answer"):
        got = _run(gateway.embed(config, texts))
    again = _run(gateway.embed(config, texts))  # outside attribute: recorded on its own

    assert got.prompt_tokens == 5 and got.cost == pytest.approx(5e-6)
    assert got.vectors.shape == (2, llm_server.embedding_dimensions)
    assert again.cached and np.array_equal(again.vectors, got.vectors)
    assert llm_server.request_count == 1
    calls = ledger_calls().sort_values("ts")
    assert list(calls.request_type) == ["embedding", "embedding"]
    assert list(calls.application.fillna("-")) == ["kb-answer", "-"]
    assert list(calls.tokens_in) == [5, 0] and list(calls.cache_hit) == [False, True]
    assert list(calls.cost) == pytest.approx([5e-6, 0.0])


def test_an_unpriced_model_warns_once_like_a_completion(embedder_spec, llm_server, caplog):
    from workbench.gateway.client import Gateway

    config = ModelConfig(model="openai/unpriced-embed", api_base=llm_server.base_url)
    with caplog.at_level(logging.WARNING, logger="workbench.gateway"):
        got = _run(Gateway().embed(config, ["some text"]))

    assert got.cost == 0.0
    assert "no price known for openai/unpriced-embed" in caplog.text


@pytest.mark.parametrize("spec", [
    "openai/text-embedding-3-small",
    {"model": "openai/text-embedding-3-small", "api_key_env": "OPENAI_API_KEY"},
    {"kind": "litellm", "model": "openai/text-embedding-3-small"},
])
def test_a_litellm_model_is_named_like_the_offline_embedders(spec):
    made = make_embedder(spec)

    assert isinstance(made, LiteLLMEmbedder)
    assert made.config.model == "openai/text-embedding-3-small"


@pytest.mark.parametrize("spec, problem", [
    ({"model": "openai/x", "api_key": "sk-literal"}, "environment variable"),
    ({"model": "openai/x", "colour": "blue"}, "colour"),
])
def test_a_bad_hosted_embedder_spec_is_a_clear_error(spec, problem):
    with pytest.raises(RagError, match=problem):
        make_embedder(spec)


def _run(call):
    import asyncio

    return asyncio.run(call)


def test_an_update_sends_only_the_changed_documents_chunks(embedder_spec, llm_server):
    from workbench.rag import update_index

    first = build(embedder_spec)
    changed = "Lambda expressions create small anonymous functions inline."
    before = llm_server.request_count

    second = update_index(first, Corpus([Document(k, changed if k == "lambda" else v)
                                         for k, v in TOPICS.items()]), track=False)

    sent = [t for batch in inputs(llm_server)[before:] for t in batch]
    assert sent == [c.text for c in second.chunks if c.doc_id == "lambda"]
    assert second.search("small inline anonymous functions", k=1)[0].doc_id == "lambda"
