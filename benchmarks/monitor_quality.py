"""The quality alert on a simulated month: false alarms without a change, delay after a drop.

    .venv/bin/python benchmarks/monitor_quality.py --runs 1000

Arrival times are the helpdesk application of ``workbench/observe/simulate.py`` (the
demo traffic of the observability benchmarks); scores pass with the offline estimate of
the bundled experiment (0.81) and, after a change at a random time, with 0.71. Prints a
Markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import time

from workbench.monitor.simulate import arrivals, run

CASES = [("helpdesk triage, every request scored", "triage", 1.0),
         ("helpdesk triage, half scored", "triage", 0.5),
         ("helpdesk, every request scored", None, 1.0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--drop", type=float, default=0.10)
    args = parser.parse_args()
    print("| traffic | scored/day | false alarms in a month (naive peeking) | detected "
          "| within 24 h | delay p50 | delay p90 | seconds |\n|---|---|---|---|---|---|---|---|")
    for label, request_type, sample in CASES:
        started = time.perf_counter()
        times = arrivals(request_type=request_type, sample=sample)
        r = run(times, runs=args.runs, drop=args.drop)
        took = time.perf_counter() - started
        print(f"| {label} | {r.scored_per_day:.0f} | {r.false_alarm_rate:.1%} "
              f"({r.naive_false_alarm_rate:.0%}) | "
              f"{r.detected:.1%} | {r.within_a_day:.1%} | {r.delay_h_median:.1f} h | "
              f"{r.delay_h_p90:.1f} h | {took:.0f} |")


if __name__ == "__main__":
    main()
