"""``workbench run``: the experiment, its summary and comparison, optionally a promotion."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(commands: Any) -> None:
    run = commands.add_parser("run", help="run an experiment's variants over its eval set",
                              description="Run every variant over the eval set, score, print "
                                          "the summary and the paired comparison, log to MLflow.")
    run.add_argument("experiment", help="experiment directory (or its experiment.yaml)")
    run.add_argument("--limit", type=int, metavar="N", help="only the first N examples")
    run.add_argument("--no-cache", action="store_true",
                     help="call the models again even when a cached answer exists")
    run.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    run.add_argument("--log-again", action="store_true",
                     help="log a new MLflow run even when every call is cached and an "
                          "identical run was logged before")
    run.add_argument("--concurrency", type=int, metavar="N", help="calls in flight at once")
    run.add_argument("--workers", type=int, metavar="N",
                     help="processes making calls (default: run.workers, 1)")
    run.add_argument("--refresh", action="append", default=[], metavar="VARIANT",
                     help="call this variant again even when cached (repeatable)")
    run.add_argument("--max-cost", type=float, metavar="USD",
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
    from ..experiment import Experiment
    from ..promotion import PromotionRefused, promote
    from ..results import format_summary

    experiment = Experiment.from_yaml(args.experiment)
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
    report = results.report
    print()
    # the comparison report carries the per-variant summary; print it alone otherwise
    print(report.to_text() if report else format_summary(results.summary(), results.metrics))
    print(f"\ncache hits: {results.cache_hits} of {len(results.frame)} calls; "
          f"errors: {len(results.errors)}")
    for warning in results.warnings:
        if warning != results.log_error:  # said last, where it is seen
            print(f"warning: {warning}")
    if report is None:  # with a report, its caveats already say this
        for variant, why in results.degenerate().items():
            print(f"caveat: {variant} is degenerate: {why}")
    if results.run_ids:
        print(f"\nMLflow ({results.tracking_uri}):")
        print(f"  parent run  {results.run_ids['parent']}")
        for variant, run_id in results.run_ids.items():
            if variant != "parent":
                version = results.prompt_versions.get(variant)
                print(f"  {variant:<11} {run_id}  prompts:/{results.registry_name}/{version}")
    if results.log_error:
        print(f"\n{results.log_error}", file=sys.stderr)
        if args.promote:
            print("not promoted: the run is not in MLflow yet", file=sys.stderr)
        return 1
    if args.promote and results.partial:
        print(f"\nnot promoted: the run is partial ({results.partial}), so it has no verdict")
    if args.promote and report is not None:
        if report.winner is None:
            print(f"\nnot promoted: {report.verdict}")
        else:
            try:
                outcome = promote(report, alias=args.promote, approver=args.approver,
                                  reason=args.reason)
            except PromotionRefused as exc:
                print(f"\nnot promoted: {exc}\n  on the command line, the reason is "
                      "--reason TEXT")
                return 1
            if outcome.promoted:
                print(f"\npromoted {report.winner} → prompts:/{outcome.name}@{args.promote} "
                      f"(version {outcome.version})")
            else:  # a protected alias: the request waits for someone else's approval
                print(f"\nnot promoted yet: {outcome}")
    return 0
