"""``workbench rag build / status / refresh / approve`` on a tiny corpus in a project."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.cli import main
from workbench.rag import load_index
from workbench.rag.aliases import IndexRegistry, resolve_alias

from .rag_topics import TOPICS

QUERIES = [("which clause catches exceptions", "try"), ("anonymous functions", "lambda"),
           ("closing files automatically", "with"), ("ending a loop early", "for"),
           ("keys mapped to values", "dict"), ("exception handlers and finally", "try"),
           ("iterates over a sequence", "for"), ("context manager methods", "with")]


@pytest.fixture
def kb(project: Path) -> Path:
    folder = project / "experiments" / "kb"
    (folder / "docs").mkdir(parents=True)
    for name, text in TOPICS.items():
        (folder / "docs" / f"{name}.txt").write_text(text)
    (folder / "indexes.yaml").write_text(
        "corpus: docs\nindexes:\n  kb: {chunker: {size: 16, overlap: 0}, embedder: bm25}\n")
    (folder / "queries.jsonl").write_text("\n".join(
        json.dumps({"id": f"q{i}", "query": q, "relevant": [d]})
        for i, (q, d) in enumerate(QUERIES)))
    return folder


def rag(*args: str | Path) -> int:
    return main(["rag", *map(str, args)])


def test_build_makes_a_version_then_updates_only_when_the_corpus_changed(kb, capsys):
    assert rag("build", kb, "--no-track") == 0
    assert rag("build", kb, "--no-track") == 0
    (kb / "docs" / "dict.txt").write_text("A dictionary maps keys to values, fast.")
    assert rag("build", kb, "--no-track") == 0
    out = capsys.readouterr().out.splitlines()

    assert [line.split(" -> ")[0] for line in out] == ["kb: built", "kb: unchanged",
                                                      "kb: updated"]
    assert load_index("kb").manifest["incremental"]["changed"] == ["dict"]


def test_a_changed_freshness_sla_in_indexes_yaml_takes_effect(kb, capsys):
    assert rag("build", kb, "--no-track") == 0
    (kb / "indexes.yaml").write_text("corpus: docs\nindexes:\n  kb: {chunker: {size: 16, "
                                     "overlap: 0}, embedder: bm25, freshness_sla: 12h}\n")
    assert rag("build", kb, "--no-track") == 0  # no document changed
    (kb / "docs" / "dict.txt").write_text("A dictionary maps keys to values, fast.")
    (kb / "indexes.yaml").write_text("corpus: docs\nindexes:\n  kb: {chunker: {size: 16, "
                                     "overlap: 0}, embedder: bm25, freshness_sla: 30m}\n")
    assert rag("build", kb, "--no-track") == 0
    out = capsys.readouterr().out.splitlines()

    assert [line.rsplit(" -> ", 1)[0] for line in out] == [
        "kb: built", "kb: updated (freshness_sla none -> 12h)",
        "kb: updated (freshness_sla 12h -> 30m)"]
    assert [load_index(f"kb@v{n}").manifest["freshness_sla"] for n in (1, 2, 3)] == [
        None, "12h", "30m"]
    assert load_index("kb@v2").manifest["incremental"]["changed"] == []


def test_without_sla_a_folder_build_keeps_the_versions_sla(kb, capsys):
    common = ("--name", "plain", "--size", "16", "--overlap", "0", "--no-track")
    assert rag("build", kb / "docs", "--sla", "24h", *common) == 0
    (kb / "docs" / "dict.txt").write_text("A dictionary maps keys to values, fast.")
    assert rag("build", kb / "docs", *common) == 0
    assert load_index("plain").manifest["freshness_sla"] == "24h"
    assert load_index("plain").version == "v2"


def test_build_of_a_plain_folder_names_the_index_after_it(kb, capsys):
    assert rag("build", kb / "docs", "--name", "plain", "--embedder", "lsa", "--size", "16",
               "--overlap", "0", "--no-track") == 0
    assert load_index("plain").manifest["embedder"]["kind"] == "lsa"


def test_status_exits_1_when_the_sla_is_breached(kb, capsys):
    rag("build", kb / "docs", "--name", "kb", "--sla", "0s", "--size", "16", "--overlap", "0",
        "--no-track")
    assert rag("status", "kb") == 0
    (kb / "docs" / "for.txt").write_text("Loops repeat.")
    assert rag("status", "kb") == 1
    assert "BREACHED; 1 changed" in capsys.readouterr().out


def test_refresh_moves_the_alias_when_retrieval_is_not_worse(kb, capsys):
    rag("build", kb, "--no-track")
    assert rag("refresh", "kb", "--queries", kb / "queries.jsonl", "--no-track") == 0
    assert resolve_alias("kb@production") == "kb@v1"

    (kb / "docs" / "dict.txt").write_text("A dictionary maps hashable keys to values.")
    assert rag("refresh", "kb", "--queries", kb / "queries.jsonl", "--no-track") == 0
    out = capsys.readouterr().out
    assert "built kb@v2 (1 changed, 0 added, 0 removed)" in out
    assert "@production moved to kb@v2" in out and resolve_alias("kb@production") == "kb@v2"
    assert rag("refresh", "kb", "--queries", kb / "queries.jsonl", "--no-track") == 0
    assert "nothing changed" in capsys.readouterr().out


def test_refresh_that_loses_relevant_documents_is_refused(kb, capsys):
    rag("build", kb, "--no-track")
    rag("refresh", "kb", "--queries", kb / "queries.jsonl", "--no-track")
    for name in TOPICS:  # every topic's text replaced by the same unrelated words
        (kb / "docs" / f"{name}.txt").write_text(f"Unrelated notes about gardening {name}.")

    assert rag("refresh", "kb", "--queries", kb / "queries.jsonl", "--k", "1",
               "--no-track") == 1
    assert "gate FAILED: recall@1, ndcg@1 significantly worse" in capsys.readouterr().out
    assert resolve_alias("kb@production") == "kb@v1"


def test_a_protected_alias_waits_for_someone_else_to_approve(kb, project, capsys):
    (project / "workbench.yaml").write_text("registry: {protected: [production]}\n")
    rag("build", kb, "--no-track")
    assert rag("refresh", "kb", "--queries", kb / "queries.jsonl", "--actor", "alice",
               "--no-track") == 0
    assert "a move to kb@v1 was requested" in capsys.readouterr().out
    assert IndexRegistry().alias_version("kb", "production") is None

    assert rag("approve", "kb", "--approver", "alice") == 1  # the requester cannot approve
    assert "a different person must approve" in capsys.readouterr().err
    assert rag("approve", "kb", "--approver", "bob") == 0
    assert resolve_alias("kb@production") == "kb@v1"
    from workbench.prompts import registry

    actions = registry.history("kb", mlflow_client=IndexRegistry())["action"].tolist()
    assert actions == ["request", "approval", "promotion"]
