"""Verdict wording: the decision drawn from the primary metric, said in one paragraph."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ._frame import ok_rows, per_example, quantile
from .noninferiority import MIN_PAIRED, NonInferiority
from .power import required_sample_size
from .types import CompareOptions, ErrorCheck, MetricComparison, PairComparison

# Default "smallest effect worth detecting" when the caller gives none: 5 points of pass rate,
# or Cohen's "small" 0.2 SD for scores.
DEFAULT_BINARY_MIN_EFFECT = 0.05
DEFAULT_CONTINUOUS_MIN_EFFECT_SD = 0.2


def _decimals(width: float) -> int:
    if not math.isfinite(width) or width <= 0:
        return 3
    return int(min(6, max(2, 1 - math.floor(math.log10(width)))))


def _num(x: float, dec: int, sign: bool = False) -> str:
    if not math.isfinite(x):
        return "n/a"
    return f"{x:+.{dec}f}" if sign else f"{x:.{dec}f}"


def format_p(p: float, alpha: float = 0.05) -> str:
    """Two significant digits, more when rounding would cross ``alpha``."""
    if not math.isfinite(p):
        return "n/a"
    if p < 1e-4:
        return "<0.0001"
    s = f"{p:.2g}"
    if (float(s) < alpha) != (p < alpha):
        s = f"{p:.4g}"
    return s


def p_text(name: str, p: float, alpha: float = 0.05) -> str:
    """'p_adj=0.03' or 'p_adj<0.0001'."""
    s = format_p(p, alpha)
    return f"{name}{s}" if s.startswith("<") else f"{name}={s}"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%" if math.isfinite(x) else "n/a"


def _seen_from(r: MetricComparison, winner: str | None) -> tuple[float, float, float]:
    if winner is not None and winner == r.a:
        return -r.diff, -r.ci_high, -r.ci_low
    return r.diff, r.ci_low, r.ci_high


def effect_text(r: MetricComparison, winner: str | None = None, p_name: str = "p_adj") -> str:
    """'(+0.21, 95% CI [0.12, 0.30], McNemar exact, p_adj=0.0003)' seen from ``winner``."""
    diff, lo, hi = _seen_from(r, winner)
    dec = _decimals(hi - lo)
    conf = round(100 * (1 - r.alpha))
    side = "" if r.higher_is_better else ", lower is better"
    p = r.p_adj if p_name == "p_adj" else r.p_value
    disc = ""
    if r.discordant_a is not None and r.discordant_b is not None:
        disc = f", discordant pairs {r.a} {r.discordant_a} / {r.b} {r.discordant_b}"
    return (
        f"({_num(diff, dec, True)}, {conf}% CI [{_num(lo, dec)}, {_num(hi, dec)}]{side}, "
        f"{r.test}{disc}, {p_text(p_name, p, r.alpha)})"
    )


def _target(r: MetricComparison, opts: CompareOptions, sd: float) -> float:
    if opts.min_effect is not None:
        return float(opts.min_effect)
    if r.kind == "binary":
        return DEFAULT_BINARY_MIN_EFFECT
    return DEFAULT_CONTINUOUS_MIN_EFFECT_SD * sd if sd > 0 else math.nan


def _needed_n(r: MetricComparison, target: float, sd_diff: float, alpha: float,
              opts: CompareOptions) -> int | None:
    kw = dict(alpha=alpha, power=opts.power, mcnemar=opts.mcnemar, max_n=10_000_000)
    try:
        if r.discordant_a is not None and r.discordant_b is not None:
            psi = (r.discordant_a + r.discordant_b) / r.n_paired
            return required_sample_size(
                target, kind="binary", discordance=min(1.0, max(psi, target)), **kw
            )
        if not sd_diff > 0:
            return None
        return required_sample_size(target, kind="continuous", sd_diff=sd_diff, **kw)
    except ValueError:
        return None


def _power_text(df: pd.DataFrame, r: MetricComparison, opts: CompareOptions,
                alpha: float) -> tuple[str, bool]:
    """What the comparison could detect, and whether it is underpowered for ``min_effect``."""
    sd_a = float(per_example(df, r.a, r.metric)[0].std()) if r.kind == "continuous" else 0.0
    target = _target(r, opts, sd_a)
    dec = _decimals(abs(r.ci_high - r.ci_low))
    identical = r.note.startswith("identical")
    text = ""
    if identical:
        # Nothing varied: judge the sample size as if the differences spread like the scores.
        mde = math.nan
        sd_diff = sd_a
    else:
        mde = r.mde
        d = per_example(df, r.b, r.metric)[0] - per_example(df, r.a, r.metric)[0]
        sd_diff = float(d.dropna().std())
        if math.isfinite(mde):
            text = f"; could detect >= {_num(mde, dec)} at {round(opts.power * 100)}% power"
        else:
            text = "; too few examples to detect any effect reliably"
    if not math.isfinite(target) or (math.isfinite(mde) and mde <= target):
        return text, False
    need = _needed_n(r, target, sd_diff, alpha, opts)
    if identical and need is not None and r.n_paired >= need:
        return text, False
    text += f"; underpowered for differences of {_num(target, dec)}"
    if need is not None:
        text += f" (about {need} paired examples needed)"
    return text, True


def _ni_text(r: MetricComparison, ni: NonInferiority, guard_bad: tuple[str, ...]) -> str:
    a, b = r.a, r.b
    dec = _decimals(abs(r.ci_high - r.ci_low))
    conf = round(100 * (1 - r.alpha))
    rel = ">" if r.higher_is_better else "<"
    lim = -ni.margin if r.higher_is_better else ni.margin
    stats_text = (
        f"one-sided {conf}% bound {_num(ni.bound, dec)} {rel} {_num(lim, dec)}, "
        f"{p_text('p', ni.p_value, r.alpha)}"
    )
    if ni.non_inferior and not guard_bad:
        return f"{b} non-inferior to {a} within {ni.margin:g} ({stats_text})"
    if ni.non_inferior:
        return (
            f"{b} would be non-inferior within {ni.margin:g} but regresses on guardrail "
            f"{', '.join(guard_bad)}"
        )
    why = ni.reason or (
        f"one-sided {conf}% bound {_num(ni.bound, dec)}, {p_text('p', ni.p_value, r.alpha)}"
    )
    return f"non-inferiority of {b} within {ni.margin:g} not shown ({why})"


def _error_text(e: ErrorCheck, r: MetricComparison, win: str | None) -> tuple[str, bool]:
    """Why failed calls stop a verdict (empty when they do not), and whether they do."""
    rates = f"{r.a} {_pct(e.rate_a)}, {r.b} {_pct(e.rate_b)} of calls failed"
    reasons = []
    if e.p_value < r.alpha:
        reasons.append(f"the error rates differ significantly ({rates}; {e.test}, "
                       f"{p_text('p', e.p_value, r.alpha)})")
    if e.favours_as_failures != win:
        dec = _decimals(abs(e.ci_high - e.ci_low))
        seen = (f"{e.favours_as_failures} better" if e.favours_as_failures
                else "no significant difference")
        reasons.append(
            f"counting failed calls as {r.metric}={e.failure_score:g} gives {seen} "
            f"({_num(e.diff, dec, True)}, CI [{_num(e.ci_low, dec)}, {_num(e.ci_high, dec)}], "
            f"{p_text('p', e.p_as_failures, r.alpha)}) while dropping them gives "
            f"{win + ' better' if win else 'no significant difference'}"
        )
    if not reasons:
        return f"; failed calls: {rates}, the verdict holds with them counted as failures", False
    return "; ".join(reasons), True


def _first_verdict(df: pd.DataFrame, r: MetricComparison, results: dict[str, MetricComparison],
                   opts: CompareOptions, mde_alpha: float) -> tuple[str, str, bool, tuple]:
    """outcome, verdict, underpowered and blocking guardrails from the primary metric alone."""
    a, b, primary = r.a, r.b, r.metric
    dropped = (
        f"; {r.n_dropped} examples dropped (not scored by both variants)" if r.n_dropped else ""
    )
    if r.n_paired == 0:
        why = why_no_pairs(df, a, b, primary)
        return "insufficient_data", f"cannot compare {a} and {b} on {primary}: {why}", False, ()
    if r.n_paired < MIN_PAIRED:
        return "insufficient_data", (
            f"too few paired examples to compare {a} and {b} on {primary} "
            f"(n={r.n_paired}; at least {MIN_PAIRED} are needed, and far more to detect "
            f"realistic differences){dropped}"
        ), True, ()
    if r.note.startswith("identical"):
        power, under = _power_text(df, r, opts, mde_alpha)
        return "identical", (
            f"no difference on {primary}: {a} and {b} scored identically on all "
            f"{r.n_paired} paired examples{power}{dropped}"
        ), under, ()
    win = r.favours
    if win is not None:
        lose = a if win == b else b
        blocked = tuple(g for g in opts.guardrails if results[g].regresses(win))
        verdict = f"{win} better than {lose} on {primary} {effect_text(r, win)}{dropped}"
        if blocked:
            parts = [f"{g} {effect_text(results[g], win, 'p')}" for g in blocked]
            verdict += f"; blocked: {win} regresses on guardrail " + "; ".join(parts)
            return "blocked", verdict, False, blocked
        return "better", verdict, False, ()
    power, under = _power_text(df, r, opts, mde_alpha)
    verdict = f"no detectable difference on {primary} {effect_text(r)}{power}{dropped}"
    return "no_difference", verdict, under, ()


def decide(
    df: pd.DataFrame,
    results: dict[str, MetricComparison],
    opts: CompareOptions,
    errors: ErrorCheck | None,
    mde_alpha: float,
) -> PairComparison:
    """The pair's outcome: the primary metric's test, then failed calls, then guardrails and
    non-inferiority; every reason for naming no winner is said in the verdict."""
    r = results[str(opts.primary)]
    a, b = r.a, r.b
    outcome, verdict, under, blocked = _first_verdict(df, r, results, opts, mde_alpha)
    caveats: list[str] = []
    if under and outcome != "insufficient_data":
        caveats.append(f"{a} vs {b}: underpowered on {r.metric}; see the verdict")
    if r.skew_warning and outcome != "insufficient_data":
        caveats.append(f"{a} vs {b} on {r.metric}: {r.skew_warning}")
    errors_stop = False
    if errors is not None and outcome != "insufficient_data":
        outcome, verdict, errors_stop = _with_errors(errors, r, outcome, verdict, caveats)
    non_inf = None
    if r.ni is not None and outcome != "insufficient_data":
        guard_bad = tuple(g for g in opts.guardrails if results[g].regresses(b))
        outcome, verdict, non_inf = _with_non_inferiority(r, r.ni, guard_bad, errors_stop,
                                                          outcome, verdict, caveats)
        if guard_bad:
            blocked = tuple(dict.fromkeys((*blocked, *guard_bad)))
    elif r.ni is not None:
        non_inf = False
        verdict += f"; non-inferiority of {b} within {r.ni.margin:g} not shown (too few pairs)"
    return PairComparison(
        a=a,
        b=b,
        primary_metric=r.metric,
        metrics=results,
        verdict=verdict,
        winner=r.favours if outcome == "better" else None,
        outcome=outcome,
        underpowered=under,
        blocked_by=blocked,
        non_inferior=non_inf,
        resources=resources(df, a, b),
        errors=errors,
        caveats=tuple(caveats),
    )


def _with_errors(errors: ErrorCheck, r: MetricComparison, outcome: str, verdict: str,
                 caveats: list[str]) -> tuple[str, str, bool]:
    """Outcome and verdict once failed calls are counted; True when they stop a claim."""
    win = r.favours if outcome in ("better", "blocked") else None
    text, errors_stop = _error_text(errors, r, win)
    if errors_stop and win is not None:
        outcome = "inconclusive"
        verdict = f"no winner on {r.metric}: {win} looked better {effect_text(r, win)}, but {text}"
    elif errors_stop:
        verdict += f"; but {text}"
    else:
        verdict += text
    if errors_stop:
        caveats.append(f"{r.a} vs {r.b}: {text}")
    return outcome, verdict, errors_stop


def _with_non_inferiority(r: MetricComparison, ni: NonInferiority, guard_bad: tuple[str, ...],
                          errors_stop: bool, outcome: str, verdict: str,
                          caveats: list[str]) -> tuple[str, str, bool]:
    """Outcome and verdict with the non-inferiority test; True when it is shown."""
    verdict += "; " + _ni_text(r, ni, guard_bad)
    non_inf = ni.non_inferior and not guard_bad and not errors_stop
    if errors_stop and ni.non_inferior:
        verdict += " - not claimed while failed calls cloud the comparison"
    if non_inf and outcome == "no_difference":
        outcome = "non_inferior"
    if not non_inf:
        caveats.append(f"{r.a} vs {r.b}: non-inferiority of {r.b} within {ni.margin:g} "
                       f"not shown")
    return outcome, verdict, non_inf


def why_no_pairs(df: pd.DataFrame, a: str, b: str, metric: str) -> str:
    ok = ok_rows(df)
    reasons = []
    for v in (a, b):
        rows = df[df["variant"] == v]
        n_err = int((~ok.loc[rows.index]).sum())
        if len(rows) and n_err == len(rows):
            reasons.append(f"{v} has only error rows ({n_err} calls, all failed)")
        elif per_example(df, v, metric)[0].empty:
            reasons.append(f"{v} has no valid {metric} score")
    if reasons:
        return "; ".join(reasons)
    return "no example has a valid score from both variants (their example sets do not overlap)"


def resources(df: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """Cost, tokens and latency per successful call, on the examples both variants ran."""
    ok = ok_rows(df)
    ids = set(df.loc[df["variant"] == a, "example_id"]) & set(
        df.loc[df["variant"] == b, "example_id"]
    )
    rows = {}
    for v in (a, b):
        g = df[(df["variant"] == v) & ok & df["example_id"].isin(ids)]

        def mean(col: str, g: pd.DataFrame = g) -> float:
            if col not in g.columns or g.empty:
                return math.nan
            return float(pd.to_numeric(g[col], errors="coerce").mean())

        lat = g["latency_s"] if "latency_s" in g.columns else pd.Series(dtype=float)
        rows[v] = {
            "cost_per_call": mean("cost"),
            "prompt_tokens_per_call": mean("prompt_tokens"),
            "completion_tokens_per_call": mean("completion_tokens"),
            "latency_p50": quantile(lat, 0.5),
            "latency_p95": quantile(lat, 0.95),
        }
    out = pd.DataFrame(rows)
    out["diff"] = out[b] - out[a]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = out[b] / out[a]
    out["ratio"] = ratio.where(np.isfinite(ratio))
    out.index.name = "resource"
    return out
def overall(
    pairs: tuple[PairComparison, ...], primary: str, baseline: str | None
) -> tuple[str, str | None]:
    if len(pairs) == 1:
        return pairs[0].verdict, pairs[0].winner
    lines = [f"{p.a} vs {p.b}: {p.verdict}" for p in pairs]
    variants = list(dict.fromkeys(v for p in pairs for v in (p.a, p.b)))
    champions = [v for v in variants if all(p.winner == v for p in pairs if v in (p.a, p.b))]
    if baseline is not None:
        # A winner improves on the baseline (guardrails clean); the baseline itself never wins.
        beat = [p.winner for p in pairs if p.winner is not None and p.winner != baseline]
        winner: str | None = None
        if len(beat) == 1:
            head = f"{beat[0]} is the only variant better than {baseline} on {primary}"
            winner = beat[0]
        elif beat:
            head = (
                f"several variants beat {baseline} on {primary} ({', '.join(beat)}); they were "
                f"not compared with each other, so there is no single winner (compare two of "
                f"them directly, e.g. results.compare({beat[0]!r}, {beat[1]!r}))"
            )
        elif all(p.winner == baseline for p in pairs):
            head = f"{baseline} is better than every other variant on {primary}; keep it"
        else:
            head = f"no variant is significantly better than {baseline} on {primary}"
    elif len(champions) == 1:
        head = f"{champions[0]} beats every other variant on {primary}"
        winner = champions[0]
    else:
        head, winner = f"no variant beats every other on {primary}", None
    return "\n".join([head, *lines]), winner
