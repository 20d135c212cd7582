"""What the guards add to a served request: the scans of a 2 KB output and of the inputs.

    .venv/bin/python benchmarks/serving_guards.py --repeats 2000

Times ``Guard.scan_output`` and ``Guard.scan_inputs`` in-process (the guards run no I/O),
on a clean 2 KB support answer and on the same answer with an e-mail address, a card
number and a phone number in it; prints a Markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time

from workbench.serving.guards import Guard

SENTENCE = ("Thanks for reaching out about your order. We have checked the shipment and the "
            "parcel left our warehouse on Monday; the carrier expects to deliver it by Friday. ")
CLEAN = (SENTENCE * 20)[:2048]
PII = ("Write to alice.smith@example.com or call +44 20 7946 0958; the card "
       "4111 1111 1111 1111 was refunded. ")
WITH_PII = (PII + CLEAN)[:2048]
POLICIES = {"log": {"pii": "log", "prompt_injection": "log"},
            "redact": {"pii": "redact", "prompt_injection": "log"}}


def timings(fn, repeats: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    samples.sort()
    return statistics.median(samples) * 1e3, samples[int(0.99 * len(samples))] * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2000)
    args = parser.parse_args()
    print("| policy | scanned | text | p50 | p99 |\n|---|---|---|---|---|")
    for name, policy in POLICIES.items():
        guard = Guard(policy)
        for label, text in (("clean", CLEAN), ("with PII", WITH_PII)):
            timings(functools.partial(guard.scan_output, text), 50)  # warm the regex caches
            p50, p99 = timings(functools.partial(guard.scan_output, text), args.repeats)
            print(f"| {name} | output, {len(text)} B | {label} | {p50:.3f} ms | {p99:.3f} ms |")
        variables = {"ticket": WITH_PII[:500], "customer": "Alice"}
        p50, p99 = timings(functools.partial(guard.scan_inputs, variables), args.repeats)
        print(f"| {name} | inputs, 500 B | with PII | {p50:.3f} ms | {p99:.3f} ms |")


if __name__ == "__main__":
    main()
