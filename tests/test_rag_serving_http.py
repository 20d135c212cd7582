"""A prompt served with an index over HTTP: ``sources`` in the answer, ``workbench serve
--index`` and ``serving.<prompt>.index`` in workbench.yaml."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from workbench import ModelConfig, PromptService, PromptTemplate
from workbench.cli import main
from workbench.prompts.registry import promote, register_version
from workbench.serving.config import ServingConfigError, serving_options
from workbench.serving.http_app import create_app
from workbench.serving.retrieval import ServedIndex

from .test_rag_serving import served  # noqa: F401  (the fixture: kb@production, kbqa)

URL = "/v1/prompts/kbqa/complete"


def ask(app, **variables):
    with TestClient(app) as http:
        return http.post(URL, json={"variables": variables})


def serve(monkeypatch, *argv):
    started = {}
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: started.update(app=app))
    assert main(["serve", "kbqa@production", *argv]) == 0
    return started["app"]


def test_the_answer_names_the_documents_retrieved_into_the_context(served):  # noqa: F811
    answer = ask(create_app(PromptService("kbqa", index="kb@production")),
                 query="which clause catches exceptions")

    assert answer.status_code == 200, answer.text
    assert answer.json()["sources"][0] == "try"
    assert answer.json()["version"] == served


def test_a_prompt_served_without_an_index_answers_with_no_sources(project, llm_server):
    model = ModelConfig(model="openai/test-model", api_base=llm_server.base_url)
    version, _ = register_version("plain", PromptTemplate("Say {{x}}"), model)
    promote("plain", version, "production", approver="ops")
    with TestClient(create_app(PromptService("plain"))) as http:
        answer = http.post("/v1/prompts/plain/complete", json={"variables": {"x": "hi"}})

    assert answer.status_code == 200 and answer.json()["sources"] == []


@pytest.mark.parametrize("variables, message", [
    ({"question": "loops"}, "the template has no variable 'question'"),
    ({"query": "loops", "context": "mine"}, "'context' is filled by retrieval"),
])
def test_the_context_is_not_asked_of_the_caller(served, variables, message):  # noqa: F811
    answer = ask(create_app(PromptService("kbqa", index="kb@production")), **variables)

    assert answer.status_code == 422 and message in answer.text


def test_serve_takes_the_index_on_the_command_line(served, monkeypatch, capsys):  # noqa: F811
    app = serve(monkeypatch, "--index", "kb@production")

    assert "searching ServedIndex('kb@production' -> kb@v1, k=5)" in capsys.readouterr().out
    assert ask(app, query="anonymous functions").json()["sources"][0] == "lambda"


def test_serve_reads_the_index_from_workbench_yaml(served, project, monkeypatch):  # noqa: F811
    (project / "workbench.yaml").write_text(
        "serving:\n  kbqa:\n    index: {ref: kb@production, k: 1}\n")
    options = serving_options("kbqa")
    assert isinstance(options["index"], ServedIndex) and options["index"].k == 1

    app = serve(monkeypatch)

    assert ask(app, query="files closed when the block ends").json()["sources"] == ["with"]


def test_the_command_line_index_replaces_the_files(served, project, monkeypatch):  # noqa: F811
    (project / "workbench.yaml").write_text("serving:\n  kbqa:\n    index: nosuch@production\n")

    app = serve(monkeypatch, "--index", "kb@production")

    assert ask(app, query="loop over a sequence").json()["sources"][0] == "for"


@pytest.mark.parametrize("entry, message", [
    ("index: {ref: kb@production, top: 3}", r"serving.kbqa.index: unknown settings \['top'\]"),
    ("index: {k: 3}", "serving.kbqa.index: ref must name an index"),
    ("index: {ref: kb@production, k: 0}", "k must be a whole number of at least 1, got 0"),
    ("index: {ref: nosuch@production}", "serving.kbqa.index: .*nosuch"),
])
def test_a_bad_index_setting_names_the_file_and_the_key(project, entry, message):
    (project / "workbench.yaml").write_text(f"serving:\n  kbqa:\n    {entry}\n")

    with pytest.raises(ServingConfigError, match=message) as caught:
        serving_options("kbqa")

    assert str(project / "workbench.yaml") in str(caught.value)


def test_an_index_on_a_hosted_embedding_model_is_served(served, project, llm_server):  # noqa: F811
    from .test_rag_serving import build

    build(project, embedder={"model": "openai/test-embed", "api_base": llm_server.base_url})
    service = PromptService("kbqa", index="kb@v2")
    assert service.index.index.manifest["embedder"]["kind"] == "litellm"

    answer = ask(create_app(service), query="which clause catches exceptions")

    assert answer.status_code == 200 and answer.json()["sources"][0] == "try"
    embedded = [r["input"] for r in llm_server.requests if "input" in r]
    assert ["which clause catches exceptions"] in embedded  # the query, through the gateway
