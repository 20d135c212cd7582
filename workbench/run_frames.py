"""A run's per-example table and status as MLflow shows them: the example's fields beside each
row, personal data redacted, and how many calls failed."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .evaluation.evalsets import EvalSet

ERRORS_TAG = "workbench.errors"  # "all", or "<failed> of <calls>"
ERROR_SUMMARY_TAG = "workbench.most_common_error"
EXAMPLE_FIELD_PREFIXES = ("inputs.", "expectations.")  # MLflow's evaluation words


def error_tags(frame: Any) -> dict[str, str]:
    """``workbench.errors``: "all" when no call answered, else "<failed> of <calls>"."""
    if len(frame) == 0 or "error" not in frame:
        return {}
    failed = int(frame["error"].notna().sum())
    if failed == 0:
        return {}
    if failed == len(frame):
        return {ERRORS_TAG: "all", ERROR_SUMMARY_TAG: _common_error(frame)}
    return {ERRORS_TAG: f"{failed} of {len(frame)}", ERROR_SUMMARY_TAG: _common_error(frame)}


def _common_error(frame: Any) -> str:
    errors = frame["error"].dropna().astype(str)
    if errors.empty:
        return ""
    top = errors.map(lambda e: e.splitlines()[0][:200] if e else e).value_counts()
    return f"{top.iloc[0]} of {len(errors)} failed calls: {top.index[0]}"


def first_call_ms(frame: Any) -> int | None:
    if "started_at" not in frame or frame["started_at"].isna().all():
        return None
    return int(float(frame["started_at"].min()) * 1000)


def with_example_fields(frame: Any, evalset: EvalSet, expected: Sequence[str],
                         redact: Callable[[str], str] | None) -> Any:
    """The rows with their example's fields beside them: ``expectations.<field>`` for what a
    scorer compares against, ``inputs.<field>`` for the rest, right after ``example_id``."""
    import pandas as pd

    if "example_id" not in frame or len(frame) == 0:
        return frame
    fields: dict[str, dict[str, Any]] = {}
    for example in evalset.examples:
        for key, value in example.inputs.items():
            if key == "id":
                continue
            column = f"expectations.{key}" if key in expected else f"inputs.{key}"
            if isinstance(value, str) and redact is not None:
                value = redact(value)
            elif not isinstance(value, str | int | float | bool | type(None)):
                value = json.dumps(value, ensure_ascii=False, default=str)
            fields.setdefault(column, {})[example.id] = value
    ordered = sorted(fields, key=lambda col: (col.startswith("expectations."), col))
    extra = pd.DataFrame({col: frame["example_id"].map(fields[col]) for col in ordered},
                         index=frame.index)
    at = list(frame.columns).index("example_id") + 1
    return pd.concat([frame.iloc[:, :at], extra, frame.iloc[:, at:]], axis=1)


def redacted(frame: Any, redact: Callable[[str], str] | None) -> Any:
    if redact is None:
        return frame
    frame = frame.copy()
    # every free-text column: outputs, errors, scorer reasons and labels (which quote outputs)
    for column in frame.columns:
        if column in ("output", "error", "warning") or column.startswith(("reason.", "label.")):
            frame[column] = frame[column].map(lambda v: redact(v) if isinstance(v, str) else v)
    return frame


def redacted_value(value: Any, redact: Callable[[str], str] | None) -> Any:
    if redact is None:
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redacted_value(v, redact) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redacted_value(v, redact) for v in value]
    return value


def json_table(frame: Any) -> Any:
    # JSON artifacts cannot hold NaN; MLflow's table viewer shows None as empty.
    return frame.astype(object).where(frame.notna(), None)
