"""The main job on the embedded model: run the bundled A/B experiment, promote, serve.

`make demo` runs this. Everything goes through the public Python API.
"""

from __future__ import annotations

import time
from pathlib import Path

import workbench as wb

EXPERIMENT = Path(__file__).resolve().parent.parent / "experiments" / "support-triage"


def main() -> None:
    started = time.perf_counter()
    exp = wb.Experiment.from_yaml(EXPERIMENT)
    print(f"{exp.name}: {[v.name for v in exp.variants]} on {exp.variants[0].model.model}, "
          f"{len(exp.evalset)} examples\n")

    results = exp.run()
    report = results.report
    print()
    print(report.to_text())
    print(f"\ncalls: {len(results.frame)}, cache hits: {results.cache_hits}, "
          f"errors: {len(results.errors)}")

    print(f"\nMLflow runs ({results.tracking_uri}):")
    for name, run_id in results.run_ids.items():
        version = results.prompt_versions.get(name)
        where = f"  prompts:/{results.registry_name}/{version}" if version else ""
        print(f"  {name:<8} {run_id}{where}")

    alias = "production"
    if not report.winner:
        print(f"\nnot promoted ({report.verdict}); nothing to serve")
        return
    outcome = wb.promote(report, alias=alias, approver="make demo")
    if not outcome.promoted:
        # a store with an approval policy: the request waits for a second person
        print(f"\n{outcome}")
        return
    print(f"\npromoted {report.winner!r}: prompts:/{outcome.name}@{alias} "
          f"-> version {outcome.version}")

    service = wb.PromptService(results.registry_name, alias=alias)
    example = exp.evalset.examples[0]
    reply = service.complete(ticket=example.inputs["ticket"])
    print(f"\nserving prompts:/{reply.prompt}@{alias} (version {reply.version}, {reply.model})")
    print(f"  ticket:   {example.inputs['ticket']}")
    print(f"  answer:   {reply.text!r}   (expected {example.inputs['label']!r})")
    print(f"  tokens:   {reply.prompt_tokens} in / {reply.completion_tokens} out, "
          f"{reply.latency_s:.2f} s")
    print(f"\ndone in {time.perf_counter() - started:.1f} s. `make ui` opens the MLflow UI.")


if __name__ == "__main__":
    main()
