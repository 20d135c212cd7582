"""``workbench check``: the regression gate as a CI step (exit 0 pass, 1 regression)."""

from __future__ import annotations

import argparse
from typing import Any

from .run import _at_least_one, _dollars


def register(commands: Any) -> None:
    check = commands.add_parser(
        "check", help="fail when a candidate prompt regresses against the one at an alias",
        description="Run the candidate variant and the prompt at --baseline on the "
                    "experiment's regression set (gate.regression_set, else its eval set). "
                    "Exit 1 when the primary metric or a guardrail gets significantly worse, "
                    "a gate threshold is missed, too many calls fail, or the check stops at "
                    "--max-cost. Nothing is sent when a call is over its context window or "
                    "the estimate is over --max-cost.")
    check.add_argument("experiment", help="experiment directory (or its experiment.yaml)")
    check.add_argument("--baseline", default="production", metavar="ALIAS",
                       help="registry alias of the prompt to beat (default: production)")
    check.add_argument("--candidate", metavar="VARIANT",
                       help="variant to check (default: the one that is not `baseline:`)")
    check.add_argument("--limit", type=int, metavar="N", help="only the first N examples")
    check.add_argument("--no-cache", action="store_true",
                       help="call the models again even when a cached answer exists")
    check.add_argument("--max-cost", type=_dollars, metavar="USD",
                       help="refuse to start above this estimated cost, stop (and fail) "
                            "once it is spent (default: run.max_cost)")
    check.add_argument("--workers", type=_at_least_one, metavar="N",
                       help="make the calls from N worker processes (default: run.workers)")
    check.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    from ..evaluation.gate import check

    result = check(args.experiment, baseline=args.baseline, candidate=args.candidate,
                   limit=args.limit, use_cache=not args.no_cache, progress=True,
                   max_cost=args.max_cost, workers=args.workers)
    print(result.to_text())
    return 0 if result.passed else 1
