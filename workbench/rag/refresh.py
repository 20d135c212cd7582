"""The automated reindex: incremental build, a retrieval regression gate against the alias's
version on the labelled queries, and the alias moved (or a move requested) when not worse.

The gate compares the two versions query by query (a paired test from
``workbench.evaluation.stats``) on recall and nDCG at ``k``: a refresh that loses relevant
documents is refused rather than served, and one that only changes the corpus passes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from .index import Index
    from .metrics import LabelledQuery

GATE_METRICS = ("recall", "ndcg")


@dataclass(frozen=True)
class RefreshOutcome:
    """What a refresh built, what the gate found, and where the alias stands."""

    index: str
    alias: str
    candidate: str  # the ref of the version built (or the latest, when nothing changed)
    baseline: str | None  # the ref the alias held before
    changes: dict[str, Any] = field(default_factory=dict)
    gate: pd.DataFrame | None = None
    worse: list[str] = field(default_factory=list)  # gate metrics significantly worse
    moved: bool = False
    request: str | None = None  # why the alias waits for an approval, and how to give it

    def __str__(self) -> str:
        if self.candidate == self.baseline:
            return f"{self.index}@{self.alias} is {self.baseline}: nothing changed, nothing to do"
        lines = [f"built {self.candidate} ({_changes(self.changes)})"]
        if self.gate is not None:
            lines.append(self.gate.to_string(float_format=lambda v: f"{v:.4f}"))
        if self.worse:
            lines.append(f"gate FAILED: {', '.join(self.worse)} significantly worse than "
                         f"{self.baseline}; @{self.alias} stays at {self.baseline}")
        elif self.moved:
            lines.append(f"@{self.alias} moved to {self.candidate}")
        elif self.request:
            lines.append(self.request)
        return "\n".join(lines)


def _changes(changes: dict[str, Any]) -> str:
    if not changes:
        return "full build"
    return ", ".join(f"{len(changes.get(k, []))} {k}" for k in ("changed", "added", "removed"))


def gate(baseline: Index, candidate: Index, queries: list[LabelledQuery], *, k: int = 10,
         alpha: float = 0.05) -> tuple[pd.DataFrame, list[str]]:
    """Per gate metric: both means, the paired difference and its p-value; and the metrics
    on which the candidate is significantly worse (Holm-corrected across them)."""
    import pandas as pd

    from ..evaluation.stats import compare
    from .metrics import evaluate

    rows = []
    for variant, index in (("baseline", baseline), ("candidate", candidate)):
        found = evaluate(index, queries, ks=(k,))
        for _, q in found.iterrows():
            rows.append({"variant": variant, "example_id": q["id"], "error": None,
                         **{f"score.{m}": q[f"{m}@{k}"] for m in GATE_METRICS}})
    metrics = {m: "continuous" for m in GATE_METRICS}
    report = compare(pd.DataFrame(rows), "baseline", "candidate", metrics,
                     primary=GATE_METRICS[0], alpha=alpha)
    table, worse = [], []
    for metric, found in report.pairs[0].metrics.items():
        table.append({"metric": f"{metric}@{k}", "baseline": found.mean_a,
                      "candidate": found.mean_b, "diff": found.diff, "p_adj": found.p_adj})
        if found.p_adj < alpha and found.diff < 0:
            worse.append(f"{metric}@{k}")
    return pd.DataFrame(table).set_index("metric"), worse


def refresh(name: str, *, queries: str | Path | list[LabelledQuery], alias: str = "production",
            k: int = 10, alpha: float = 0.05, actor: str | None = None,
            root: str | Path | None = None, uri: str | None = None,
            track: bool = True) -> RefreshOutcome:
    """Update ``name`` incrementally from its corpus, gate the new version against the one
    ``alias`` holds, and move the alias when it is not worse; a protected alias gets a
    recorded request instead, approved like a prompt's (``workbench rag approve``)."""
    from ..prompts import registry
    from .aliases import IndexRegistry, number
    from .index import load_index, update_index
    from .metrics import load_queries

    labelled = queries if isinstance(queries, list) else load_queries(queries)
    names = IndexRegistry(root, uri)
    latest = load_index(name, root=root)
    held = names.alias_version(name, alias)
    baseline = load_index(f"{name}@{held}", root=root) if held else None
    candidate = update_index(latest, root=root, track=track, uri=uri)
    if baseline is not None and candidate.version == baseline.version:
        return RefreshOutcome(name, alias, candidate.ref, baseline.ref)
    changes = (candidate.manifest.get("incremental") or {}) if candidate is not latest else {}
    table, worse = (gate(baseline, candidate, labelled, k=k, alpha=alpha)
                    if baseline is not None else (None, []))
    outcome = RefreshOutcome(name, alias, candidate.ref, baseline.ref if baseline else None,
                             changes, table, worse)
    if worse:
        return outcome
    evidence = {"candidate": candidate.ref, "baseline": outcome.baseline or "",
                **({m.replace("@", "_at_"): f"{r['baseline']:.4f} -> {r['candidate']:.4f}"
                    for m, r in table.iterrows()} if table is not None else {})}
    moved = registry.promote_or_request(
        name, number(candidate.version), alias, actor=actor, evidence=evidence,
        reason="refresh: retrieval not worse on the labelled queries",
        mlflow_client=names)
    if moved.promoted:
        return _replace(outcome, moved=True)
    return _replace(outcome, request=(
        f"@{alias} is protected: a move to {candidate.ref} was requested; someone else "
        f"approves with `workbench rag approve {name} --alias {alias} --approver NAME`"))


def approve(name: str, alias: str = "production", *, approver: str | None = None,
            root: str | Path | None = None, uri: str | None = None) -> str:
    """Approve the pending request for an index alias and move it (the prompts' workflow)."""
    from ..prompts import registry
    from .aliases import IndexRegistry

    names = IndexRegistry(root, uri)
    registry.approve(name, alias, approver=approver, mlflow_client=names)
    return f"{name}@{alias} is {name}@{names.alias_version(name, alias)}"


def _replace(outcome: RefreshOutcome, **changes: Any) -> RefreshOutcome:
    import dataclasses

    return dataclasses.replace(outcome, **changes)

