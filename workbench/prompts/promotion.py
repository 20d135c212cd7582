"""Promotion from evidence: move an alias to the variant a comparison found better.

A promotion the verdict does not support, or of a degenerate variant (a constant answer at
chance level can still win on accuracy), needs a written reason, which is kept with the
version's tags next to who promoted it and on which run. It follows the project's registry
policy like any other promotion: a protected alias gets a recorded request carrying the
report's run id and verdict, for someone else to approve.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..errors import WorkbenchError
from .policy import Policy
from .registry import PromotionRequest, promote_or_request
from .versions import RegisteredPrompt

if TYPE_CHECKING:
    from ..evaluation.stats.report import ComparisonReport
    from ..results import Results

log = logging.getLogger("workbench.promotion")


class PromotionRefused(WorkbenchError):
    """The evidence does not support the promotion and no reason was given to override it."""


def promote(report: ComparisonReport, *, alias: str = "production",
            approver: str | None = None, variant: str | None = None,
            reason: str | None = None,
            policy: Policy | None = None) -> RegisteredPrompt | PromotionRequest:
    """Promote ``variant`` (default: the report's winner) of a tracked run to ``alias``.

    ``approver`` is the person acting. When the policy protects ``alias`` this records their
    request instead and returns a :class:`~workbench.prompts.registry.PromotionRequest` (its
    ``promoted`` is False and its ``str()`` says who must approve and how); otherwise the
    alias moves and the promoted version comes back.

    A variant whose primary-metric answers are degenerate (``results.degenerate()``: nearly
    constant, or not significantly above always answering the majority label) is refused
    like one the verdict does not favour: a ``reason`` overrides, and the finding is kept
    with the promotion's evidence.
    """
    results, chosen, flagged = check_promotion(report, variant=variant, reason=reason)
    evidence = {"variant": chosen, "verdict": report.verdict}
    if flagged:
        evidence["degenerate"] = flagged
    if "parent" in results.run_ids:
        evidence["run_id"] = results.run_ids["parent"]
    outcome = promote_or_request(results.registry_name, results.prompt_versions[chosen], alias,
                                 actor=approver, reason=reason, evidence=evidence, policy=policy)
    if not outcome.promoted:
        log.warning("%s", outcome)
    return outcome


def check_promotion(report: ComparisonReport, *, variant: str | None = None,
                    reason: str | None = None) -> tuple[Results, str, str | None]:
    """What ``promote`` checks before it touches the registry: raises
    :class:`PromotionRefused` (or a ``WorkbenchError``) as it would, else returns the
    results, the variant to promote and why it is degenerate (None when it is not).

    A panel calls this first, so a refusal shows before it asks to confirm the move.
    """
    results: Results | None = report.source
    if results is None:
        raise WorkbenchError("this report is not linked to a run; use results.compare(...)")
    refuse_fallback_evidence(report, results, reason)
    winner = report.winner
    chosen = variant or winner
    if chosen is None:
        if not reason:
            raise PromotionRefused(
                f"the verdict names no winner ({report.verdict}); "
                "pass variant=... and reason=... to promote anyway")
        raise PromotionRefused("name the variant to promote with variant=...")
    if chosen != winner and not reason:
        raise PromotionRefused(
            f"the verdict does not favour {chosen!r} ({report.verdict}); "
            "give reason=... to promote it anyway")
    flagged = results.degenerate(alpha=report.alpha).get(chosen)
    if flagged and not reason:
        raise PromotionRefused(
            f"{chosen!r} is degenerate: {flagged}. Its score does not "
            "show it tells the classes apart; give reason=... to promote it anyway (the "
            "reason is kept in the registry's audit log)")
    if chosen not in results.prompt_versions:
        raise WorkbenchError(
            f"{chosen!r} has no registered prompt version: run the experiment with tracking "
            "on (the default) before promoting")
    return results, chosen, flagged


def refuse_fallback_evidence(report: ComparisonReport, results: Results,
                             reason: str | None) -> None:
    """Refuse, unless a reason is given, a comparison some of whose answers a fallback gave:
    its verdict is not about the variants' own models."""
    from ..gateway.fallbacks import fallback_shares

    shares = fallback_shares(results.frame)
    mixed = {v: shares[v] for v in report.variants if shares.get(v, 0.0) > 0}
    if mixed and not reason:
        shown = ", ".join(f"{v}: {share:.0%}" for v, share in mixed.items())
        raise PromotionRefused(
            f"some answers of this comparison came from a fallback model ({shown} of the "
            "answered calls), so the verdict is not about the variants' own models; run the "
            "experiment again once they answer, or give reason=... to promote anyway")
