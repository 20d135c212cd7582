"""Recognising a re-run that would log nothing new to MLflow.

Re-running an experiment whose every call is cached reproduces the execution already
logged: the same prompts, models, eval set, outputs and scores. Logging it again would add a
parent run that differs only in its timestamp, and a reader of the MLflow UI could not tell
which of the copies is "the" result. Each parent run therefore carries a fingerprint of what
it holds, and a fully cached re-run with a matching, finished run points at that run instead.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .evaluation.evalsets import EvalSet
    from .results import Results
    from .run_types import Variant

FINGERPRINT_TAG = "workbench.fingerprint"
_ROW_KEYS = ("variant", "prompt", "model", "example_id", "repeat")
_ROW_VALUES = ("output", "error", "warning")


def fully_cached(results: Results) -> bool:
    """Every call of the execution came from the cache (none was sent, none failed)."""
    frame = results.frame
    return bool(len(frame)) and bool(frame["cached"].astype(bool).all())


def fingerprint(*, experiment: str, registry_name: str, variants: Sequence[Variant],
                evalset: EvalSet, results: Results, params: Mapping[str, Any],
                trace: bool, redacted: bool) -> str:
    """A digest of what a parent run holds: config, eval set, prompts and the scored rows.

    Timings, tokens and costs are left out: a cached call repeats the original ones, and
    they say nothing the outputs and scores do not already pin down.
    """
    frame = results.frame
    columns = [c for c in (*_ROW_KEYS, *_ROW_VALUES) if c in frame.columns]
    columns += sorted(c for c in frame.columns if c.startswith(("score.", "reason.")))
    order = [c for c in ("variant", "example_id", "repeat") if c in columns]
    rows = frame[columns].sort_values(order) if order else frame[columns]  # calls end unordered
    payload = {
        "experiment": experiment,
        "registry": registry_name,
        "variants": [[v.name, v.prompt_name, v.prompt.content_hash,
                      v.model.model_dump(mode="json")] for v in variants],
        "eval_set": evalset.digest,
        "metrics": results.metrics, "primary": results.primary,
        "baseline": results.baseline, "guardrails": list(results.guardrails),
        "params": {k: str(v) for k, v in params.items()},
        "trace": trace, "redacted": redacted,
        "columns": columns,
        "rows": rows.astype(object).where(rows.notna(), None).values.tolist(),
    }
    text = json.dumps(payload, sort_keys=True, default=str, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def find_logged(c: Any, experiment_id: str, digest: str
                ) -> tuple[str, dict[str, str], dict[str, int]] | None:
    """The latest finished parent run with this fingerprint: its id, the variants' run ids
    and prompt versions; None when there is none or one of its variant runs is unreadable."""
    from mlflow.exceptions import MlflowException

    runs = c.search_runs(
        [experiment_id], max_results=1, order_by=["attributes.start_time DESC"],
        filter_string=f"tags.`{FINGERPRINT_TAG}` = '{digest}' "
                      "and attributes.status = 'FINISHED'")
    if not runs:
        return None
    parent = runs[0]
    listed = parent.data.tags.get("workbench.child_runs", "")
    children = dict(item.split("=", 1) for item in listed.split(",") if "=" in item)
    versions: dict[str, int] = {}
    try:
        for variant, run_id in children.items():
            uri = c.get_run(run_id).data.params["prompt_uri"]  # prompts:/<name>/<version>
            versions[variant] = int(uri.rsplit("/", 1)[1])
    except (MlflowException, KeyError, ValueError):
        return None
    return parent.info.run_id, children, versions
