"""End to end, as a user runs it: ``workbench run`` against ``promptfoo eval``, same calls.

    .venv/bin/python benchmarks/e2e_promptfoo.py                 # 3 rounds, prints a table
    .venv/bin/python benchmarks/e2e_promptfoo.py --write         # also update RESULTS.md
    .venv/bin/python benchmarks/e2e_promptfoo.py --untracked     # and `--no-track` (no MLflow)

Each arm is a process started from the shell's point of view and timed until it exits:
imports, opening (or creating) the store, 2,000 calls (4 prompts x 500 rows) at concurrency
50 against the loopback OpenAI-compatible server answering after 100 ms, scoring (exact
match and contains, as promptfoo's ``equals`` and ``icontains``) and writing the results
(the workbench to MLflow's SQLite store, promptfoo to its own SQLite database).

- *fresh store*: a new project folder (workbench: ``WORKBENCH_HOME``, so a new MLflow store
  and response cache) and a new ``PROMPTFOO_CONFIG_DIR``, every time;
- *existing store*: the same folders every round, made by a warm-up run of each tool;
  ``workbench run --no-cache`` and ``promptfoo eval --no-cache`` make every call again.

Arms alternate, in reverse order every other round; the figures are medians of the rounds
and the ratio is workbench calls/s over promptfoo calls/s in the same round. After every
arm the server's request count must equal the planned calls and a digest of what it was
asked (model and messages) must equal the first arm's: both tools made the same calls and
neither answered from a cache. promptfoo is installed with npm under
``benchmarks/.cache/promptfoo`` (git-ignored) on first use.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loopback import LoopbackServer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS_MD = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## End to end: `workbench run` vs promptfoo"
PROMPTFOO_VERSION = "0.121.20"
PROMPTFOO_DIR = Path(__file__).resolve().parent / ".cache" / "promptfoo"
TARGET = 1.2  # workbench calls/s over promptfoo's, end to end

TICKETS = [
    ("I love the new dashboard", "positive"), ("I want a refund for order", "negative"),
    ("The parcel arrived broken", "negative"), ("Great support, thank you", "positive"),
    ("Delivery was late again", "negative"), ("Works exactly as described", "positive"),
    ("Nobody answers my emails", "negative"), ("Fast and friendly service", "positive"),
]
PROMPTS: dict[str, list[dict[str, str]]] = {
    "bare": [{"role": "user", "content": "Sentiment of: {{ticket}}"}],
    "guided": [{"role": "system", "content": "Answer with one word: positive or negative."},
               {"role": "user", "content": "{{ticket}}"}],
    "question": [{"role": "user", "content": "Is this customer satisfied? Answer positive "
                                             "or negative.\n\n{{ticket}}"}],
    "fewshot": [{"role": "system", "content": "Classify the sentiment of a support ticket."},
                {"role": "user", "content": "Thanks, all sorted!"},
                {"role": "assistant", "content": "positive"},
                {"role": "user", "content": "Still waiting for my money back."},
                {"role": "assistant", "content": "negative"},
                {"role": "user", "content": "{{ticket}}"}],
}


def rows(n: int) -> list[dict[str, str]]:
    return [{"id": f"t{i:04d}", "ticket": f"{TICKETS[i % 8][0]} (order {1000 + i})",
             "label": TICKETS[i % 8][1]} for i in range(n)]


def write_workbench(folder: Path, base_url: str, examples: int, concurrency: int) -> Path:
    import yaml

    (folder / "data").mkdir(parents=True)
    (folder / "prompts").mkdir()
    (folder / "data" / "tickets.jsonl").write_text(
        "".join(json.dumps(row) + "\n" for row in rows(examples)))
    for name, messages in PROMPTS.items():
        (folder / "prompts" / f"{name}.yaml").write_text(yaml.safe_dump({"messages": messages}))
    spec = {
        "name": "e2e",
        "eval_set": {"path": "data/tickets.jsonl"},
        "prompts": {name: f"prompts/{name}.yaml" for name in PROMPTS},
        "models": {"loopback": {"model": "openai/test-model", "api_base": base_url,
                                "api_key_env": "LOOPBACK_API_KEY",
                                "params": {"temperature": 0, "max_tokens": 8},
                                "num_retries": 0}},
        "scorers": [{"type": "exact_match", "expected": "label"},
                    {"type": "contains", "expected": "label"}],
        "primary_metric": "exact_match",
        "run": {"concurrency": concurrency},
    }
    (folder / "experiment.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder


def write_promptfoo(folder: Path, base_url: str, examples: int) -> Path:
    import yaml

    folder.mkdir(parents=True)
    for name, messages in PROMPTS.items():
        (folder / f"{name}.json").write_text(json.dumps(messages))
    (folder / "tests.jsonl").write_text("".join(
        json.dumps({"vars": {"ticket": row["ticket"], "label": row["label"]}}) + "\n"
        for row in rows(examples)))
    config = {
        "description": "e2e",
        "prompts": [{"id": f"file://{name}.json", "label": name} for name in PROMPTS],
        "providers": [{"id": "openai:chat:test-model",
                       "config": {"apiBaseUrl": base_url, "apiKey": "sk-loopback",
                                  "temperature": 0, "max_tokens": 8}}],
        "defaultTest": {"assert": [{"type": "equals", "value": "{{label}}"},
                                   {"type": "icontains", "value": "{{label}}"}]},
        "tests": "file://tests.jsonl",
    }
    (folder / "promptfooconfig.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


def promptfoo_bin() -> Path:
    binary = PROMPTFOO_DIR / "node_modules" / ".bin" / "promptfoo"
    if not binary.exists():
        PROMPTFOO_DIR.mkdir(parents=True, exist_ok=True)
        print(f"installing promptfoo {PROMPTFOO_VERSION} into {PROMPTFOO_DIR} ...", flush=True)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix",
                        str(PROMPTFOO_DIR), f"promptfoo@{PROMPTFOO_VERSION}"], check=True,
                       stdout=subprocess.DEVNULL)
    return binary


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path, server: LoopbackServer) -> None:
        self.args, self.work, self.server = args, work, server
        self.calls = 4 * args.examples
        self.experiment = write_workbench(work / "experiment", server.base_url, args.examples,
                                          args.concurrency)
        self.config = write_promptfoo(work / "promptfoo", server.base_url, args.examples)
        self.promptfoo = promptfoo_bin()
        self.digest = ""
        self.fresh = 0
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "PROMPTFOO_DISABLE_TELEMETRY": "1",
                    "PROMPTFOO_DISABLE_UPDATE": "1", "PROMPTFOO_FAILED_TEST_EXIT_CODE": "0",
                    # its log files: under load, closing them at exit crashed ("write after end")
                    "PROMPTFOO_DISABLE_DEBUG_LOG": "1", "PROMPTFOO_DISABLE_ERROR_LOG": "1",
                    "NODE_NO_WARNINGS": "1", "LOOPBACK_API_KEY": "sk-loopback"}
        self.env.pop("MLFLOW_TRACKING_URI", None)

    def home(self, arm: str) -> Path:
        """The arm's store folder: new for a fresh arm, the warm-up's for an existing one."""
        if arm.endswith("existing"):
            return self.work / f"{arm}-home"
        self.fresh += 1
        return self.work / f"{arm}-{self.fresh}"

    def command(self, arm: str, home: Path) -> tuple[list[str], dict[str, str]]:
        if arm.startswith("workbench"):
            untracked = ["--no-track"] if arm.endswith("untracked") else []
            return ([sys.executable, "-m", "workbench", "run", str(self.experiment),
                     "--no-cache", *untracked], {**self.env, "WORKBENCH_HOME": str(home)})
        return ([str(self.promptfoo), "eval", "-c", str(self.config / "promptfooconfig.yaml"),
                 "-j", str(self.args.concurrency), "--no-cache", "--no-progress-bar",
                 "--no-table"], {**self.env, "PROMPTFOO_CONFIG_DIR": str(home)})

    def run(self, arm: str) -> dict[str, Any]:
        home = self.home(arm)
        home.mkdir(exist_ok=True)
        command, env = self.command(arm, home)
        self.server.reset()
        cpu_before = _children_cpu()
        started = time.perf_counter()
        done = subprocess.run(command, env=env, cwd=self.work, capture_output=True, text=True)
        wall = time.perf_counter() - started
        cpu = _children_cpu() - cpu_before  # the process and every child it waited for
        if done.returncode != 0:
            raise SystemExit(f"{arm} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        count, digest = self.server.count(), self.server.digest()
        if count != self.calls:
            raise SystemExit(f"{arm}: the server saw {count} calls, expected {self.calls}")
        self.digest = self.digest or digest
        if digest != self.digest:
            raise SystemExit(f"{arm}: the server was asked other calls than by the first arm")
        passed = self.passed(arm, home, done.stdout)
        return {"arm": arm, "wall": wall, "calls": count, "passed": passed,
                "calls_per_s": count / wall, "s_per_1000": wall / count * 1000, "cpu": cpu}

    def passed(self, arm: str, home: Path, stdout: str) -> int:
        """Rows that passed exact match: the same answers must score the same in both."""
        if arm.startswith("promptfoo"):
            found = re.search(r"([\d,]+) passed", stdout)
            return int(found.group(1).replace(",", "")) if found else -1
        if not arm.endswith("untracked"):  # untracked: nothing in MLflow to check
            self._check_parent_run(arm, home, stdout)
        # "Per variant" lines: name, n, calls, errors (share), exact_match mean [CI], ...
        matched = re.findall(r"^\s+\w+\s+(\d+)\s+\d+\s+\d+ \([\d.]+%\)\s+([\d.]+) \[",
                             stdout, re.M)
        return round(sum(int(n) * float(mean) for n, mean in matched)) if matched else -1

    def _check_parent_run(self, arm: str, home: Path, stdout: str) -> None:
        with sqlite3.connect(home / "mlruns" / "mlflow.db") as db:
            status = db.execute("select status from runs where run_uuid = ?",
                                (re.search(r"parent run\s+(\w+)", stdout).group(1),)).fetchone()
            if status != ("FINISHED",):
                raise SystemExit(f"{arm}: the MLflow parent run is {status}, not FINISHED")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    arms = ["workbench fresh", "promptfoo fresh", "workbench existing", "promptfoo existing"]
    if args.untracked:  # the same run without MLflow: how much of the time MLflow takes
        arms.append("workbench untracked")
    work = Path(tempfile.mkdtemp(prefix="workbench-e2e-"))
    deadline = time.monotonic() + args.budget
    results: list[list[dict[str, Any]]] = []
    try:
        with LoopbackServer(latency=args.latency) as server:
            bench = Bench(args, work, server)
            for arm in ("workbench existing", "promptfoo existing"):  # the stores they reuse
                print(f"warm-up: {arm}: {bench.run(arm)['wall']:.1f} s", flush=True)
            for round_ in range(args.rounds):
                if round_ and time.monotonic() > deadline:
                    print(f"time budget reached after {round_} round(s)")
                    break
                measured = {}
                for arm in arms if round_ % 2 == 0 else arms[::-1]:
                    one = measured[arm] = bench.run(arm)
                    print(f"round {round_ + 1}: {arm:<19} {one['wall']:6.1f} s "
                          f"{one['calls_per_s']:6.1f} calls/s, CPU {one['cpu']:5.1f} s "
                          f"(exact match passed {one['passed']})", flush=True)
                results.append([measured[arm] for arm in arms])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"rounds": results, "arms": arms, "calls": 4 * args.examples,
            "load": os.getloadavg()}


def summary(data: dict[str, Any]) -> list[str]:
    rounds, arms = data["rounds"], data["arms"]
    lines = ["| arm | s per 1,000 calls | calls/s | CPU s (user+sys) | wall of each round |",
             "|---|---|---|---|---|"]
    for i, arm in enumerate(arms):
        per_1000 = statistics.median(r[i]["s_per_1000"] for r in rounds)
        rate = statistics.median(r[i]["calls_per_s"] for r in rounds)
        cpu = statistics.median(r[i]["cpu"] for r in rounds)
        lines.append(f"| {arm} | {per_1000:.2f} s | {rate:.1f} | {cpu:.1f} | "
                     + ", ".join(f"{r[i]['wall']:.1f} s" for r in rounds) + " |")
    lines.append("")
    for store, (wb, pf) in (("fresh", (0, 1)), ("existing", (2, 3))):
        ratios = [r[wb]["calls_per_s"] / r[pf]["calls_per_s"] for r in rounds]
        ok = statistics.median(ratios) >= TARGET
        lines.append(textwrap.fill(
            f"- {store} store: workbench / promptfoo calls/s = "
            f"**{statistics.median(ratios):.2f}x** (rounds: "
            + ", ".join(f"{x:.2f}" for x in ratios)
            + f"); target >= {TARGET}x: **{'met' if ok else 'missed'}**",
            width=92, subsequent_indent="  "))
    if "workbench untracked" in arms:
        wb, pf = arms.index("workbench untracked"), arms.index("promptfoo existing")
        ratios = [r[wb]["calls_per_s"] / r[pf]["calls_per_s"] for r in rounds]
        lines.append(textwrap.fill(
            "- without MLflow (`--no-track`): workbench / promptfoo (existing store) calls/s = "
            f"**{statistics.median(ratios):.2f}x** (rounds: "
            + ", ".join(f"{x:.2f}" for x in ratios) + ")", width=92, subsequent_indent="  "))
    return lines


def write_results(lines: list[str], args: argparse.Namespace, data: dict[str, Any]) -> None:
    flags = f"--rounds {args.rounds}" + (" --untracked" if args.untracked else "")
    intro = (f"`.venv/bin/python benchmarks/e2e_promptfoo.py {flags}` (last run "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}), promptfoo "
             f"{PROMPTFOO_VERSION} on node {_node_version()}, {data['calls']:,} calls per arm "
             f"(4 prompts x {args.examples} rows), concurrency {args.concurrency}, loopback "
             f"server answering after {args.latency * 1000:.0f} ms; load average "
             f"{data['load'][0]:.1f} at the end. Each figure is a whole process, from start "
             "to exit; medians of the rounds. CPU is the process and the children it waited "
             "for.")
    replace_section(SECTION, intro, lines)


def replace_section(section: str, intro: str, lines: list[str]) -> None:
    """RESULTS.md with ``section`` (up to the next ``## ``) replaced, or appended."""
    head = [section, "", textwrap.fill(intro, width=92), ""]
    text = RESULTS_MD.read_text()
    block = "\n".join(head + lines) + "\n"
    start = text.find(section)
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + block
    else:
        end = text.find("\n## ", start + len(section))
        text = text[:start] + block + ("" if end < 0 else text[end:])
    RESULTS_MD.write_text(text)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _node_version() -> str:
    return subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--examples", type=int, default=500, help="rows (x 4 prompts)")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.1, help="server delay, seconds")
    parser.add_argument("--budget", type=float, default=300,
                        help="seconds after which no new round starts")
    parser.add_argument("--untracked", action="store_true",
                        help="also time `workbench run --no-track` (no MLflow logging)")
    parser.add_argument("--write", action="store_true", help="update RESULTS.md")
    parser.add_argument("--json", type=Path, help="also save the raw measurements here")
    args = parser.parse_args()
    data = measure(args)
    lines = summary(data)
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(data, indent=2))
    if args.write:
        write_results(lines, args, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
