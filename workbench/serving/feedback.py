"""People's labels on served answers, and whether the online judges agree with them.

An application passes on what its user said about an answer (``PromptService.feedback``
or ``POST /v1/feedback``) with the answer's request id. The label is kept with the
request in the ledger's database (``request_feedback``), append-only: a later label on the
same request does not overwrite the earlier one, and ``agreement`` uses the latest. A
request id the ledger has never seen is refused (``UnknownRequest``; HTTP 404), since a
label nobody can join to an answer is lost data.

``score`` is 0 (bad) to 1 (good); a thumbs down is ``score=0``. Served requests carry no
MLflow trace, so these labels live in the ledger's database rather than as assessments.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from ..errors import WorkbenchError

if TYPE_CHECKING:
    from ..evaluation.feedback import Agreement


class Named(Protocol):
    """A ``PromptService`` as feedback sees it: the prompt it serves."""

    name: str


class UnknownRequest(WorkbenchError):
    """No served request has this id (mistyped, or from another project's ledger)."""


class FeedbackInputError(WorkbenchError, ValueError):
    """A label is invalid: no score and no comment, or a score outside 0-1."""


def record(service: Named | str, request_id: str, *, score: float | None = None,
           comment: str | None = None, annotator: str | None = None) -> None:
    """Store one label for a served request; checks the id against the ledger first."""
    check(score, comment)
    from ..monitor.store import default_log
    from ..observe import hook

    if not hook.enabled():
        raise WorkbenchError("feedback needs the usage ledger, which is off "
                             "(WORKBENCH_LEDGER=off); fix: unset WORKBENCH_LEDGER")
    hook.default_ledger().flush(5.0)  # the request's own record may still be queued
    monitor_log = default_log()
    monitor_log.flush(5.0)
    if not monitor_log.store().known_request(str(request_id)):
        name = service if isinstance(service, str) else service.name
        raise UnknownRequest(
            f"feedback for {name!r}: no served request has the id {request_id!r} in this "
            "project's ledger; fix: send the request_id that the reply carried "
            "(Reply.request_id, or request_id in the HTTP answer)")
    monitor_log.put("request_feedback", {
        "request_id": str(request_id), "ts": time.time(),
        "score": None if score is None else float(score), "comment": comment or None,
        "annotator": annotator})


def check(score: Any, comment: str | None) -> None:
    if score is None and not comment:
        raise FeedbackInputError("feedback needs a score (0 bad to 1 good) or a comment")
    if score is not None and (isinstance(score, bool) or not isinstance(score, int | float)
                              or not 0 <= score <= 1 or math.isnan(score)):
        raise FeedbackInputError(
            f"feedback score must be a number from 0 (bad) to 1 (good), got {score!r}")


def agreement(prompt: str, scorer: str, *, since: Any = "30d", threshold: float = 0.5
              ) -> Agreement:
    """Does the online judge ``scorer`` agree with people on ``prompt``'s served answers?

    Each request's latest human score and its online score, both passed at ``threshold``;
    Cohen's kappa and the same trust verdict as offline (``workbench.evaluation.feedback``).
    """
    from ..evaluation.feedback import Agreement, _verdict, cohen_kappa
    from ..monitor.store import default_log
    from ..observe.record import since_ts

    monitor_log = default_log()
    monitor_log.flush(5.0)
    store = monitor_log.store()
    start = since_ts(since)
    labels = store.frame("request_feedback", store.t["request_feedback"].c.ts >= start)
    scores = store.frame("online_scores", store.t["online_scores"].c.ts >= start,
                         store.t["online_scores"].c.prompt == prompt,
                         store.t["online_scores"].c.scorer == scorer)
    labels = labels.dropna(subset=["score"]).sort_values("ts").groupby("request_id").last()
    scores = scores.dropna(subset=["value"]).groupby("request_id")["value"].mean()
    joined = labels.join(scores, how="inner")
    if joined.empty:
        return Agreement(scorer, 0, math.nan, math.nan,
                         "no labelled request was scored online: label sampled requests")
    human = [bool(v >= threshold) for v in joined["score"]]
    judge = [bool(v >= threshold) for v in joined["value"]]
    accuracy = sum(h == j for h, j in zip(human, judge, strict=True)) / len(human)
    kappa = cohen_kappa(human, judge)
    return Agreement(scorer, len(human), accuracy, kappa, _verdict(len(human), kappa, human))


class FeedbackRequest(BaseModel):
    """The body of ``POST /v1/feedback``."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=64)
    score: float | None = Field(None, ge=0, le=1, description="0 bad to 1 good")
    comment: str | None = Field(None, max_length=10_000)
    annotator: str | None = Field(None, max_length=200)


def add_route(app: Any, services: Any, authorize: Any) -> None:
    """``POST /v1/feedback``: ``{"request_id": ..., "score": 0, "comment": ...}``."""
    from fastapi import Depends, HTTPException

    names = ", ".join(sorted(s.name for s in services)) or "this server"

    @app.post("/v1/feedback", status_code=201, dependencies=[Depends(authorize)],
              summary="a person's label (0 bad to 1 good, and/or a comment) for a served "
                      "answer, by the request_id of its response",
              responses={404: {"description": "no served request has that id"},
                         422: {"description": "no score and no comment, or a bad field"},
                         503: {"description": "the usage ledger is off or unreadable"}})
    def feedback(body: FeedbackRequest) -> dict[str, str]:
        try:
            record(names, body.request_id, score=body.score, comment=body.comment,
                   annotator=body.annotator)
        except UnknownRequest as exc:
            raise HTTPException(404, str(exc)) from exc
        except FeedbackInputError as exc:
            raise HTTPException(422, str(exc)) from exc
        except WorkbenchError as exc:  # the ledger is off or cannot be read
            raise HTTPException(503, str(exc)) from exc
        return {"status": "recorded", "request_id": body.request_id}
