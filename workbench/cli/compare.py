"""``workbench compare``: the A/B report of a logged execution, as text."""

from __future__ import annotations

import argparse
from typing import Any


def register(commands: Any) -> None:
    compare = commands.add_parser(
        "compare", help="the paired comparison of the variants of a logged run",
        description="Recompute the A/B report from a run's per-example table in MLflow: "
                    "paired tests, confidence intervals, correction, verdict.")
    compare.add_argument("run", help="MLflow run id (the parent run, or one variant's run)")
    compare.add_argument("variants", nargs="*", metavar="VARIANT",
                         help="A and B (default: every variant against the baseline)")
    compare.add_argument("--correction", choices=["holm", "bh", "none"], default="holm",
                         help="multiple-comparison correction (default: holm)")
    compare.add_argument("--alpha", type=float, default=0.05, help="significance level")
    compare.add_argument("--guardrail", action="append", default=[], metavar="METRIC",
                         help="a metric that must not get significantly worse (repeatable)")
    compare.add_argument("--non-inferiority", type=float, metavar="DELTA",
                         help="also test that B is no worse than A by more than DELTA")
    compare.set_defaults(handler=_compare)


def _compare(args: argparse.Namespace) -> int:
    from ..errors import WorkbenchError
    from ..tracking import load_results

    if len(args.variants) not in (0, 2):
        raise WorkbenchError("name two variants (A then B), or none to compare every variant "
                             "with the baseline")
    results = load_results(args.run)
    a, b = args.variants or (None, None)
    try:
        report = results.compare(a, b, correction=args.correction, alpha=args.alpha,
                                 guardrails=tuple(args.guardrail),
                                 non_inferiority_margin=args.non_inferiority)
    except ValueError as exc:  # unknown variant or metric, said in words by stats
        raise WorkbenchError(str(exc)) from exc
    print(report.to_text())
    return 0
