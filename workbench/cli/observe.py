"""``workbench observe``: usage and latency from the ledger, every alert of a window (for
cron: anomalies found now, quality, canary and query-drift alerts as they fired) and savings
advice."""

from __future__ import annotations

import argparse
from typing import Any


def register(commands: Any) -> None:
    observe = commands.add_parser(
        "observe", help="token usage, cost, latency and anomaly alerts from the usage ledger",
        description="Read the project's usage ledger (.workbench/usage.sqlite, or "
                    "$WORKBENCH_LEDGER_URL): every served request and experiment call.")
    actions = observe.add_subparsers(dest="action", metavar="ACTION", required=True)
    report = actions.add_parser("report", help="tokens, cost and calls per group; latency "
                                               "percentiles per step")
    report.add_argument("--since", default="7d", help="window, e.g. 24h, 7d (default: 7d)")
    report.add_argument("--by", default="application,request_type",
                        help="comma-separated columns (default: application,request_type)")
    report.set_defaults(handler=_report)
    alerts = actions.add_parser("alerts", help="check for anomalies, deliver new ones once; "
                                               "list them with the monitor's and RAG's alerts")
    alerts.add_argument("--since", default="24h", help="alerts ending within (default: 24h)")
    alerts.add_argument("--history", default="28d",
                        help="the baseline before the window (default: 28d)")
    alerts.add_argument("--webhook", metavar="URL", help="POST new alerts here as JSON")
    alerts.add_argument("--slo", action="append", default=[], metavar="STEP=SECONDS",
                        help="p95 latency objective of a step, e.g. call=2.5 (repeatable)")
    alerts.set_defaults(handler=_alerts)
    advice = actions.add_parser("recommend", help="savings advice with projected monthly "
                                                  "savings (cache, caps, downgrades)")
    advice.add_argument("--since", default="30d", help="traffic to judge by (default: 30d)")
    advice.set_defaults(handler=_recommend)


def _report(args: argparse.Namespace) -> int:
    from ..observe import default_ledger, queries

    ledger = default_ledger()
    store = ledger.store()
    by = [name.strip() for name in args.by.split(",") if name.strip()]
    usage = queries.usage(store, args.since, by)
    print(f"usage since {args.since} ({ledger.url})")
    print(usage.to_string(index=False) if len(usage) else "no calls in the window")
    latency = queries.latency(store, args.since, "step")
    if len(latency):
        print("\nlatency (seconds)")
        print(latency.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    lost = queries.lost(store, args.since)
    if lost:
        print(f"\n{lost} record(s) were lost in the window (queue full or store down)")
    return 0


def _alerts(args: argparse.Namespace) -> int:
    from ..errors import WorkbenchError
    from ..observe import alerts
    from ..observe.anomalies import Thresholds

    slo = {}
    for item in args.slo:
        step, sep, value = item.partition("=")
        try:
            slo[step] = float(value)
        except ValueError:
            sep = ""
        if not sep or not step:
            raise WorkbenchError(f"--slo {item!r}: write STEP=SECONDS, e.g. call=2.5")
    table = alerts(args.since, history=args.history, webhook=args.webhook,
                   thresholds=Thresholds(slo=slo))
    if not len(table):
        print(f"no alerts in the last {args.since}")
        return 0
    for row in table.itertuples():
        print(("NEW  " if row.new else "     ") + row.message)
    print(f"\n{int(table['new'].sum())} new, {int((~table['new']).sum())} delivered before")
    return 0


def _recommend(args: argparse.Namespace) -> int:
    from ..observe import default_ledger, savings

    found = savings.recommend(default_ledger().store(), args.since)
    if not found:
        print(f"no savings advice from the last {args.since}")
        return 0
    for r in found:
        print(f"${r.monthly_savings_usd:,.2f}/month  {r.kind}  {r.key}\n    {r.detail}")
    return 0
