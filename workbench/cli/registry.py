"""``workbench promote / request / approve / reject / rollback / history``: the registry.

Every command moves or records through ``workbench.prompts.registry``, so what the terminal does
is what a notebook does, under the same project policy (``workbench.yaml``).
"""

from __future__ import annotations

import argparse
from typing import Any


def register(commands: Any) -> None:
    promote = commands.add_parser(
        "promote", help="point a prompt alias at a version (or request it, if protected)",
        description="Move an alias of a registered prompt to a version and record who did it "
                    "and why. A protected alias (production, on a shared store) records a "
                    "request instead, for someone else to approve.")
    _version_args(promote)
    promote.add_argument("--approver", help="who is acting (default: your user)")
    promote.add_argument("--reason", help="why; kept with the version's tags")
    promote.set_defaults(handler=_promote)

    request = commands.add_parser("request", help="ask for a protected alias to move",
                                  description="Record a promotion request; someone else "
                                              "approves it with `workbench approve`.")
    _version_args(request)
    request.add_argument("--requester", help="who asks (default: your user)")
    request.add_argument("--reason", help="why this version")
    request.add_argument("--run-id", help="the MLflow run with the evidence (A/B report)")
    request.add_argument("--verdict", help="the comparison's verdict, in a sentence")
    request.set_defaults(handler=_request)

    for verb, handler, what in (("approve", _approve, "approve the pending request and move "
                                 "the alias"),
                                ("reject", _reject, "turn down the pending request")):
        parser = commands.add_parser(verb, help=what, description=what.capitalize() + ".")
        parser.add_argument("name", help="registered prompt name")
        parser.add_argument("--alias", default="production", help="alias (default: production)")
        parser.add_argument("--version", type=int,
                            help="which request, when several are pending for the alias")
        parser.add_argument("--approver", help="who decides (default: your user)")
        parser.add_argument("--reason", required=verb == "reject", help="why")
        parser.set_defaults(handler=handler)

    rollback = commands.add_parser("rollback", help="return an alias to its previous version",
                                   description="Move the alias back to the version it held "
                                               "before the current one, in one recorded step.")
    rollback.add_argument("name", help="registered prompt name")
    rollback.add_argument("--alias", default="production", help="alias (default: production)")
    rollback.add_argument("--actor", help="who rolls back (default: your user)")
    rollback.add_argument("--reason", help="what went wrong")
    rollback.set_defaults(handler=_rollback)

    history = commands.add_parser("history", help="the audit log of a prompt's aliases",
                                  description="Every request, approval, rejection, promotion "
                                              "and rollback, oldest first.")
    history.add_argument("name", help="registered prompt name")
    history.add_argument("--alias", help="only this alias")
    history.set_defaults(handler=_history)


def _version_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="registered prompt name")
    parser.add_argument("--version", type=int, required=True, help="version number")
    parser.add_argument("--alias", default="production", help="alias (default: production)")


def _promote(args: argparse.Namespace) -> int:
    from ..prompts.registry import promote_or_request

    outcome = promote_or_request(args.name, args.version, args.alias, actor=args.approver,
                                 reason=args.reason)
    if outcome.promoted:
        print(f"prompts:/{outcome.name}@{args.alias} → version {outcome.version}")
    else:
        print(f"not promoted yet: {outcome}")
    return 0


def _request(args: argparse.Namespace) -> int:
    from ..prompts.registry import request_promotion

    evidence = {k: v for k, v in (("run_id", args.run_id), ("verdict", args.verdict)) if v}
    print(request_promotion(args.name, args.version, args.alias, requester=args.requester,
                            reason=args.reason, evidence=evidence))
    return 0


def _approve(args: argparse.Namespace) -> int:
    from ..prompts.registry import approve

    promoted = approve(args.name, args.alias, approver=args.approver, version=args.version,
                       reason=args.reason)
    print(f"approved: prompts:/{promoted.name}@{args.alias} → version {promoted.version}")
    return 0


def _reject(args: argparse.Namespace) -> int:
    from ..prompts.registry import reject

    rejected = reject(args.name, args.alias, approver=args.approver, version=args.version,
                      reason=args.reason)
    print(f"rejected: {rejected.uri} → @{args.alias} ({args.reason})")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from ..prompts.registry import rollback

    restored = rollback(args.name, args.alias, actor=args.actor, reason=args.reason)
    print(f"rolled back: prompts:/{restored.name}@{args.alias} → version {restored.version}")
    return 0


def _history(args: argparse.Namespace) -> int:
    from ..prompts.registry import history

    frame = history(args.name)
    if args.alias:
        frame = frame[frame["alias"] == args.alias]
    if frame.empty:
        print(f"no recorded promotions for {args.name}")
        return 0
    shown = frame.assign(at=frame["at"].dt.strftime("%Y-%m-%d %H:%M:%S"),
                         evidence=frame["evidence"].map(
                             lambda e: ", ".join(f"{k}={v}" for k, v in e.items())[:80]))
    print(shown.to_string(index=False))
    return 0
