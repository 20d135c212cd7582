"""Chunks keep exact character offsets into their document, whatever the strategy."""

from __future__ import annotations

import pytest

from workbench.rag.chunking import ChunkerConfig, chunk_documents
from workbench.rag.corpus import Document
from workbench.rag.errors import ChunkingError

PROSE = " ".join(f"Sentence number {n} talks about topic {n % 7}." for n in range(200))
MARKDOWN = ("# Install\n\nRun the installer. It takes a minute.\n\n"
            "## Configure\n\n" + "Set the option in the file. " * 30 + "\n\n"
            "## Use\n\nCall the function.\n")


@pytest.mark.parametrize("config", [
    {"strategy": "tokens", "size": 64, "overlap": 16},
    {"strategy": "sentences", "size": 64, "overlap": 16},
    {"strategy": "markdown", "size": 64},
    {"strategy": "tokens", "size": 300, "overlap": 0, "tokenizer": "character"},
])
def test_every_chunk_is_the_exact_span_of_its_document(config):
    docs = [Document("prose", PROSE), Document("md", MARKDOWN)]
    chunks = chunk_documents(docs, config)

    by_id = {d.id: d.text for d in docs}
    assert {c.doc_id for c in chunks} == {"prose", "md"}
    for c in chunks:
        assert by_id[c.doc_id][c.start:c.end] == c.text
        assert c.tokens <= config["size"]
    # the chunks of a document cover all of it
    prose = [c for c in chunks if c.doc_id == "prose"]
    assert prose[0].start == 0 and prose[-1].end == len(PROSE)
    assert all(b.start <= a.end for a, b in zip(prose, prose[1:], strict=False))


def test_overlap_repeats_text_between_neighbouring_chunks():
    chunks = chunk_documents([Document("p", PROSE)], {"size": 64, "overlap": 16})
    assert all(b.start < a.end for a, b in zip(chunks, chunks[1:], strict=False))
    none = chunk_documents([Document("p", PROSE)], {"size": 64, "overlap": 0})
    assert all(b.start == a.end for a, b in zip(none, none[1:], strict=False))
    assert len(chunks) > len(none)


def test_markdown_sections_start_at_headings():
    chunks = chunk_documents([Document("md", MARKDOWN)], {"strategy": "markdown", "size": 40})
    starts = [c.text.lstrip("\n")[:3] for c in chunks]
    assert starts[0] == "# I"
    assert "## " in starts
    assert any(c.text.lstrip("\n").startswith("## Use") for c in chunks)


def test_empty_documents_give_no_chunks():
    assert chunk_documents([Document("e", "  \n ")], {"size": 32, "overlap": 0}) == []


@pytest.mark.parametrize("config, message", [
    ({"strategy": "paragraphs"}, "strategy 'paragraphs' is unknown"),
    ({"size": 4}, "too small"),
    ({"size": 64, "overlap": 64}, "below size"),
    ({"strategy": "markdown", "overlap": 8}, "markdown sections do not overlap"),
    ({"chunk_size": 64}, r"unknown chunker option\(s\) \['chunk_size'\]"),
    ({"tokenizer": "no-such-encoding"}, "tokenizer 'no-such-encoding' is unknown"),
])
def test_invalid_configurations_say_what_to_use(config, message):
    with pytest.raises(ChunkingError, match=message):
        chunk_documents([Document("p", PROSE)], config)


def test_the_config_round_trips_through_a_manifest():
    config = ChunkerConfig.parse({"strategy": "sentences", "size": 128, "overlap": 8})
    assert ChunkerConfig.parse(config.as_dict()) == config
