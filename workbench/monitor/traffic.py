"""Reading what production monitoring stored: online quality, guard hits, traffic as eval rows.

Every text read here was redacted before it was stored (``monitor.store``), so an eval set
made from traffic holds no personal data, whatever the guard policy was.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from ..errors import WorkbenchError
from ..observe.record import since_ts


class TrafficQueryError(WorkbenchError):
    """A ``where=`` filter or a request for traffic that cannot be answered."""


def _store() -> Any:
    from ..observe.hook import default_ledger
    from .store import default_log

    default_ledger().flush(5.0)
    log = default_log()
    log.flush(5.0)
    return log.store()


def requests(prompt: str, since: Any = "30d") -> Any:
    """One row per served request of ``prompt``: inputs, output, flags, the latest feedback
    (``feedback``, ``comment``) and each online score as ``score_<scorer>``."""
    store = _store()
    start = since_ts(since)
    t = store.t
    served = store.frame("served_requests", t["served_requests"].c.prompt == prompt,
                         t["served_requests"].c.ts >= start)
    labels = store.frame("request_feedback", t["request_feedback"].c.ts >= start)
    scores = store.frame("online_scores", t["online_scores"].c.prompt == prompt,
                         t["online_scores"].c.ts >= start)
    served = served.set_index("request_id")
    latest = labels.sort_values("ts").groupby("request_id").last()
    served["feedback"] = latest["score"].reindex(served.index)
    served["comment"] = latest["comment"].reindex(served.index)
    if len(scores):
        wide = scores.pivot_table(index="request_id", columns="scorer", values="value",
                                  aggfunc="mean")
        for scorer in wide.columns:
            served[f"score_{_identifier(scorer)}"] = wide[scorer].reindex(served.index)
    for flag in ("flagged", "blocked", "sampled"):
        served[flag] = served[flag].fillna(False).astype(bool)
    served["inputs"] = [json.loads(v) if isinstance(v, str) else {} for v in served["inputs"]]
    return served.reset_index().sort_values("ts").reset_index(drop=True)


def to_evalset(prompt: str, where: str = "feedback == 0 or flagged", *, since: Any = "30d",
               folder: str | Path | None = None) -> Path:
    """Write the requests matching ``where`` as a new versioned eval-set file; its path.

    Rows keep the request id as ``id``, every input variable as a column, the ``output``,
    and ``feedback`` (0 bad to 1 good: the expected label where a person gave one) with its
    ``comment``. Files go to ``folder`` (default: ``experiments/<prompt>/data`` when it
    exists, else ``.workbench/evalsets/<prompt>``) as ``traffic-v<N>.jsonl``, N one more
    than the last, so an experiment names the version it uses: ``eval_set:
    {path: data/traffic-v3.jsonl}``.
    """
    frame = requests(prompt, since)
    if frame.empty:
        raise TrafficQueryError(f"no served requests of {prompt!r} since {since!r} were "
                                "stored; fix: serve it with guard= or monitor= set")
    try:
        chosen = frame.query(where, engine="python")
    except Exception as exc:
        columns = [c for c in frame.columns if c not in ("inputs",)]
        raise TrafficQueryError(
            f"where={where!r} cannot be evaluated ({type(exc).__name__}: {exc}); fix: write "
            f"a pandas query over {columns}, e.g. 'feedback == 0 or flagged'") from exc
    if chosen.empty:
        raise TrafficQueryError(f"no request of {prompt!r} since {since!r} matches "
                                f"{where!r} ({len(frame)} stored); nothing written")
    target = _folder(prompt, folder)
    path = target / f"traffic-v{_next_version(target)}.jsonl"
    with open(path, "x", encoding="utf-8") as out:
        for row in chosen.itertuples(index=False):
            record = {"id": row.request_id, **row.inputs, "output": row.output,
                      "feedback": _plain(row.feedback), "comment": _plain(row.comment),
                      "prompt_version": _plain(row.prompt_version), "flagged": row.flagged}
            out.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
    return path


def quality(prompt: str, since: Any = "7d", *, alias: str = "production") -> Any:
    """Per version and scorer: online scores (n, mean, 95% CI, errors), people's feedback
    and, where the alias's promotion names a run, the offline estimate of that scorer."""
    import pandas as pd

    from .offline import offline_estimate

    store = _store()
    t = store.t["online_scores"]
    scores = store.frame("online_scores", t.c.prompt == prompt, t.c.ts >= since_ts(since))
    columns = ["prompt_version", "scorer", "n", "mean", "ci_low", "ci_high", "errors",
               "offline"]
    if scores.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for (version, scorer), group in scores.groupby(["prompt_version", "scorer"]):
        values = group["value"].dropna()
        n, mean = len(values), float(values.mean()) if len(values) else math.nan
        half = 1.96 * float(values.std(ddof=1)) / math.sqrt(n) if n > 1 else math.nan
        try:
            offline = offline_estimate(prompt, alias, scorer)
        except Exception:  # no promotion run, no such metric, a store error: no estimate
            offline = math.nan
        rows.append({"prompt_version": int(version), "scorer": scorer, "n": n, "mean": mean,
                     "ci_low": mean - half, "ci_high": mean + half,
                     "errors": int(group["error"].notna().sum()), "offline": offline})
    return pd.DataFrame(rows, columns=columns)


def guard_hits(since: Any = "24h", by: str | list[str] | None = None) -> Any:
    """Requests with a guard hit, counted by application, prompt, guard, stage and action."""
    store = _store()
    t = store.t["guard_hits"]
    hits = store.frame("guard_hits", t.c.ts >= since_ts(since))
    keys = [by] if isinstance(by, str) else list(by or ["application", "prompt", "guard",
                                                         "stage", "action"])
    unknown = sorted(set(keys) - set(hits.columns))
    if unknown:
        raise TrafficQueryError(f"guard_hits by={unknown}: not a column; fix: use some of "
                                "['application', 'prompt', 'guard', 'stage', 'action']")
    return hits.fillna({"application": ""}).groupby(keys).size().rename("hits").reset_index()


def _folder(prompt: str, folder: str | Path | None) -> Path:
    from ..settings import project_root

    if folder is None:
        root = project_root()
        experiment = root / "experiments" / prompt / "data"
        folder = experiment if experiment.is_dir() else root / ".workbench" / "evalsets" / prompt
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    return target


def _next_version(folder: Path) -> int:
    found = [int(m.group(1)) for p in folder.glob("traffic-v*.jsonl")
             if (m := re.fullmatch(r"traffic-v(\d+)\.jsonl", p.name))]
    return max(found, default=0) + 1


def _identifier(name: str) -> str:
    return re.sub(r"\W", "_", name)


def _plain(value: Any) -> Any:
    """NaN and pandas' missing values as JSON null; numpy numbers as Python ones."""
    if value is None:
        return None
    try:
        if value != value:  # NaN
            return None
    except (TypeError, ValueError):
        return value
    return value.item() if hasattr(value, "item") else value
