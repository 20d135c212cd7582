"""The project's loopback model server (tests/llm_server.py) in a process of its own.

Benchmarks must not share a CPU-bound event loop with the server, so it runs here and is
steered over its stdin, one command per line; each command answers one line on stdout:

    count          -> requests received so far
    reset          -> "ok" (forget received requests)
    latency <s>    -> "ok" (fixed delay before each answer)
    digest         -> sha256 of the received requests' model and messages, in any order

The first stdout line is the base URL (``http://127.0.0.1:<port>/v1``). End of stdin stops
the server. It binds 127.0.0.1 only.

    python benchmarks/loopback.py --latency 0.1
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def cpu_seconds(pid: int | None) -> float:
    """CPU time process ``pid`` has used so far (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def label_for(text: str) -> str:
    """What the benchmark 'model' answers: deterministic, right on most tickets."""
    lowered = text.lower()
    return "negative" if any(cue in lowered for cue in ("refund", "broken", "late")) \
        else "positive"


def _responder(body: dict[str, Any]) -> str:
    from llm_server import last_user_message  # type: ignore[import-not-found]

    return label_for(last_user_message(body))


def digest(requests: list[dict[str, Any]]) -> str:
    """One hash of what was asked (model and messages), independent of arrival order."""
    bodies = sorted(json.dumps([r.get("model"), r.get("messages")], sort_keys=True)
                    for r in requests)
    return hashlib.sha256("\n".join(bodies).encode()).hexdigest()


def serve(latency: float) -> int:
    sys.path.insert(0, str(ROOT / "tests"))
    from llm_server import FakeLLMServer  # type: ignore[import-not-found]

    with FakeLLMServer(latency=latency, responder=_responder) as server:
        print(server.base_url, flush=True)
        for line in sys.stdin:
            command, *args = line.split()
            if command == "count":
                print(server.request_count, flush=True)
            elif command == "reset":
                server.reset()
                print("ok", flush=True)
            elif command == "digest":
                print(digest(server.requests), flush=True)
            elif command == "latency":
                server.latency = float(args[0])
                print("ok", flush=True)
            else:
                print(f"unknown command {command!r}", flush=True)
    return 0


class LoopbackServer:
    """Start ``loopback.py`` as a child process; ``count()``, ``reset()``, ``set_latency()``."""

    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency
        self.process: subprocess.Popen[str] | None = None
        self.base_url = ""

    def __enter__(self) -> LoopbackServer:
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--latency", str(self.latency)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.base_url = self.process.stdout.readline().strip()
        if not self.base_url.startswith("http://127.0.0.1:"):
            self.__exit__(None, None, None)
            raise RuntimeError(f"loopback server did not start (got {self.base_url!r})")
        return self

    def _ask(self, command: str) -> str:
        assert self.process is not None and self.process.stdin and self.process.stdout
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def count(self) -> int:
        return int(self._ask("count"))

    def reset(self) -> None:
        self._ask("reset")

    def digest(self) -> str:
        return self._ask("digest")

    def set_latency(self, seconds: float) -> None:
        self._ask(f"latency {seconds}")
        self.latency = seconds

    def cpu_seconds(self) -> float:
        """CPU time the server process has used so far (Linux /proc; NaN elsewhere)."""
        assert self.process is not None
        return cpu_seconds(self.process.pid)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.stdin:
            process.stdin.close()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.0)
    sys.exit(serve(parser.parse_args().latency))
