"""``workbench run``: the experiment, its summary and comparison, optionally a promotion."""

from __future__ import annotations

import argparse
import re
import sys
import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..evaluation.stats.report import ComparisonReport
    from ..results import Results

# distinct error messages printed after a run with failed calls
_SHOWN_ERRORS = 5


def _at_least_one(text: str) -> int:
    """argparse type: a count, where 0 or less would silently mean "the default"."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {value}")
    return value


def _dollars(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be an amount in USD > 0, got {text}")
    return value


def register(commands: Any) -> None:
    run = commands.add_parser("run", help="run an experiment's variants over its eval set",
                              description="Run every variant over the eval set, score, print "
                                          "the summary and the paired comparison, log to MLflow.")
    run.add_argument("experiment", help="experiment directory (or its experiment.yaml)")
    run.add_argument("--limit", type=_at_least_one, metavar="N", help="only the first N examples")
    run.add_argument("--no-cache", action="store_true",
                     help="call the models again even when a cached answer exists")
    run.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    run.add_argument("--log-again", action="store_true",
                     help="log a new MLflow run even when every call is cached and an "
                          "identical run was logged before")
    run.add_argument("--concurrency", type=_at_least_one, metavar="N",
                     help="calls in flight at once")
    run.add_argument("--workers", type=_at_least_one, metavar="N",
                     help="processes making calls (default: run.workers, 1)")
    run.add_argument("--refresh", action="append", default=[], metavar="VARIANT",
                     help="call this variant again even when cached (repeatable)")
    run.add_argument("--max-cost", type=_dollars, metavar="USD",
                     help="refuse to start when the estimate is higher; stop once spent")
    run.add_argument("--estimate", action="store_true",
                     help="print what the run would send and cost, then stop")
    run.add_argument("--promote", metavar="ALIAS",
                     help="move ALIAS to the winning variant when the verdict says it is better")
    run.add_argument("--approver", help="name recorded with a promotion (default: your user)")
    run.add_argument("--reason", help="promote the winner even when it is flagged degenerate; "
                                      "the reason is kept in the registry's audit log")
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from ..errors import WorkbenchWarning

    with warnings.catch_warnings():  # each is printed below as a line of its own
        warnings.simplefilter("ignore", WorkbenchWarning)
        return _run_experiment(args)


def _run_experiment(args: argparse.Namespace) -> int:
    from ..experiment import Experiment

    experiment = Experiment.from_yaml(args.experiment)
    for warning in experiment.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{experiment.name}: {len(experiment.variants)} variants × "
          f"{min(args.limit or len(experiment.evalset), len(experiment.evalset))} examples × "
          f"{experiment.spec.run.repeats} repeat(s)")
    plan = experiment.plan(limit=args.limit, use_cache=not args.no_cache, refresh=args.refresh)
    print(f"estimate: {plan}")
    if args.estimate:
        return 0
    results = experiment.run(limit=args.limit, use_cache=not args.no_cache,
                             track=not args.no_track, concurrency=args.concurrency,
                             refresh=args.refresh, max_cost=args.max_cost,
                             workers=args.workers, log_again=args.log_again)
    failures = results.failures()
    _print_results(results, failures)
    _print_mlflow_runs(results)
    if failures:
        print("\n".join(f"error: {p}" for p in failures), file=sys.stderr)
    if results.log_error:
        print(f"\n{results.log_error}", file=sys.stderr)
        if args.promote:
            print("not promoted: the run is not in MLflow yet", file=sys.stderr)
        return 1
    if failures:
        return 1
    if args.promote and results.partial:
        print(f"\nnot promoted: the run is partial ({results.partial}), so it has no verdict")
    if args.promote and results.report is not None:
        return _promote_winner(args, results.report)
    return 0


def _print_results(results: Results, failures: list[str]) -> None:
    """The comparison (or the summary), the calls that failed, warnings and caveats."""
    from ..results import format_summary

    report = results.report
    print()
    # the comparison report carries the per-variant summary; print it alone otherwise
    print(report.to_text() if report else format_summary(results.summary(), results.metrics))
    print(f"\ncache hits: {results.cache_hits} of {len(results.frame)} calls; "
          f"errors: {len(results.errors)}")
    _print_errors(results)
    for warning in results.warnings:
        if warning not in failures and warning != results.log_error:  # said below
            print(f"warning: {warning}")
    if report is None:  # with a report, its caveats already say this
        for variant, why in results.degenerate().items():
            print(f"caveat: {variant} is degenerate: {why}")


def _print_mlflow_runs(results: Results) -> None:
    if not results.run_ids:
        return
    print(f"\nMLflow ({results.tracking_uri}):")
    print(f"  parent run  {results.run_ids['parent']}")
    for variant, run_id in results.run_ids.items():
        if variant != "parent":
            version = results.prompt_versions.get(variant)
            print(f"  {variant:<11} {run_id}  prompts:/{results.registry_name}/{version}")


def _promote_winner(args: argparse.Namespace, report: ComparisonReport) -> int:
    """``--promote``: move the alias to the winner, or say why not (exit 1 when refused)."""
    from ..prompts.promotion import PromotionRefused, promote

    if report.winner is None:
        print(f"\nnot promoted: {report.verdict}")
        return 0
    try:
        outcome = promote(report, alias=args.promote, approver=args.approver,
                          reason=args.reason)
    except PromotionRefused as exc:
        print(f"\nnot promoted: {exc}\n  on the command line, the reason is --reason TEXT")
        return 1
    if outcome.promoted:
        print(f"\npromoted {report.winner} → prompts:/{outcome.name}@{args.promote} "
              f"(version {outcome.version})")
    else:  # a protected alias: the request waits for someone else's approval
        print(f"\nnot promoted yet: {outcome}")
    return 0


def _by_type(results: Results) -> str:
    """`` (RateLimited 7, Timeout 2)``: the failed calls counted by error type."""
    if "error_type" not in results.errors:
        return ""
    counts = results.errors["error_type"].fillna("unknown").value_counts()
    return " (" + ", ".join(f"{kind} {n}" for kind, n in counts.items()) + ")"


def _print_errors(results: Results) -> None:
    """The first distinct error messages with their counts: one cause is usually most."""
    messages = [(str(e).strip().splitlines() or [""])[0] for e in results.errors["error"]]
    if not messages:
        return
    # messages that differ only in numbers (retry-after, token counts) are one cause
    groups: dict[str, list[str]] = {}
    for message in messages:
        groups.setdefault(re.sub(r"\d+", "#", message), []).append(message)
    ranked = sorted(groups.values(), key=len, reverse=True)
    print(f"failed calls: {len(messages)} of {len(results.frame)}{_by_type(results)}")
    for group in ranked[:_SHOWN_ERRORS]:
        print(f"  {len(group):>5} × {group[0][:300]}")
    if len(ranked) > _SHOWN_ERRORS:
        print(f"  ... and {len(ranked) - _SHOWN_ERRORS} other distinct error(s)")
