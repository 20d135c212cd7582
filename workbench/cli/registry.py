"""``workbench promote``: move a prompt alias in MLflow's registry."""

from __future__ import annotations

import argparse
from typing import Any


def register(commands: Any) -> None:
    promote = commands.add_parser("promote", help="point a prompt alias at a version",
                                  description="Move an alias of a registered prompt to a version "
                                              "and record who did it and why.")
    promote.add_argument("name", help="registered prompt name")
    promote.add_argument("--version", type=int, required=True, help="version number")
    promote.add_argument("--alias", default="production", help="alias (default: production)")
    promote.add_argument("--approver", help="name recorded with the promotion")
    promote.add_argument("--reason", help="why; kept with the version's tags")
    promote.set_defaults(handler=_promote)


def _promote(args: argparse.Namespace) -> int:
    from ..registry import promote

    promoted = promote(args.name, args.version, args.alias, approver=args.approver,
                       reason=args.reason)
    print(f"prompts:/{promoted.name}@{args.alias} → version {promoted.version}")
    return 0
