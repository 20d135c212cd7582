"""The Results tab's examples × variants grid on a large run: how long building the grid,
filtering, sorting and rendering one page take, and how big a page is.

    python benchmarks/ui_grid.py --examples 5000 --variants 6 --repeat 7

Synthetic results (no model calls): outputs of 20–60 words, binary scores, 1% errors.
Prints one line per step with the median and the slowest of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

WORDS = ["the", "customer", "is", "satisfied", "dissatisfied", "refund", "order", "invoice",
         "late", "broken", "thanks", "great", "slow", "support", "answer", "label", "positive",
         "negative", "neutral", "because"]


def synthetic(examples: int, variants: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    calls = examples * variants
    lengths = rng.integers(20, 60, calls)
    words = rng.integers(0, len(WORDS), int(lengths.sum()))
    cuts = np.cumsum(lengths)[:-1]
    outputs = [" ".join(WORDS[i] for i in chunk) for chunk in np.split(words, cuts)]
    errored = rng.random(calls) < 0.01
    names = [f"variant_{i}" for i in range(variants)]
    return pd.DataFrame({
        "variant": np.tile(names, examples), "prompt": np.tile(names, examples), "model": "m",
        "example_id": np.repeat([f"ex{i:05d}" for i in range(examples)], variants),
        "repeat": 0, "output": np.where(errored, None, outputs),
        "error": np.where(errored, "RateLimitError: 429 Too Many Requests", None),
        "prompt_tokens": 50, "completion_tokens": lengths, "cost": 0.0, "latency_s": 0.5,
        "cached": False,
        "score.exact_match": np.where(errored, np.nan, rng.integers(0, 2, calls)),
        "reason.exact_match": ""})


def timed(step: str, repeat: int, action: Callable[[], Any]) -> Any:
    seconds, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = action()
        seconds.append(time.perf_counter() - start)
    print(f"{step:<44} median {statistics.median(seconds) * 1000:8.1f} ms   "
          f"max {max(seconds) * 1000:8.1f} ms")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=5000)
    parser.add_argument("--variants", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    from workbench.ui.grid import GridView, grid_rows, grid_table, page_html

    frame = synthetic(args.examples, args.variants)
    kinds = {"exact_match": "binary"}
    print(f"{args.examples} examples × {args.variants} variants = {len(frame)} calls")
    table = timed("grid_table (pivot the results frame)", args.repeat,
                  lambda: grid_table(frame, primary="exact_match", kinds=kinds))
    for which, sort in (("all", "example"), ("regressed", "spread"), ("disagree", "variant_3")):
        rows = timed(f"grid_rows({which}, sort={sort})", args.repeat,
                     lambda w=which, s=sort: grid_rows(table, w, s))
    rows = grid_rows(table, "all")
    html = timed("page_html, 25 rows, raw outputs", args.repeat,
                 lambda: page_html(table, rows[:25]))
    diff = timed("page_html, 25 rows, diff vs baseline", args.repeat,
                 lambda: page_html(table, rows[:25], diff=True))
    grid = GridView()
    timed("GridView.show (counts, sort options, page 1)", args.repeat, lambda: grid.show(table))
    timed("GridView next page", args.repeat, lambda: grid.turn(1))
    timed("GridView filter change (regressed)", args.repeat,
          lambda: setattr(grid.filter, "value", "regressed" if grid.filter.value == "all"
                          else "all"))
    print(f"page size: raw {len(html) / 1024:.0f} KiB, diff {len(diff) / 1024:.0f} KiB; "
          f"all rows at once would be {len(html) / 25 * len(rows) / 1024 / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
