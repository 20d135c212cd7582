"""A model downgrade offered as a ready A/B experiment, built from logged traffic.

A cheaper model may serve a request type only on evidence (``gateway.routing``). When the
ledger shows a request type served by a model that a cheaper one the project already calls
could replace, and no A/B backs it, the evidence is one ``workbench run`` away:
:func:`ab_from_traffic` writes an experiment folder whose baseline is the served prompt
version (from the registry), whose candidate is the same prompt on the cheaper model, whose
eval set is the stored requests of that type (redacted when they were stored, written by
``monitor.to_evalset``), with a non-inferiority margin and the request type set, so the run
it makes is the evidence a route rule cites.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import WorkbenchError
from ..gateway.config import ModelConfig
from .record import since_ts

DEFAULT_MARGIN = 0.05
MAX_ROWS = 500  # the most recent requests of the type; enough for a paired test
AGREEMENT = {"type": "exact_match", "expected": "output", "name": "agrees_with_served"}
TURN_ON = ("serve it with PromptService(..., guard={'pii': 'log'}) or monitor={'sample': 0.1}"
           " (or guard:/monitor: in serve.yaml) so its requests are stored, redacted")


class AbFromTrafficError(WorkbenchError):
    """The A/B cannot be built: no stored traffic, no served version, or a bad argument."""


def ab_from_traffic(prompt: str, request_type: str, cheaper_model: str | ModelConfig,
                    folder: str | Path | None = None, *, since: Any = "30d",
                    margin: float = DEFAULT_MARGIN,
                    scorers: Sequence[Mapping[str, Any]] | None = None,
                    max_rows: int = MAX_ROWS) -> Path:
    """Write the downgrade A/B for ``request_type`` requests of ``prompt``; its folder.

    ``scorers`` default to agreement with the answer that was served (exact match on the
    stored ``output``): the served model agrees with itself more often than a rerun of the
    cheaper one does, so a non-inferior verdict on it errs on the side of keeping the
    served model. ``folder`` defaults to ``experiments/<prompt>-<request type>-downgrade``
    in the project and must not exist yet. ``workbench run <folder>`` runs it.
    """
    if not margin > 0:
        raise AbFromTrafficError(f"margin={margin!r}: must be > 0 (how much worse on the "
                                 "primary metric the cheaper model may be); fix: e.g. 0.05")
    target = _target(prompt, request_type, folder)
    ids, version = _served(prompt, request_type, since, max_rows)
    served = _served_version(prompt, version)
    candidate = (cheaper_model if isinstance(cheaper_model, ModelConfig)
                 else ModelConfig(model=cheaper_model, params=dict(served.model.params)))
    if candidate.model == served.model.model:
        raise AbFromTrafficError(f"cheaper_model {candidate.model!r} is the model serving "
                                 f"{prompt!r}; fix: name a different, cheaper model")
    target.mkdir(parents=True)
    try:
        data = _evalset(prompt, request_type, ids, since, target / "data")
        _write(target, prompt, request_type, served, candidate, data, margin,
               list(scorers or [AGREEMENT]))
        from ..experiment import Experiment

        Experiment.from_yaml(target)  # a folder that would not run is reported now
    except BaseException:
        import shutil

        shutil.rmtree(target, ignore_errors=True)
        raise
    return target


def stored_requests(store: Any, ids: set[str]) -> set[str]:
    """Those of ``ids`` whose request was stored with its inputs (guard or monitor on)."""
    import sqlalchemy as sa

    from ..monitor.store import tables

    table = tables(sa.MetaData())["served_requests"]
    found: set[str] = set()
    chunk = sorted(ids)
    try:
        with store.engine.connect() as conn:
            for i in range(0, len(chunk), 500):
                query = sa.select(table.c.request_id).where(
                    table.c.request_id.in_(chunk[i:i + 500]))
                found.update(r[0] for r in conn.execute(query))
    except sa.exc.SQLAlchemyError:  # no monitor table yet: nothing was stored
        return set()
    return found


def _target(prompt: str, request_type: str, folder: str | Path | None) -> Path:
    if folder is None:
        from ..settings import project_root

        folder = project_root() / "experiments" / _name(prompt, request_type)
    target = Path(folder)
    if target.exists():
        raise AbFromTrafficError(f"{target} already exists; fix: pass folder= a new path, "
                                 "or remove the old folder")
    return target


def _name(prompt: str, request_type: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{prompt}-{request_type}-downgrade").strip("-.")


def _served(prompt: str, request_type: str, since: Any, max_rows: int
            ) -> tuple[list[str], int | None]:
    """The ids of the most recent served requests of the type, and the version that served
    most of them."""
    import sqlalchemy as sa

    from .hook import default_ledger
    from .queries import _fetch

    ledger = default_ledger()
    ledger.flush(5.0)
    store = ledger.store()
    c = store.calls.c  # served requests have a fingerprint; experiment and judge calls do not
    rows = _fetch(store, sa.select(c.request_id, c.prompt_version).where(
        c.prompt == prompt, c.request_type == request_type, c.status == "ok",
        c.fingerprint.is_not(None), c.ts >= since_ts(since)).order_by(c.ts.desc())
        .limit(max_rows))
    ids = [r[0] for r in rows if r[0]]
    if not ids:
        raise AbFromTrafficError(f"the usage ledger has no served {request_type!r} requests "
                                 f"of {prompt!r} since {since!r}; fix: serve it with "
                                 f"tags={{'request_type': {request_type!r}}}, or check the "
                                 "names (observe.usage(by=['prompt', 'request_type']))")
    versions = [r[1] for r in rows if r[1] is not None]
    return ids, max(set(versions), key=versions.count) if versions else None


def _served_version(prompt: str, version: int | None) -> Any:
    from ..prompts.versions import load

    try:
        found = (load(prompt, version=int(version)) if version is not None
                 else load(prompt, alias="production"))
    except WorkbenchError as exc:
        raise AbFromTrafficError(f"the served version of {prompt!r} cannot be read from the "
                                 f"prompt registry ({exc}); fix: build the A/B in the project "
                                 "whose registry served it") from None
    if found.model is None:
        raise AbFromTrafficError(f"{found.uri} has no model config, so its model cannot be "
                                 "the baseline; fix: register the version with its model")
    return found


def _evalset(prompt: str, request_type: str, ids: list[str], since: Any, data: Path) -> Path:
    from ..monitor.traffic import TrafficQueryError, to_evalset

    try:
        # a request a guard blocked has no answer to compare with
        return to_evalset(prompt, f"request_id in {ids!r} and not blocked", since=since,
                          folder=data)
    except TrafficQueryError as exc:
        raise AbFromTrafficError(
            f"none of the {len(ids)} served {request_type!r} requests of {prompt!r} is stored "
            f"with its inputs and answer ({exc}); fix: {TURN_ON}, then build the A/B "
            "again") from None


def _write(target: Path, prompt: str, request_type: str, served: Any,
           candidate: ModelConfig, data: Path, margin: float,
           scorers: list[Mapping[str, Any]]) -> None:
    (target / "prompts").mkdir()
    key = "messages" if served.template.is_chat else "template"
    _yaml(target / "prompts" / "served.yaml", {
        key: served.template.template,
        "description": f"{served.uri} as served to {request_type!r} requests"})

    def dump(model: ModelConfig) -> dict[str, Any]:
        return model.model_dump(mode="json", exclude_defaults=True)

    metric = scorers[0].get("name") or scorers[0]["type"]
    _yaml(target / "experiment.yaml", {
        "name": target.name,
        "description": f"Can {candidate.model} serve {request_type!r} requests of {prompt} "
                       f"instead of {served.model.model}? Built from {data.name}.",
        "registry_name": prompt,
        "request_type": request_type,
        "eval_set": {"path": f"data/{data.name}", "id_field": "id"},
        "prompts": {"served": "prompts/served.yaml"},
        "models": {"served": dump(served.model), "cheaper": dump(candidate)},
        "scorers": [dict(s) for s in scorers],
        "primary_metric": metric,
        "baseline": "served",
        "non_inferiority_margin": margin,
    })


def _yaml(path: Path, content: Mapping[str, Any]) -> None:
    import yaml

    from ..files import BlockDumper

    path.write_text(yaml.dump(dict(content), Dumper=BlockDumper, sort_keys=False,
                              allow_unicode=True), encoding="utf-8")
