"""Index versions on disk: a folder per version with a manifest that hashes every file.

``<root>/<name>/v<N>/`` holds ``manifest.json``, ``chunks.parquet``, the vectors
(``vectors.npy`` dense or ``vectors.npz`` sparse) and the embedder's state. A version is
written into a temporary folder and renamed into place, so a crashed build leaves no
half-written version behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..settings import project_root
from .chunking import Chunk
from .errors import IndexIntegrityError, RagError

FORMAT = 1
MANIFEST = "manifest.json"
_VERSION = re.compile(r"^v(\d+)$")


def default_root() -> Path:
    return project_root() / ".workbench" / "indexes"


def versions(root: Path, name: str) -> list[str]:
    """Version folders of ``name``, oldest first."""
    folder = root / name
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p.name) for p in folder.iterdir()
             if p.is_dir() and (m := _VERSION.match(p.name))]
    return [v for _, v in sorted(found)]


def resolve(ref: str | Path, root: Path) -> Path:
    """A version folder from ``name``, ``name@v3`` (or ``name@latest``), or a path."""
    ref_text = str(ref)
    if Path(ref_text).is_dir() and (Path(ref_text) / MANIFEST).exists():
        return Path(ref_text)
    name, _, version = ref_text.partition("@")
    known = versions(root, name)
    if not known:
        raise RagError(f"no index named {name!r} under {root}; build one with "
                       "wb.rag.build_index(corpus, name=...)")
    if version in ("", "latest"):
        return root / name / known[-1]
    if version not in known:
        raise RagError(f"index {name!r} has no version {version!r}; it has {', '.join(known)}")
    return root / name / version


def new_version_dir(root: Path, name: str) -> tuple[str, Path]:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise RagError(f"index name {name!r}: use letters, digits, '.', '_' or '-'")
    known = versions(root, name)
    number = int(known[-1][1:]) + 1 if known else 1
    (root / name).mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".v{number}-", dir=root / name))
    return f"v{number}", staging


def publish(staging: Path, final: Path) -> None:
    try:
        os.rename(staging, final)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise RagError(f"{final} was created by another build meanwhile; build again") from exc


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def hash_files(folder: Path) -> dict[str, str]:
    return {p.name: file_hash(p) for p in sorted(folder.iterdir())
            if p.is_file() and p.name != MANIFEST}


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise IndexIntegrityError(f"{path} is missing: {folder} is not a complete index "
                                  "version; delete the folder and build again") from exc
    except ValueError as exc:
        raise IndexIntegrityError(f"{path} is not valid JSON ({exc}); delete {folder} and "
                                  "build again") from exc
    if manifest.get("format") != FORMAT:
        raise IndexIntegrityError(f"{path}: index format {manifest.get('format')!r} is not "
                                  f"{FORMAT}, the one this workbench reads; rebuild the index")
    return manifest


def verify_files(folder: Path, manifest: dict[str, Any]) -> None:
    """Every file the manifest lists exists with the hash it was written with."""
    source = manifest.get("mlflow_run_id")
    fix = (f"download it again from MLflow run {source} or rebuild" if source
           else "rebuild the index")
    for name, expected in sorted(manifest["files"].items()):
        path = folder / name
        if not path.is_file():
            raise IndexIntegrityError(f"{path} is missing from index version "
                                      f"{manifest['name']}@{manifest['version']}; {fix}")
        if file_hash(path) != expected:
            raise IndexIntegrityError(f"{path} is corrupted: its content changed since the "
                                      f"build (sha256 differs from the manifest); {fix}")


def write_chunks(folder: Path, chunks: Sequence[Chunk]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({
        "doc_id": [c.doc_id for c in chunks],
        "start": pa.array([c.start for c in chunks], pa.int64()),
        "end": pa.array([c.end for c in chunks], pa.int64()),
        "tokens": pa.array([c.tokens for c in chunks], pa.int64()),
        "text": [c.text for c in chunks],
    })
    pq.write_table(table, folder / "chunks.parquet")


def read_chunks(folder: Path) -> list[Chunk]:
    import pyarrow.parquet as pq

    path = folder / "chunks.parquet"
    try:
        columns = pq.read_table(path).to_pydict()
    except Exception as exc:
        raise IndexIntegrityError(f"{path}: unreadable ({exc}); rebuild the index") from exc
    return [Chunk(*row) for row in zip(columns["doc_id"], columns["start"], columns["end"],
                                       columns["text"], columns["tokens"], strict=True)]


def write_vectors(folder: Path, vectors: Any, stem: str = "vectors") -> str:
    if hasattr(vectors, "tocsr"):
        from scipy import sparse

        sparse.save_npz(folder / f"{stem}.npz", vectors.tocsr(), compressed=False)
        return f"{stem}.npz"
    np.save(folder / f"{stem}.npy", np.ascontiguousarray(vectors, dtype=np.float32))
    return f"{stem}.npy"


def read_vectors(folder: Path, name: str) -> Any:
    path = folder / name
    try:
        if name.endswith(".npz"):
            from scipy import sparse

            return sparse.load_npz(path).tocsr()
        return np.load(path, allow_pickle=False)
    except Exception as exc:
        raise IndexIntegrityError(f"{path}: unreadable ({exc}); rebuild the index") from exc
