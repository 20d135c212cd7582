"""``workbench``: run experiments and promote prompts from a terminal or a CI job.

A thin layer: every command calls the Python API and prints what it returns.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__  # noqa: F401  (importing the package sets offline defaults)
from .errors import WorkbenchError

EPILOG = """examples:
  workbench run experiments/support-triage
  workbench run experiments/support-triage --limit 20 --no-track
  workbench promote support-triage --version 2 --alias production --approver alice
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return args.handler(args)
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: finished calls are cached; run the same command to resume",
              file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench",
        description="Compare prompt and model variants on an eval set, log to MLflow, "
                    "promote the winner in MLflow's prompt registry.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")

    run = commands.add_parser("run", help="run an experiment's variants over its eval set",
                              description="Run every variant over the eval set, score, print "
                                          "the summary and the paired comparison, log to MLflow.")
    run.add_argument("experiment", help="experiment directory (or its experiment.yaml)")
    run.add_argument("--limit", type=int, metavar="N", help="only the first N examples")
    run.add_argument("--no-cache", action="store_true",
                     help="call the models again even when a cached answer exists")
    run.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    run.add_argument("--concurrency", type=int, metavar="N", help="calls in flight at once")
    run.add_argument("--promote", metavar="ALIAS",
                     help="move ALIAS to the winning variant when the verdict says it is better")
    run.add_argument("--approver", help="name recorded with a promotion (default: your user)")
    run.set_defaults(handler=_run)

    promote = commands.add_parser("promote", help="point a prompt alias at a version",
                                  description="Move an alias of a registered prompt to a version "
                                              "and record who did it and why.")
    promote.add_argument("name", help="registered prompt name")
    promote.add_argument("--version", type=int, required=True, help="version number")
    promote.add_argument("--alias", default="production", help="alias (default: production)")
    promote.add_argument("--approver", help="name recorded with the promotion")
    promote.add_argument("--reason", help="why; kept with the version's tags")
    promote.set_defaults(handler=_promote)
    return parser


def _run(args: argparse.Namespace) -> int:
    from .experiment import Experiment
    from .promotion import promote
    from .results import format_summary

    experiment = Experiment.from_yaml(args.experiment)
    print(f"{experiment.name}: {len(experiment.variants)} variants × "
          f"{min(args.limit or len(experiment.evalset), len(experiment.evalset))} examples × "
          f"{experiment.spec.run.repeats} repeat(s)")
    results = experiment.run(limit=args.limit, use_cache=not args.no_cache,
                             track=not args.no_track, concurrency=args.concurrency)
    print()
    print(format_summary(results.summary(), results.metrics))
    print(f"\ncache hits: {results.cache_hits} of {len(results.frame)} calls; "
          f"errors: {len(results.errors)}")
    if len(results.variants) >= 2:
        report = results.compare()
        print()
        print(report.to_text())
    else:
        report = None
    if results.run_ids:
        print(f"\nMLflow ({results.tracking_uri}):")
        print(f"  parent run  {results.run_ids['parent']}")
        for variant, run_id in results.run_ids.items():
            if variant != "parent":
                version = results.prompt_versions.get(variant)
                print(f"  {variant:<11} {run_id}  prompts:/{results.registry_name}/{version}")
    if args.promote and report is not None:
        if report.winner is None:
            print(f"\nnot promoted: {report.verdict}")
        else:
            promoted = promote(results, report, alias=args.promote, approver=args.approver)
            print(f"\npromoted {report.winner} → prompts:/{promoted.name}@{args.promote} "
                  f"(version {promoted.version})")
    return 0


def _promote(args: argparse.Namespace) -> int:
    from .registry import promote

    promoted = promote(args.name, args.version, args.alias, approver=args.approver,
                       reason=args.reason)
    print(f"prompts:/{promoted.name}@{args.alias} → version {promoted.version}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
