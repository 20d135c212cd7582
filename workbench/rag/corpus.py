"""Documents to retrieve from, with the hashes that make index versions comparable.

A document's hash covers its text only, so touching a file without changing it does not
count as a change; the corpus hash covers every (id, hash) pair, so any edit, addition or
removal gives a new corpus hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from .errors import CorpusError

TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".rst", ".html", ".htm")
_TABLE_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Document:
    """One retrievable document; ``hash`` is derived from ``text``."""

    id: str
    text: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    updated_at: datetime | None = None

    @property
    def hash(self) -> str:
        return text_hash(self.text)


class Corpus:
    """An ordered set of documents with unique ids, and where they were read from.

    ``source`` lets a later freshness check read the same place again.
    """

    def __init__(self, documents: Iterable[Document], *, source: Mapping[str, Any] | None = None
                 ) -> None:
        self.documents = tuple(documents)
        self.source = dict(source or {"kind": "records"})
        seen: set[str] = set()
        for doc in self.documents:
            if doc.id in seen:
                raise CorpusError(f"corpus {self.describe()}: document id {doc.id!r} appears "
                                  "twice; make ids unique")
            seen.add(doc.id)
        if not self.documents:
            raise CorpusError(f"corpus {self.describe()} has no documents")
        self._by_id = {doc.id: doc for doc in self.documents}
        self._hashes = {doc.id: doc.hash for doc in self.documents}

    def describe(self) -> str:
        return str(self.source.get("path") or self.source.get("kind"))

    def __len__(self) -> int:
        return len(self.documents)

    def __iter__(self) -> Iterator[Document]:
        return iter(self.documents)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._by_id

    def __getitem__(self, doc_id: str) -> Document:
        return self._by_id[doc_id]

    def __repr__(self) -> str:
        return f"Corpus({self.describe()!r}, {len(self)} documents, hash={self.hash[:12]})"

    @property
    def hashes(self) -> dict[str, str]:
        return dict(self._hashes)

    @property
    def hash(self) -> str:
        payload = json.dumps(sorted(self._hashes.items()), separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]], *, id_field: str = "id",
                     text_field: str = "text", updated_field: str | None = None,
                     source: Mapping[str, Any] | None = None) -> Corpus:
        """Documents from dict-like rows; other fields become metadata."""
        where = (source or {}).get("path", "records")
        docs = []
        for n, row in enumerate(records):
            for column in (id_field, text_field):
                if row.get(column) is None:
                    raise CorpusError(f"corpus {where}: row {n} has no {column!r}; every row "
                                      f"needs an id and a text column (got {sorted(row)})")
            updated = _timestamp(row.get(updated_field), where, n) if updated_field else None
            meta = {k: v for k, v in row.items() if k not in (id_field, text_field)}
            docs.append(Document(str(row[id_field]), str(row[text_field]), meta, updated))
        return cls(docs, source=source)

    @classmethod
    def from_table(cls, path: str | Path, *, id_field: str = "id", text_field: str = "text",
                   updated_field: str | None = None) -> Corpus:
        """Any local table ``datasets`` reads: jsonl, json, csv or parquet."""
        path = Path(path)
        fmt = _TABLE_FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise CorpusError(f"{path}: unknown table format; use one of "
                              f"{', '.join(_TABLE_FORMATS)}")
        if not path.is_file():
            raise CorpusError(f"{path}: no such file")
        import datasets

        try:
            table = datasets.load_dataset(fmt, data_files=str(path), split="train",
                                          keep_in_memory=True)
        except Exception as exc:
            raise CorpusError(f"{path}: cannot be read as {fmt}: {exc}") from exc
        source = {"kind": "table", "path": str(path.resolve()), "id_field": id_field,
                  "text_field": text_field, "updated_field": updated_field}
        return cls.from_records(table.to_list(), id_field=id_field, text_field=text_field,
                                updated_field=updated_field, source=source)

    @classmethod
    def from_folder(cls, folder: str | Path, *, suffixes: Iterable[str] = TEXT_SUFFIXES
                    ) -> Corpus:
        """Text, Markdown and HTML files under ``folder``; a file's id is its relative path
        without the suffix, so labels stay readable ("try", not "try.txt")."""
        root = Path(folder)
        if not root.is_dir():
            raise CorpusError(f"{root}: not a folder of documents")
        wanted = tuple(s.lower() for s in suffixes)
        docs = []
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            if path.suffix.lower() not in wanted or path.name.startswith("."):
                continue
            try:
                raw = path.read_text(encoding="utf-8")
            except UnicodeDecodeError as exc:
                raise CorpusError(f"{path}: not UTF-8 text ({exc}); convert it or remove it "
                                  "from the folder") from exc
            html = path.suffix.lower() in (".html", ".htm")
            text = html_to_text(raw) if html else raw
            doc_id = path.relative_to(root).with_suffix("").as_posix()
            stamp = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            meta = {"path": path.relative_to(root).as_posix()}
            docs.append(Document(doc_id, text, meta, stamp))
        if not docs:
            raise CorpusError(f"{root}: no files ending in {', '.join(wanted)}")
        return cls(docs, source={"kind": "folder", "path": str(root.resolve()),
                                 "suffixes": list(wanted)})

    @classmethod
    def from_source(cls, source: Mapping[str, Any]) -> Corpus:
        """Read again the place a corpus came from (recorded in an index manifest)."""
        kind = source.get("kind")
        if kind == "folder":
            return cls.from_folder(source["path"], suffixes=source["suffixes"])
        if kind == "table":
            return cls.from_table(source["path"], id_field=source["id_field"],
                                  text_field=source["text_field"],
                                  updated_field=source.get("updated_field"))
        raise CorpusError(f"a corpus from {kind!r} cannot be read again; pass the corpus "
                          "itself")


def _timestamp(value: Any, where: str, row: int) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)
    try:
        stamp = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise CorpusError(f"corpus {where}: row {row}: updated_at {value!r} is not an ISO "
                          "date-time") from exc
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


class _TextExtractor(HTMLParser):
    _SKIP = {"script", "style", "head", "template"}
    _BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "pre",
              "section", "article", "table", "ul", "ol", "blockquote", "hr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self._SKIP:
            self.skipping += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Visible text of an HTML page, one block element per line."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)
