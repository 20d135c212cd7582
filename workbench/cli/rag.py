"""``workbench rag``: build index versions, check freshness (for cron), refresh behind a gate."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..rag import ChunkerConfig, Embedder, Index

INDEXES_FILE = "indexes.yaml"
log = logging.getLogger("workbench.rag")


def register(commands: Any) -> None:
    rag = commands.add_parser(
        "rag", help="retrieval indexes: build versions, freshness status, gated refresh",
        description="Index versions live under .workbench/indexes/<name>/v<N>/ and are "
                    "logged to MLflow (experiment rag-<name>).")
    actions = rag.add_subparsers(dest="action", metavar="ACTION", required=True)
    build = actions.add_parser(
        "build", help="a new version of each index of an experiment (its indexes.yaml), "
                      "or of one index over a folder of documents; incremental when it can be")
    build.add_argument("path", help="an experiment folder with indexes.yaml, or a folder of "
                                    ".txt/.md/.html documents")
    build.add_argument("--name", help="index name for a folder of documents (default: its name)")
    build.add_argument("--embedder", default="bm25",
                       help="bm25 (or lexical), lsa (or local), or a litellm embedding model "
                            "such as openai/text-embedding-3-small (default: bm25)")
    build.add_argument("--size", type=int, default=256, help="chunk size in tokens")
    build.add_argument("--overlap", type=int, default=32, help="chunk overlap in tokens")
    build.add_argument("--sla", help="freshness SLA, e.g. 24h")
    build.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    build.set_defaults(handler=_build)
    status = actions.add_parser("status", help="age and changed documents; exit 1 when the "
                                               "freshness SLA is breached")
    status.add_argument("index", help="name, name@v3 or name@<alias>")
    status.set_defaults(handler=_status)
    refresh = actions.add_parser(
        "refresh", help="incremental build, regression gate against the alias's version on "
                        "labelled queries, alias moved when not worse (or a request recorded)")
    refresh.add_argument("index", help="index name")
    refresh.add_argument("--alias", default="production")
    refresh.add_argument("--queries", required=True, type=Path,
                         help="labelled queries (jsonl: id, query, relevant)")
    refresh.add_argument("--k", type=int, default=10, help="the gate's cutoff (default: 10)")
    refresh.add_argument("--actor", help="who refreshes (default: the login name)")
    refresh.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    refresh.set_defaults(handler=_refresh)
    approve = actions.add_parser("approve", help="approve a requested alias move of an index")
    approve.add_argument("index")
    approve.add_argument("--alias", default="production")
    approve.add_argument("--approver", help="who approves (default: the login name)")
    approve.set_defaults(handler=_approve)


def _build(args: argparse.Namespace) -> int:
    from ..files import load_yaml
    from ..rag.errors import RagError

    folder = Path(args.path)
    config = folder / INDEXES_FILE
    if config.is_file():
        data = load_yaml(config) or {}
        if not isinstance(data, dict) or not isinstance(data.get("indexes"), dict):
            raise RagError(f"{config}: needs `corpus: <folder>` and `indexes: {{name: "
                           "{chunker: ..., embedder: ...}}`")
        corpus = folder / str(data.get("corpus", "docs"))
        for name, spec in data["indexes"].items():
            spec = dict(spec or {})
            spec.setdefault("freshness_sla", None)  # the file says it all: none is none
            _build_one(name, corpus, spec, track=not args.no_track)
        return 0
    spec = {"chunker": {"size": args.size, "overlap": args.overlap}, "embedder": args.embedder}
    if args.sla is not None:  # without --sla an update keeps the version's SLA
        spec["freshness_sla"] = args.sla
    _build_one(args.name or folder.resolve().name, folder, spec, track=not args.no_track)
    return 0


def _build_one(name: str, folder: Path, spec: dict[str, Any], *, track: bool) -> None:
    """An update of the latest version when it was built the same way, else a full build."""
    from ..rag import ChunkerConfig, Corpus, build_index, update_index
    from ..rag.embedders import make_embedder
    from ..rag.errors import RagError
    from ..rag.index import KEEP

    unknown = sorted(set(spec) - {"chunker", "embedder", "freshness_sla"})
    if unknown:
        raise RagError(f"index {name!r}: unknown keys {unknown}; use chunker, embedder, "
                       "freshness_sla")
    corpus = Corpus.from_folder(folder)
    chunker = ChunkerConfig.parse(spec.get("chunker"))
    embedder = make_embedder(spec.get("embedder", "bm25"))
    latest = _reusable(name, chunker, embedder)
    if latest is not None:
        sla = spec.get("freshness_sla", KEEP)
        index = update_index(latest, corpus, track=track, freshness_sla=sla)
        what = "unchanged" if index is latest else "updated"
        was, now = latest.manifest.get("freshness_sla"), index.manifest.get("freshness_sla")
        moved = f" (freshness_sla {was or 'none'} -> {now or 'none'})" if was != now else ""
        print(f"{name}: {what}{moved} -> {index!r}")
        return
    index = build_index(corpus, name=name, chunker=chunker, embedder=embedder,
                        freshness_sla=spec.get("freshness_sla"), track=track)
    print(f"{name}: built -> {index!r}")


def _reusable(name: str, chunker: ChunkerConfig, embedder: Embedder) -> Index | None:
    """The latest version of ``name`` when it was built with this chunker and this embedder
    (its kind and every setting, a hosted model's name included), else None.

    The manifest is compared before the version is loaded, since loading a hosted model's
    version sends its probe sentences. A version whose embedder no longer reproduces its
    vectors (a model changed behind its name) cannot be updated, so it is rebuilt.
    """
    from ..rag import load_index
    from ..rag.errors import FingerprintMismatch
    from ..rag.store import default_root, read_manifest, resolve, versions

    root = default_root()
    if not versions(root, name):
        return None
    manifest = read_manifest(resolve(name, root))
    built_with = manifest["embedder"]
    if (manifest["chunker"] != chunker.as_dict() or built_with["kind"] != embedder.kind
            or built_with["params"] != embedder.params()):
        return None
    try:
        return load_index(name, root=root)
    except FingerprintMismatch as exc:
        log.warning("%s; building a new version instead", exc)
        return None


def _status(args: argparse.Namespace) -> int:
    from ..rag import status
    from ..rag.aliases import resolve_alias

    found = status(resolve_alias(args.index))
    print(found)
    if found.breached:
        log.warning("freshness SLA breached: %s", found)
        _tag_breach(found)
        return 1
    return 0


def _tag_breach(found: Any) -> None:
    """The breach also goes on the version's MLflow run, where a team's dashboard sees it."""
    from ..rag import load_index

    run_id = load_index(found.index, verify=False).manifest.get("mlflow_run_id")
    if not run_id:
        return
    from mlflow import MlflowClient

    from ..settings import tracking_uri

    MlflowClient(tracking_uri=tracking_uri()).set_tag(
        run_id, "workbench.rag.freshness", f"breached: {found.stale_documents} documents "
        f"changed, {found.age.total_seconds() / 3600:.1f} h old")


def _refresh(args: argparse.Namespace) -> int:
    from ..rag.refresh import refresh

    outcome = refresh(args.index, queries=args.queries, alias=args.alias, k=args.k,
                      actor=args.actor, track=not args.no_track)
    print(outcome)
    return 1 if outcome.worse else 0


def _approve(args: argparse.Namespace) -> int:
    from ..rag.refresh import approve

    print(approve(args.index, args.alias, approver=args.approver))
    return 0
