"""A corpus: documents with ids, text, metadata, content hashes and update times."""

from __future__ import annotations

import json
import os

import pytest

from workbench.rag.corpus import Corpus, Document, html_to_text
from workbench.rag.errors import CorpusError


def write(folder, name, text):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_a_folder_of_text_markdown_and_html_files_becomes_documents(tmp_path):
    write(tmp_path, "try.txt", "The try statement.")
    write(tmp_path, "guide/intro.md", "# Intro\n\nHello.")
    write(tmp_path, "page.html", "<html><head><title>x</title><style>p{}</style></head>"
          "<body><h1>Title</h1><p>First &amp; second.</p><script>alert(1)</script></body>")
    write(tmp_path, "image.png", "not a document")

    corpus = Corpus.from_folder(tmp_path)

    assert [d.id for d in corpus] == ["guide/intro", "page", "try"]
    assert corpus["page"].text == "Title\nFirst & second."
    assert corpus["guide/intro"].metadata == {"path": "guide/intro.md"}
    assert corpus["try"].updated_at is not None
    assert corpus.source["kind"] == "folder"


def test_html_to_text_keeps_visible_text_one_block_per_line():
    assert html_to_text("<div>a <b>bold</b> word</div><ul><li>one</li><li>two</li></ul>") == (
        "a bold word\none\ntwo")


def test_the_document_hash_follows_the_text_not_the_file_time(tmp_path):
    path = write(tmp_path, "a.txt", "same text")
    before = Corpus.from_folder(tmp_path)
    os.utime(path, (1, 1))
    touched = Corpus.from_folder(tmp_path)
    write(tmp_path, "a.txt", "other text")
    edited = Corpus.from_folder(tmp_path)

    assert touched.hash == before.hash
    assert touched["a"].updated_at != before["a"].updated_at
    assert edited.hash != before.hash


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_any_table_datasets_reads_becomes_documents(tmp_path, suffix):
    import pandas as pd

    frame = pd.DataFrame({"id": ["a", "b"], "text": ["alpha text", "beta text"],
                          "topic": ["x", "y"],
                          "updated_at": ["2026-01-02T03:04:05+00:00", "2026-02-01T00:00:00"]})
    path = tmp_path / f"docs{suffix}"
    {".jsonl": lambda: frame.to_json(path, orient="records", lines=True),
     ".csv": lambda: frame.to_csv(path, index=False),
     ".parquet": lambda: frame.to_parquet(path)}[suffix]()

    corpus = Corpus.from_table(path, updated_field="updated_at")

    assert [(d.id, d.text) for d in corpus] == [("a", "alpha text"), ("b", "beta text")]
    assert corpus["a"].metadata["topic"] == "x"
    assert corpus["b"].updated_at.isoformat() == "2026-02-01T00:00:00+00:00"
    assert Corpus.from_source(corpus.source).hash == corpus.hash


def test_a_table_without_the_text_column_names_the_row_and_the_columns(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text(json.dumps({"id": "a", "body": "x"}) + "\n")
    with pytest.raises(CorpusError, match=r"docs.jsonl: row 0 has no 'text'.*\['body', 'id'\]"):
        Corpus.from_table(path)


def test_duplicate_ids_are_refused():
    with pytest.raises(CorpusError, match="'a' appears twice"):
        Corpus([Document("a", "x"), Document("a", "y")])


def test_an_empty_folder_and_a_missing_folder_are_clear_errors(tmp_path):
    with pytest.raises(CorpusError, match="no files ending in"):
        Corpus.from_folder(tmp_path)
    with pytest.raises(CorpusError, match="not a folder of documents"):
        Corpus.from_folder(tmp_path / "nope")


def test_a_file_that_is_not_utf8_is_named(tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(CorpusError, match=r"bad.txt: not UTF-8"):
        Corpus.from_folder(tmp_path)
