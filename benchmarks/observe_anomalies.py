"""Anomaly detection on simulated months: precision, recall and false alerts per week.

    .venv/bin/python benchmarks/observe_anomalies.py [--seeds 20] [--days 28]

Each seed is a month of traffic over four applications with daily and weekly cycles and
the five injected incidents of ``workbench/observe/simulate.py``; detection uses the
default thresholds plus a 0.5 s p95 SLO on the retrieval step.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workbench.observe.anomalies import Thresholds, detect  # noqa: E402
from workbench.observe.simulate import score, simulate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--days", type=int, default=28)
    args = parser.parse_args()
    thresholds = Thresholds(slo={"retrieve": 0.5})
    totals: Counter[str] = Counter()
    worst_precision, worst_recall, worst_false = 1.0, 1.0, 0.0
    for seed in range(1, args.seeds + 1):
        sim = simulate(days=args.days, seed=seed)
        started = time.perf_counter()
        alerts = detect(sim.calls, sim.steps, thresholds=thresholds)
        elapsed = time.perf_counter() - started
        result = score(alerts, sim)
        totals.update(alerts=result.alerts, true=result.true_alerts,
                      found=result.incidents_found, incidents=result.incidents,
                      false=result.alerts - result.true_alerts)
        worst_precision = min(worst_precision, result.precision)
        worst_recall = min(worst_recall, result.recall)
        worst_false = max(worst_false, result.false_per_week)
        print(f"seed {seed}: {len(sim.calls):,} calls, detect {elapsed:.2f} s, "
              f"precision {result.precision:.3f}, recall {result.recall:.3f}, "
              f"false alerts/week {result.false_per_week:.2f}")
    weeks = args.seeds * args.days / 7
    print(f"all: precision {totals['true'] / totals['alerts']:.3f} "
          f"({totals['true']}/{totals['alerts']}), recall "
          f"{totals['found'] / totals['incidents']:.3f} ({totals['found']}/"
          f"{totals['incidents']}), false alerts/week {totals['false'] / weeks:.3f}; worst "
          f"seed: precision {worst_precision:.3f}, recall {worst_recall:.3f}, "
          f"false/week {worst_false:.2f}")


if __name__ == "__main__":
    main()
