"""``workbench rag build`` reuses the latest version only when it was built the same way:
the same chunker, the same corpus and the same embedder, a hosted model's name and settings
included, so an unchanged build pays for no embeddings and a changed one makes a version."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from workbench.cli import main
from workbench.rag import load_index
from workbench.rag.embedders import PROBES
from workbench.rag.store import default_root, versions

from .test_rag_cli import TOPICS

CHUNKER = {"size": 16, "overlap": 0}


def write_indexes(folder: Path, embedder: object) -> None:
    (folder / "indexes.yaml").write_text(yaml.safe_dump(
        {"corpus": "docs", "indexes": {"kb": {"chunker": CHUNKER, "embedder": embedder}}}))


@pytest.fixture
def hosted(project: Path, llm_server) -> dict[str, object]:
    return {"model": "openai/test-embed", "api_base": llm_server.base_url, "num_retries": 1}


@pytest.fixture
def kb(project: Path, hosted) -> Path:
    folder = project / "experiments" / "kb"
    (folder / "docs").mkdir(parents=True)
    for name, text in TOPICS.items():
        (folder / "docs" / f"{name}.txt").write_text(text)
    write_indexes(folder, hosted)
    return folder


def build(folder: Path) -> None:
    assert main(["rag", "build", str(folder), "--no-track"]) == 0


def outcomes(capsys) -> list[str]:
    """What the command said of each build: "kb: built", "kb: unchanged" or "kb: updated"."""
    return [line.split(" -> ")[0] for line in capsys.readouterr().out.splitlines()]


def sent_texts(server, since: int) -> list[str]:
    return [text for body in server.requests[since:] for text in body["input"]]


def test_an_unchanged_hosted_build_reuses_the_version_and_embeds_no_chunk(kb, llm_server,
                                                                          capsys):
    build(kb)
    before = llm_server.request_count

    build(kb)

    assert outcomes(capsys) == ["kb: built", "kb: unchanged"]
    assert versions(default_root(), "kb") == ["v1"]
    assert sent_texts(llm_server, before) == list(PROBES)  # the model check on loading


def test_a_changed_document_with_a_hosted_model_re_embeds_only_its_chunks(kb, llm_server,
                                                                          capsys):
    build(kb)
    (kb / "docs" / "dict.txt").write_text("A dictionary maps keys to values, fast.")
    before = llm_server.request_count

    build(kb)

    assert outcomes(capsys) == ["kb: built", "kb: updated"]
    latest = load_index("kb")
    assert latest.version == "v2" and latest.manifest["incremental"]["changed"] == ["dict"]
    chunks = [c.text for c in latest.chunks if c.doc_id == "dict"]
    assert [t for t in sent_texts(llm_server, before) if t not in PROBES] == chunks


@pytest.mark.parametrize("change", [
    {"model": "openai/test-embed-large"},
    {"params": {"user": "kb-index"}},
])
def test_another_hosted_model_or_setting_builds_a_new_version(kb, hosted, llm_server, capsys,
                                                              change):
    build(kb)
    write_indexes(kb, {**hosted, **change})
    before = llm_server.request_count

    build(kb)

    assert outcomes(capsys) == ["kb: built", "kb: built"]
    latest = load_index("kb")
    assert latest.version == "v2"
    assert {k: latest.manifest["embedder"]["params"][k] for k in change} == change
    assert set(sent_texts(llm_server, before)) >= {c.text for c in latest.chunks}


def test_a_hosted_model_changed_behind_its_name_is_rebuilt_not_refused(kb, llm_server, capsys):
    build(kb)
    llm_server.embedding_salt = "retrained"

    build(kb)

    assert outcomes(capsys) == ["kb: built", "kb: built"]
    assert load_index("kb").version == "v2"  # loads: built with the model as it is now


@pytest.mark.parametrize("first, second, reused", [
    ("bm25", {"kind": "bm25"}, True),
    ("bm25", "lexical", True),
    ("lsa", {"kind": "local", "dimensions": 256}, True),
    ("bm25", {"kind": "bm25", "k1": 1.2}, False),
    ("lsa", {"kind": "lsa", "dimensions": 8}, False),
    ("bm25", "lsa", False),
])
def test_offline_embedders_are_reused_only_with_the_same_settings(kb, capsys, first, second,
                                                                  reused):
    write_indexes(kb, first)
    build(kb)
    write_indexes(kb, second)

    build(kb)

    assert outcomes(capsys) == ["kb: built", "kb: unchanged" if reused else "kb: built"]


def test_the_embedder_option_names_the_accepted_values(capsys):
    with pytest.raises(SystemExit):
        main(["rag", "build", "--help"])
    text = " ".join(capsys.readouterr().out.split())

    for accepted in ("bm25", "lexical", "lsa", "local", "openai/text-embedding-3-small"):
        assert accepted in text
