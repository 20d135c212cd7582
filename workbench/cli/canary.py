"""``workbench canary``: the provider-drift canary for cron (exit 0 steady, 1 drift, 2 when
it could not run)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(commands: Any) -> None:
    canary = commands.add_parser(
        "canary", help="detect provider drift: a fixed eval set against the alias's prompt",
        description="Run the first --limit examples of the experiment's regression set "
                    "(gate.regression_set, else its eval set) against the prompt at --alias, "
                    "without the response cache; log the answers to MLflow and compare them "
                    "with the previous canary run of the same prompt and model string. Exit 1 "
                    "when answers or scores changed significantly (an alert is delivered).")
    canary.add_argument("experiment", help="experiment directory (or its experiment.yaml)")
    canary.add_argument("--alias", default="production", help="default: production")
    canary.add_argument("--limit", type=int, default=20, metavar="N",
                        help="examples in the canary set (default: 20)")
    canary.add_argument("--max-changed", type=float, default=0.2, metavar="SHARE",
                        help="drift when more answers than this share changed (default: 0.2)")
    canary.add_argument("--alpha", type=float, default=0.05,
                        help="significance of a score change (default: 0.05)")
    canary.add_argument("--webhook", metavar="URL", help="also POST a drift alert here")
    canary.set_defaults(handler=_canary)


def _canary(args: argparse.Namespace) -> int:
    from ..errors import WorkbenchError
    from ..monitor.canary import canary

    if args.limit < 1 or not 0 <= args.max_changed <= 1 or not 0 < args.alpha < 1:
        raise WorkbenchError("canary: --limit must be >= 1, --max-changed within 0-1 and "
                             "--alpha within (0, 1)")
    try:
        result = canary(args.experiment, alias=args.alias, limit=args.limit,
                        max_changed=args.max_changed, alpha=args.alpha, webhook=args.webhook)
    except WorkbenchError as exc:  # not a drift: cron must tell the two apart
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.to_text())
    return 1 if result.drifted else 0
