"""The regression gate: run a candidate prompt against the one at an alias, and say no in time.

``workbench check`` (a CI step) and ``workbench.testing.assert_no_regression`` (a pytest test)
both call ``check``. The gate fails when the candidate is significantly worse on the primary
metric or a guardrail (the paired statistics of ``workbench.evaluation.stats``), misses an absolute
threshold, errors too often, or is degenerate (``workbench.evaluation.classification``: nearly
constant answers, or a categorical primary metric not significantly above the majority-class
baseline). With no prompt at the alias yet there is nothing to regress against, so only
the thresholds, the error rate and the degenerate check apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import SpecError, WorkbenchError

if TYPE_CHECKING:
    from ..experiment import Experiment
    from ..results import Results
    from ..run_types import Variant
    from .evalsets import EvalSet
    from .stats.report import ComparisonReport


@dataclass(frozen=True)
class GateResult:
    """The decision, every reason for a failure, and the evidence behind it."""

    passed: bool
    candidate: str
    baseline: str | None
    failures: tuple[str, ...]
    lines: tuple[str, ...]
    results: Results | None = field(default=None, repr=False)
    report: ComparisonReport | None = field(default=None, repr=False)

    def to_text(self) -> str:
        verdict = "PASS: no regression" if self.passed else "FAIL: " + "; ".join(self.failures)
        return "\n".join([*self.lines, verdict])

    def __str__(self) -> str:
        return self.to_text()


def check(experiment_dir: str | Path, *, baseline: str = "production",
          candidate: str | None = None, limit: int | None = None, use_cache: bool = True,
          progress: bool = False, max_cost: float | None = None,
          workers: int | None = None) -> GateResult:
    """Run candidate and ``@baseline`` on the regression set; see the module doc for the rules.

    The run is the experiment's own (``Experiment.arun``): every call is checked against its
    context window and the cost estimate against ``max_cost`` (or ``run.max_cost``) before
    anything is sent, and the check stops, and fails, once the cost spent reaches it.
    """
    from ..aio import run_sync

    return run_sync(lambda: acheck(experiment_dir, baseline=baseline, candidate=candidate,
                                   limit=limit, use_cache=use_cache, progress=progress,
                                   max_cost=max_cost, workers=workers))


async def acheck(experiment_dir: str | Path, *, baseline: str = "production",
                 candidate: str | None = None, limit: int | None = None,
                 use_cache: bool = True, progress: bool = False, max_cost: float | None = None,
                 workers: int | None = None) -> GateResult:
    """Async form of ``check``, for notebooks and code already on an event loop."""
    from ..experiment import Experiment
    from ..observe.hook import attribute

    exp = Experiment.from_yaml(experiment_dir)
    cand = _candidate(exp, candidate)
    base = _baseline(exp, baseline, cand)
    evalset = _regression_set(exp)
    if limit:
        evalset = evalset.head(limit)
    variants = [v for v in (base, cand) if v is not None]
    for variant in variants:
        _check_fields(variant, evalset)
    _as_gate_run(exp, variants, evalset)
    with attribute(exp.name, request_type="check"):  # the usage ledger's records
        results = await exp.arun(track=False, progress=progress, use_cache=use_cache,
                                 max_cost=max_cost, workers=workers)
    results.guardrails = tuple(exp.spec.gate.guardrails)
    return _decide(exp, results, base, cand, baseline, len(evalset))


def _as_gate_run(exp: Experiment, variants: list[Variant], evalset: EvalSet) -> None:
    """Turn the loaded experiment into the gate's run: the alias's prompt (when there is
    one) and the candidate on the regression set, the first of them the baseline."""
    exp.variants = variants
    exp.evalset = evalset
    exp.spec = exp.spec.model_copy(update={"baseline": variants[0].name})


def _candidate(exp: Experiment, name: str | None) -> Variant:
    names = [v.name for v in exp.variants]
    if name is None:
        others = [v for v in exp.variants if v.name != exp.spec.baseline]
        if len(exp.variants) == 1 or len(others) == 1:
            return (others or exp.variants)[0]
        raise WorkbenchError(f"{exp.name} has variants {names}: choose one with --candidate")
    for variant in exp.variants:
        if variant.name == name:
            return variant
    raise WorkbenchError(f"{exp.name}: no variant {name!r}; variants are {names}")


def _baseline(exp: Experiment, alias: str, cand: Variant) -> Variant | None:
    from ..errors import RegistryError
    from ..prompts.versions import alias_version, load
    from ..run_types import Variant

    registry_name = exp.spec.prompt_registry_name
    if alias_version(registry_name, alias) is None:
        return None
    try:
        found = load(registry_name, alias=alias)
    except RegistryError as exc:
        raise WorkbenchError(f"cannot load the baseline prompts:/{registry_name}@{alias}: "
                             f"{exc}") from exc
    name = alias if alias != cand.name else f"@{alias}"
    return Variant(name=name, prompt_name=f"{registry_name}@{alias} (v{found.version})",
                   prompt=found.template, model_name=name, model=found.model or cand.model)


def _regression_set(exp: Experiment) -> EvalSet:
    from .evalsets import EvalSet

    chosen = exp.spec.gate.regression_set
    if chosen is None:
        return exp.evalset
    path = exp.spec.directory / chosen.path
    if not path.exists():
        raise SpecError(exp.spec.path or exp.name, "gate.regression_set.path",
                        f"{path} not found", "give a path relative to the experiment directory")
    evalset = EvalSet.from_file(path, id_field=chosen.id_field, split=chosen.split)
    return evalset.head(chosen.limit) if chosen.limit else evalset


def _check_fields(variant: Variant, evalset: EvalSet) -> None:
    missing = sorted(variant.prompt.variables - set(evalset.columns))
    if missing:
        raise WorkbenchError(
            f"{variant.name} ({variant.prompt_name}) needs {missing} but the regression set "
            f"{evalset.source} has only {sorted(evalset.columns)}")


def _decide(exp: Experiment, results: Results, base: Variant | None, cand: Variant,
            alias: str, n_examples: int) -> GateResult:
    where = f"prompts:/{exp.spec.prompt_registry_name}@{alias}"
    head = (f"workbench check {exp.name}: {cand.name!r} vs {where} on {n_examples} examples"
            if base else f"workbench check {exp.name}: {cand.name!r}; no prompt at {where} "
                         f"yet, so only thresholds, errors and degenerate answers are checked")
    lines, failures = [head, _calls_line(results.frame)], []
    if results.partial:  # a verdict on the calls made so far would be on the wrong data
        failures.append(f"the check did not finish ({results.partial})")
    report = None
    if base is not None:
        report = _compare(exp, results, base, cand, lines, failures)
    compared = [v.name for v in (base, cand) if v is not None]
    _fallbacks(results, compared, lines)
    _thresholds(exp, results, cand, lines, failures)
    _degenerate(exp, results, cand, lines, failures)
    _errors(exp, results, base, cand, lines, failures)
    return GateResult(not failures, cand.name, base.name if base else None, tuple(failures),
                      tuple(lines), results, report)


def _compare(exp: Experiment, results: Results, base: Variant, cand: Variant,
             lines: list[str], failures: list[str]) -> ComparisonReport | None:
    """The paired comparison: one line per metric, a failure per gated regression."""
    from .stats import compare, format_p

    gate = exp.spec.gate
    try:
        report = compare(results.frame, base.name, cand.name, results.metrics,
                         primary=results.primary, guardrails=gate.guardrails, alpha=gate.alpha)
    except ValueError as exc:
        failures.append(f"no comparison possible: {exc}")
        return None
    for metric, r in report.pairs[0].metrics.items():
        role = " (primary)" if metric == results.primary else (
            " (guardrail)" if metric in gate.guardrails else "")
        worse = r.regresses(cand.name)
        gated = metric == results.primary or metric in gate.guardrails
        mark = ("  REGRESSED" if gated else "  worse (not gated)") if worse else ""
        p_value = f"p={format_p(r.p_value, gate.alpha)}"
        lines.append(f"  {metric + role:<28} {r.mean_a:.3f} → {r.mean_b:.3f}  "
                     f"diff {r.diff:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}]  "
                     f"{p_value}{mark}")
        if worse and gated:
            failures.append(f"{metric} regressed significantly "
                            f"({r.mean_a:.3f} → {r.mean_b:.3f}, {p_value})")
    return report


def _fallbacks(results: Results, compared: list[str], lines: list[str]) -> None:
    from ..gateway.fallbacks import fallback_caveats

    lines += [f"  caveat: {caveat}" for caveat in fallback_caveats(results.frame, compared)]


def _thresholds(exp: Experiment, results: Results, cand: Variant, lines: list[str],
                failures: list[str]) -> None:
    mine = results.frame[results.frame["variant"] == cand.name]
    for metric, minimum in exp.spec.gate.thresholds.items():
        value = _mean(mine, metric)
        ok = value is not None and value >= minimum
        shown = "n/a" if value is None else f"{value:.3f}"
        lines.append(f"  threshold {metric} >= {minimum:g}: {shown} {'ok' if ok else 'MISSED'}")
        if not ok:
            failures.append(f"{metric} {shown} is below its threshold {minimum:g}")


def _degenerate(exp: Experiment, results: Results, cand: Variant, lines: list[str],
                failures: list[str]) -> None:
    flagged = results.degenerate(alpha=exp.spec.gate.alpha).get(cand.name)
    if flagged:  # a constant answer can tie or beat the alias and still be useless
        lines.append(f"  degenerate {cand.name}: {flagged}")
        failures.append(f"{cand.name} is degenerate: {flagged}")


def _errors(exp: Experiment, results: Results, base: Variant | None, cand: Variant,
            lines: list[str], failures: list[str]) -> None:
    allowed = exp.spec.gate.max_error_rate
    for variant in (v for v in (base, cand) if v is not None):
        rows = results.frame[results.frame["variant"] == variant.name]
        errors = int(rows["error"].notna().sum()) if len(rows) else 0
        lines.append(f"  errors {variant.name}: {errors}/{len(rows)}")
        if variant is cand and len(rows) and errors / len(rows) > allowed:
            first = rows["error"].dropna().iloc[0]
            failures.append(f"{errors}/{len(rows)} candidate calls failed (allowed "
                            f"{allowed:.0%}); first: {str(first)[:160]}")


def _calls_line(frame: Any) -> str:
    """How many answers were paid for now and how many the response cache gave back."""
    cached = int(frame["cached"].sum()) if len(frame) else 0
    return f"  calls: {len(frame) - cached} sent, {cached} from the response cache"


def _mean(rows: Any, metric: str) -> float | None:
    """Mean over per-example means (repeats count once), as the A/B summary computes it."""
    from .stats._frame import usable

    values = usable(rows, metric)  # a failed call's retrieval score counts, as in the A/B
    kept = values.notna()
    if not kept.any():
        return None
    return float(values[kept].groupby(rows.loc[kept, "example_id"]).mean().mean())
