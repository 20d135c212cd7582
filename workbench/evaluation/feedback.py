"""Human feedback: a person's label per (run, example), and whether a judge agrees with people.

Labels are MLflow 3 assessments (``mlflow.log_feedback``) with a HUMAN source, so the MLflow
UI shows them next to the run. MLflow attaches assessments to traces, not runs, and refuses
an unknown trace id; so the first label for an (example, variant) of a run creates one small
trace in that run (tagged with the example and variant) and every later label is appended to
it. Nothing is overwritten: ``load`` returns every label with its time, and ``agreement``
uses each annotator's latest.

A label also keeps a digest of the output it judged, so ``for_results`` carries it over to a
later run of the experiment that gave the identical output for the same example
(:mod:`workbench.evaluation.queue` orders what is left to label).
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..errors import WorkbenchError

if TYPE_CHECKING:
    import pandas as pd

    from ..results import Results

EXAMPLE_TAG = "workbench.example_id"
VARIANT_TAG = "workbench.variant"
FEEDBACK_TRACE = "workbench.feedback"
OUTPUT_KEY = "workbench.output_sha"
NAMES = {"thumbs": "human_thumbs", "score": "human_score", "comment": "human_comment"}
COLUMNS = ["example_id", "variant", "annotator", "thumbs", "score", "comment", "at"]

# Landis & Koch (1977): kappa above 0.6 is "substantial" agreement; 0.4-0.6 "moderate".
TRUST_KAPPA = 0.6
CAUTION_KAPPA = 0.4
MIN_LABELS = 20


class FeedbackError(WorkbenchError):
    """A label is invalid or its run cannot be found."""


def record(run_id: str, example_id: str, *, annotator: str, thumbs: bool | None = None,
           score: int | None = None, comment: str | None = None,
           variant: str | None = None, output: str | None = None) -> None:
    """Store one person's label for one example of a run (append-only).

    ``output`` is the text judged; its digest lets the label carry over to re-runs that
    answer the same (``for_results``).
    """
    if thumbs is None and score is None and not comment:
        raise FeedbackError("give at least one of thumbs=, score= or comment=")
    if score is not None and (isinstance(score, bool) or score not in range(1, 6)):
        raise FeedbackError(f"score must be an integer from 1 to 5, got {score!r}")
    if not annotator or not annotator.strip():
        raise FeedbackError("annotator= must name the person who gave the label")
    import mlflow
    from mlflow.entities import AssessmentSource

    c = _client()
    trace_id = _trace_for(c, run_id, str(example_id), variant)
    source = AssessmentSource(source_type="HUMAN", source_id=annotator.strip())
    meta = {"record_id": uuid.uuid4().hex, EXAMPLE_TAG: str(example_id),
            VARIANT_TAG: variant or ""}
    if output is not None:
        meta[OUTPUT_KEY] = output_digest(output)
    labels = {"thumbs": thumbs, "score": score}
    for field, value in labels.items():
        if value is not None:
            mlflow.log_feedback(trace_id=trace_id, name=NAMES[field], value=value,
                                source=source, rationale=comment or None, metadata=meta)
    if all(v is None for v in labels.values()):
        mlflow.log_feedback(trace_id=trace_id, name=NAMES["comment"], value=comment,
                            source=source, metadata=meta)


def load(run_id: str) -> pd.DataFrame:
    """Every label recorded for the run (and its per-variant child runs), oldest first."""

    c = _client()
    traces = [t for run in _run_and_children(c, run_id) for t in _feedback_traces(c, run)]
    return _frame(traces)[COLUMNS]


def output_digest(output: Any) -> str:
    """What identifies an output across runs: its text, hashed."""
    text = output if isinstance(output, str) else ""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def for_results(results: Results) -> pd.DataFrame:
    """The labels that apply to ``results``: those recorded on its run, then those recorded
    on earlier runs of the experiment for the same variant's identical output of the same
    example, with ``carried`` True (a re-run that answers the same needs no second label).

    Columns of :func:`load` plus ``run_id``, ``output_sha`` and ``carried``; oldest first,
    so each annotator's latest label comes last.
    """
    import mlflow
    import pandas as pd

    c = _client()
    own_runs = set(results.run_ids.values())
    parent = _run(c, results.run_ids["parent"])
    traces = mlflow.search_traces(locations=[parent.info.experiment_id],
                                  filter_string=f"tag.`{FEEDBACK_TRACE}` = 'true'",
                                  return_type="list", include_spans=False)
    labels = _frame(traces)
    own = labels[labels["run_id"].isin(own_runs)].assign(carried=False)
    earlier = labels[~labels["run_id"].isin(own_runs) & labels["output_sha"].notna()]
    frame = results.frame
    current = pd.DataFrame({"example_id": frame["example_id"].astype(str),
                            "variant": frame["variant"],
                            "output_sha": frame["output"].map(output_digest)}
                           ).drop_duplicates()
    carried = earlier.merge(current, on=["example_id", "variant", "output_sha"])
    carried = carried.assign(carried=True)
    out = pd.concat([carried[own.columns], own], ignore_index=True)
    out["score"] = out["score"].astype("Int64")
    return out.sort_values("at", kind="stable").reset_index(drop=True)


def _frame(traces: Sequence[Any]) -> pd.DataFrame:
    """One row per label in ``traces``: the columns of :func:`load`, ``run_id``, ``output_sha``."""
    import pandas as pd

    rows: dict[str, dict[str, Any]] = {}
    for trace in traces:
        run_id = (trace.info.request_metadata or {}).get("mlflow.sourceRun")
        for a in trace.info.assessments or []:
            if a.name not in NAMES.values() or a.source.source_type != "HUMAN":
                continue
            meta = a.metadata or {}
            key = meta.get("record_id") or a.assessment_id
            row = rows.setdefault(key, {
                "example_id": trace.info.tags.get(EXAMPLE_TAG, meta.get(EXAMPLE_TAG)),
                "variant": trace.info.tags.get(VARIANT_TAG) or None,
                "annotator": a.source.source_id, "thumbs": None, "score": None,
                "comment": None,
                "at": datetime.fromtimestamp(a.create_time_ms / 1000, UTC),
                "run_id": run_id, "output_sha": meta.get(OUTPUT_KEY)})
            value = a.feedback.value if a.feedback is not None else None
            if a.name == NAMES["thumbs"]:
                row["thumbs"] = bool(value)
            elif a.name == NAMES["score"]:
                row["score"] = int(value)
            else:
                row["comment"] = value
            if a.rationale:
                row["comment"] = a.rationale
    frame = pd.DataFrame(list(rows.values()), columns=[*COLUMNS, "run_id", "output_sha"])
    frame["score"] = frame["score"].astype("Int64")
    return frame.sort_values("at", kind="stable").reset_index(drop=True)


def join(results: Results | pd.DataFrame, feedback: pd.DataFrame) -> pd.DataFrame:
    """The results table with each row's latest human label (``human.thumbs`` ...) beside it."""
    frame = getattr(results, "frame", results).copy()
    latest = _latest(feedback).drop_duplicates(["example_id", "variant"], keep="last")
    labels = latest.rename(columns={c: f"human.{c}" for c in
                                    ("annotator", "thumbs", "score", "comment", "at")})
    by_variant = labels[labels["variant"].notna()]
    anywhere = labels[labels["variant"].isna()].drop(columns="variant")
    out = frame.merge(by_variant, on=["example_id", "variant"], how="left")
    if len(anywhere):
        out = out.merge(anywhere, on="example_id", how="left", suffixes=("", "_any"))
        for column in anywhere.columns.drop("example_id"):
            out[column] = out[column].where(out[column].notna(), out.pop(f"{column}_any"))
    return out


@dataclass(frozen=True)
class Agreement:
    """How often a judge agrees with people, beyond chance, and whether to trust it."""

    metric: str
    n: int
    accuracy: float
    kappa: float
    verdict: str

    @property
    def trusted(self) -> bool:
        return self.verdict.startswith("trust")

    def __str__(self) -> str:
        return (f"{self.metric}: n={self.n}, agreement {self.accuracy:.0%}, "
                f"kappa {self.kappa:.2f} — {self.verdict}")


def cohen_kappa(a: Sequence[Any], b: Sequence[Any]) -> float:
    """Agreement corrected for chance; NaN when chance alone explains everything (one class)."""
    if len(a) != len(b) or not a:
        raise ValueError("cohen_kappa needs two equally long, non-empty label lists")
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    categories = set(a) | set(b)
    expected = sum((list(a).count(c) / n) * (list(b).count(c) / n) for c in categories)
    if expected == 1.0:
        return math.nan
    return (observed - expected) / (1 - expected)


def agreement(results: Results | pd.DataFrame, feedback: pd.DataFrame, metric: str, *,
              threshold: float | None = None, pass_score: int = 4) -> Agreement:
    """Compare a judge's pass/fail with human labels on the same rows.

    Humans pass a row with thumbs up or a score of at least ``pass_score``. The judge passes
    it at or above ``threshold`` (default 0.5 for 0-1 metrics, ``pass_score`` for 1-5 ones).
    Each annotator's latest label counts once.
    """
    frame = getattr(results, "frame", results)
    column = f"score.{metric}"
    if column not in frame.columns:
        known = sorted(c[6:] for c in frame.columns if c.startswith("score."))
        raise FeedbackError(f"no metric {metric!r} in the results; scored metrics: {known}")
    labels = _latest(feedback)
    labels = labels.assign(human=[_human_pass(t, s, pass_score)
                                  for t, s in zip(labels["thumbs"], labels["score"],
                                                  strict=True)])
    labels = labels[labels["human"].notna()]
    scored = frame[["example_id", "variant", column]].dropna(subset=[column])
    scored = scored.groupby(["example_id", "variant"], as_index=False)[column].mean()
    with_variant = labels[labels["variant"].notna()].merge(scored, on=["example_id", "variant"])
    no_variant = labels[labels["variant"].isna()].drop(columns="variant").merge(
        scored.groupby("example_id", as_index=False)[column].mean(), on="example_id")
    pairs = [*zip(with_variant["human"], with_variant[column], strict=True),
             *zip(no_variant["human"], no_variant[column], strict=True)]
    if not pairs:
        return Agreement(metric, 0, math.nan, math.nan,
                         "no labelled rows match scored rows: record feedback on this run")
    values = [v for _, v in pairs]
    cut = threshold if threshold is not None else (
        0.5 if min(values) >= 0 and max(values) <= 1 else float(pass_score))
    human = [bool(h) for h, _ in pairs]
    judge = [v >= cut for v in values]
    accuracy = sum(h == j for h, j in zip(human, judge, strict=True)) / len(pairs)
    kappa = cohen_kappa(human, judge)
    return Agreement(metric, len(pairs), accuracy, kappa, _verdict(len(pairs), kappa, human))


def _verdict(n: int, kappa: float, human: list[bool]) -> str:
    if math.isnan(kappa):
        return ("undecided: all labels fall in one class, so agreement could be chance; "
                "label some " + ("failing" if all(human) else "passing") + " rows too")
    if n < MIN_LABELS:
        return f"undecided: {n} labels are too few; label at least {MIN_LABELS} rows"
    if kappa >= TRUST_KAPPA:
        return f"trust: substantial agreement with people (kappa >= {TRUST_KAPPA})"
    if kappa >= CAUTION_KAPPA:
        return "use with care: moderate agreement; spot-check its verdicts"
    return "do not trust: it agrees with people little beyond chance; revise its prompt"


def _human_pass(thumbs: Any, score: Any, pass_score: int) -> bool | None:
    if thumbs is not None and not _missing(thumbs):
        return bool(thumbs)
    if score is not None and not _missing(score):
        return int(score) >= pass_score
    return None


def _missing(value: Any) -> bool:
    try:
        return bool(value != value) or value is None  # NaN and pandas.NA
    except TypeError:
        return True


def _latest(feedback: pd.DataFrame) -> pd.DataFrame:
    """Each annotator's latest label per (example, variant), variant None meaning "any"."""
    frame = feedback.copy()
    frame["variant"] = frame["variant"].where(frame["variant"].notna() & (frame["variant"] != ""),
                                              None)
    key = frame["variant"].fillna("\0")
    return (frame.assign(_key=key).sort_values("at", kind="stable")
            .drop_duplicates(["example_id", "_key", "annotator"], keep="last")
            .drop(columns="_key"))


# ---- MLflow plumbing ------------------------------------------------------------------------

def _client() -> Any:
    from ..prompts.versions import client

    return client()  # also points mlflow's fluent API (log_feedback) at the same store


def _run(c: Any, run_id: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return c.get_run(run_id)
    except MlflowException as exc:
        raise FeedbackError(f"run {run_id!r} not found in {c.tracking_uri}") from exc


def _run_and_children(c: Any, run_id: str) -> list[Any]:
    run = _run(c, run_id)
    children = c.search_runs([run.info.experiment_id],
                             filter_string=f"tags.`mlflow.parentRunId` = '{run_id}'")
    return [run, *children]


def _feedback_traces(c: Any, run: Any, example_id: str | None = None,
                     variant: str | None = None) -> list[Any]:
    import mlflow

    clauses = [f"tag.`{FEEDBACK_TRACE}` = 'true'"]
    if example_id is not None:
        clauses.append(f"tag.`{EXAMPLE_TAG}` = '{_quote(example_id)}'")
        clauses.append(f"tag.`{VARIANT_TAG}` = '{_quote(variant or '')}'")
    return mlflow.search_traces(locations=[run.info.experiment_id], run_id=run.info.run_id,
                                filter_string=" AND ".join(clauses), return_type="list",
                                include_spans=False)


def _trace_for(c: Any, run_id: str, example_id: str, variant: str | None) -> str:
    import mlflow

    run = _run(c, run_id)
    found = _feedback_traces(c, run, example_id, variant)
    if found:
        return found[0].info.trace_id
    span = c.start_trace(f"feedback {example_id}", inputs={"example_id": example_id,
                                                           "variant": variant},
                         tags={FEEDBACK_TRACE: "true", EXAMPLE_TAG: example_id,
                               VARIANT_TAG: variant or ""},
                         experiment_id=run.info.experiment_id, run_id=run_id)
    c.end_trace(span.trace_id)
    mlflow.flush_trace_async_logging()  # the assessment needs the trace stored first
    return span.trace_id


def _quote(text: str) -> str:
    return text.replace("'", "\\'")
