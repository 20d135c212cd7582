"""``workbench``: run experiments and promote prompts from a terminal or a CI job.

A thin layer: every command calls the Python API and prints what it returns. Each command
group lives in its own module and adds its sub-parser through ``register(commands)``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import WorkbenchError
from . import canary, check, compare, observe, rag, registry, run, serve

EPILOG = """examples:
  workbench run experiments/support-triage
  workbench run experiments/support-triage --limit 20 --no-track
  workbench promote support-triage --version 2 --alias production --approver alice
  workbench compare <run id> bare guided --correction bh
  workbench check experiments/support-triage --baseline production
  workbench approve support-triage --alias production --approver bob
  workbench rollback support-triage --alias production
  workbench serve support-triage@production --port 8000
  workbench observe report --since 7d
  workbench observe alerts --webhook http://127.0.0.1:9000/alerts
  workbench canary experiments/support-triage --alias production
  workbench rag build experiments/kb-answer
  workbench rag status kb-bm25
"""

COMMAND_GROUPS = [run, compare, registry, check, serve, observe, canary, rag]


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
    parser.add_argument("--version", action="version", version=f"workbench {__version__}")
    commands = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(commands)
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
