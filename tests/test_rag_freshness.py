"""Freshness: the age of an index version, what changed in its corpus, and the SLA."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from workbench.rag import Corpus, build_index, status
from workbench.rag.durations import parse_duration
from workbench.rag.errors import RagError


@pytest.fixture
def docs(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in {"try": "The try statement.", "for": "The for loop.",
                       "with": "The with statement."}.items():
        (folder / f"{name}.md").write_text(text)
    return folder


def build(docs, tmp_path, sla="24h"):
    return build_index(Corpus.from_folder(docs), name="kb", chunker={"size": 16, "overlap": 0},
                       embedder="bm25", freshness_sla=sla, root=tmp_path / "idx", track=False)


def test_status_reads_the_folder_again_and_lists_what_changed(docs, tmp_path):
    idx = build(docs, tmp_path)
    (docs / "try.md").write_text("The try statement, edited.")
    (docs / "for.md").unlink()
    (docs / "new.md").write_text("A new page.")
    (docs / "with.md").write_text("The with statement.")  # rewritten, same text

    later = datetime.fromisoformat(idx.manifest["built_at"]) + timedelta(hours=2)
    report = status("kb", root=tmp_path / "idx", now=later)

    assert (report.changed, report.added, report.removed) == (["try"], ["new"], ["for"])
    assert report.age == timedelta(hours=2) and report.sla == timedelta(hours=24)
    assert not report.breached
    assert str(report) == ("kb@v1: built 2.0 h ago (SLA 24 h): ok; 1 changed, 1 added, "
                           "1 removed documents since the build")


def test_the_sla_is_breached_when_changes_wait_longer_than_it(docs, tmp_path):
    idx = build(docs, tmp_path, sla="1h")
    built = datetime.fromisoformat(idx.manifest["built_at"])
    assert not status(idx, now=built + timedelta(days=3)).breached  # old but nothing changed

    (docs / "try.md").write_text("Changed.")
    assert not status(idx, now=built + timedelta(minutes=30)).breached
    late = status(idx, now=built + timedelta(hours=2))
    assert late.breached and "BREACHED" in str(late)


def test_a_corpus_folder_that_is_gone_is_named_with_the_fix(docs, tmp_path):
    import shutil

    from workbench.rag.errors import CorpusError

    idx = build(docs, tmp_path)
    shutil.rmtree(docs)
    with pytest.raises(CorpusError, match=r"index kb@v1 was built from a corpus that cannot be "
                                          r"read now .*not a folder of documents.*"
                                          r"status\(index, corpus\)"):
        status(idx)


def test_without_an_sla_nothing_is_breached(docs, tmp_path):
    idx = build(docs, tmp_path, sla=None)
    (docs / "try.md").write_text("Changed.")
    assert not status(idx, now=datetime.now().astimezone() + timedelta(days=30)).breached


@pytest.mark.parametrize("text, expected", [("24h", timedelta(hours=24)),
                                            ("30m", timedelta(minutes=30)),
                                            ("7d", timedelta(days=7)),
                                            ("1.5h", timedelta(minutes=90))])
def test_durations(text, expected):
    assert parse_duration(text) == expected


def test_a_bad_sla_is_refused_before_building(docs, tmp_path):
    with pytest.raises(RagError, match="freshness_sla 'daily' is not a duration; write e.g."):
        build(docs, tmp_path, sla="daily")
    assert not (tmp_path / "idx").exists()
