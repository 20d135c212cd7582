"""An experiment's finished run into MLflow, or, when MLflow fails, a way to log it later.

The store is checked before the first call, but it can still fail by the time the calls are
done (a server restarted, a disk filled). The answers are paid for by then and sit in the
response cache, so the results are returned with a message saying so instead of a traceback:
running the same thing again serves every answer from the cache and logs the run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from .settings import tracking_uri
from .store import check_store

if TYPE_CHECKING:
    from .evaluation.evalsets import EvalSet
    from .results import Results
    from .run_types import Variant
    from .spec import ExperimentSpec

log = logging.getLogger("workbench.tracking")


class Experiment(Protocol):
    """What logging reads of an ``Experiment`` (the class lives above this module)."""

    @property
    def name(self) -> str: ...

    spec: ExperimentSpec
    variants: Sequence[Variant]
    scorers: Sequence[Any]


def track(experiment: Experiment, results: Results, evalset: EvalSet, *,
          log_again: bool = False, resend: bool = False) -> None:
    """Log ``results``; on failure set ``results.log_error`` (also a warning) and return.

    ``resend``: this run bypassed the cache (no cache, or refreshed variants), so the same
    options would pay again; the message then says which options to drop.
    """
    try:
        # asked again: a server that died during the calls costs MLflow minutes of retries
        check_store(tracking_uri(experiment.spec.directory))
        _log(experiment, results, evalset, log_again=log_again)
    except Exception as exc:  # noqa: BLE001  (the answers are paid for: never lose them)
        results.log_error = _failure(exc, tracking_uri(experiment.spec.directory), results,
                                     resend=resend)
        results.warnings.append(results.log_error)
        log.warning("%s", results.log_error)


def _failure(exc: Exception, uri: str, results: Results, *, resend: bool) -> str:
    again = ("running it again with the cache on (without --no-cache or --refresh; "
             "use_cache=True and no refresh)" if resend else "running the same command again")
    failed = len(results.errors)
    extra = []
    if failed:
        extra.append(f"only the {failed} failed call(s) are sent again")
    if results.partial:
        extra.append("the calls this run had not reached are made then")
    detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    return (f"not logged to MLflow ({uri}): {type(exc).__name__}: {detail}. Nothing is lost: "
            f"the answers are in the response cache, and {again} logs this run without "
            "sending them again" + (f" ({'; '.join(extra)})" if extra else ""))


def _log(experiment: Experiment, results: Results, evalset: EvalSet, *,
         log_again: bool) -> None:
    from .tracking import log_execution

    spec = experiment.spec
    redact = None
    if spec.run.redact_pii:
        from .evaluation.scorers.safety import redact
    tracked = log_execution(
        experiment=experiment.name, registry_name=spec.prompt_registry_name,
        variants=experiment.variants, evalset=evalset, results=results,
        report=results.report,
        params={"repeats": spec.run.repeats,
                **({"trace_calls": True} if spec.run.trace_calls else {}),
                **{k: v for k, v in (("non_inferiority_margin", spec.non_inferiority_margin),
                                     ("request_type", spec.request_type)) if v is not None}},
        source_dir=spec.directory, trace=spec.run.trace, redact=redact,
        trace_calls=spec.run.trace_calls, request_type=spec.request_type,
        reuse=not log_again, partial=results.partial,
        expected=expected_fields(experiment.scorers))
    results.run_ids = {"parent": tracked.parent_run_id, **tracked.child_run_ids}
    if tracked.reused:
        results.warnings.append(
            f"not logged again: every call came from the cache and the config, eval set, "
            f"prompts and scores match parent run {tracked.parent_run_id}, so run_ids are "
            "that run's (log_again=True or --log-again logs a new run)")
    results.prompt_versions = dict(tracked.prompt_versions)
    results.tracking_uri = tracked.tracking_uri


def expected_fields(scorers: Sequence[Any]) -> list[str]:
    """The eval-set fields the scorers compare outputs against (their ``expected`` option)."""
    fields: list[str] = []
    for scorer in scorers:
        value = getattr(getattr(scorer, "options", None), "expected", None)
        if isinstance(value, str) and value not in fields:
            fields.append(value)
    return fields
