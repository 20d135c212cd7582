"""The Python API a notebook, the widgets and the CLI all use: load, run, compare, promote."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .aio import run_sync
from .cache import ResponseCache
from .errors import SpecError
from .evalsets import EvalSet
from .gateway import Gateway
from .runner import Progress, Variant, run_matrix
from .scorers import Scorer, build_scorer
from .settings import cache_path
from .spec import ExperimentSpec, load_spec, variant_name

if TYPE_CHECKING:
    from .results import Results


class Experiment:
    """Prompt variants × model variants × an eval set × scorers, validated before any call."""

    def __init__(self, spec: ExperimentSpec, *, evalset: EvalSet | None = None,
                 extra_scorers: Sequence[Scorer] = ()) -> None:
        self.spec = spec
        self.evalset = evalset or self._load_evalset()
        self.scorers: list[Scorer] = [
            build_scorer(s.type, s.options, name=s.name) for s in spec.scorers
        ] + list(extra_scorers)
        self.variants = [
            Variant(name=variant_name(p, m, spec), prompt_name=p, prompt=spec.templates[p],
                    model_name=m, model=spec.models[m])
            for p in spec.prompts for m in spec.models
        ]
        self._check_variables()
        self._cancel = threading.Event()
        self.progress = Progress()
        self.last_results: Results | None = None

    @classmethod
    def from_yaml(cls, path: str | Path) -> Experiment:
        """Load ``experiment.yaml`` (or its directory); any mistake raises ``SpecError``."""
        return cls(load_spec(path))

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def metrics(self) -> dict[str, str]:
        return {s.name: s.kind for s in self.scorers}

    def __repr__(self) -> str:
        return (f"Experiment({self.name!r}, variants={[v.name for v in self.variants]}, "
                f"examples={len(self.evalset)}, scorers={list(self.metrics)})")

    # ---- validation -----------------------------------------------------------------------
    def _load_evalset(self) -> EvalSet:
        es = self.spec.eval_set
        evalset = EvalSet.from_file(self.spec.directory / es.path, id_field=es.id_field)
        return evalset.head(es.limit) if es.limit else evalset

    def _check_variables(self) -> None:
        columns = set(self.evalset.columns)
        for name, template in self.spec.templates.items():
            missing = sorted(template.variables - columns)
            if missing:
                raise SpecError(
                    self.spec.path or self.name, f"prompts.{name}",
                    f"the template uses {missing} but the eval set "
                    f"{self.evalset.source} has only the fields {sorted(columns)}",
                    "rename the placeholder or add the field to the eval set")

    def _check_keys(self) -> None:
        for variant in self.variants:
            variant.model.api_key()  # raises GatewayError naming the missing variable

    # ---- running ----------------------------------------------------------------------------
    async def arun(self, *, limit: int | None = None, use_cache: bool = True, track: bool = True,
                   progress: bool = True, concurrency: int | None = None,
                   repeats: int | None = None, cache: ResponseCache | None = None) -> Results:
        """Run the matrix, score it, log it to MLflow; resumable through the response cache."""
        from .results import Results

        self._check_keys()
        self._cancel.clear()
        evalset = self.evalset.head(limit) if limit else self.evalset
        own_cache = cache is None
        cache = cache or ResponseCache(cache_path(self.spec.directory))
        self.progress = Progress(listeners=self.progress.listeners)
        try:
            rows = await run_matrix(
                self.variants, evalset.examples, self.scorers, Gateway(cache),
                concurrency=concurrency or self.spec.run.concurrency,
                repeats=repeats or self.spec.run.repeats, use_cache=use_cache,
                progress=self.progress, show_progress=progress, cancel=self._cancel)
        finally:
            if own_cache:
                cache.close()
        results = Results.from_rows(rows, metrics=self.metrics, primary=self.spec.primary,
                                    experiment=self.name, baseline=self.spec.baseline)
        results.registry_name = self.spec.prompt_registry_name
        if len(results.variants) >= 2:
            results.report = results.compare()
        if track and not self._cancel.is_set():
            self._track(results, evalset)
        self.last_results = results
        return results

    def run(self, **options: Any) -> Results:
        """Blocking form of ``arun`` for notebooks and scripts."""
        return run_sync(lambda: self.arun(**options))

    def cancel(self) -> None:
        """Stop sending new calls; finished calls stay cached, so a re-run resumes."""
        self._cancel.set()

    def _track(self, results: Results, evalset: EvalSet) -> None:
        from .tracking import log_execution

        tracked = log_execution(
            experiment=self.name, registry_name=self.spec.prompt_registry_name,
            variants=self.variants, evalset=evalset, results=results, report=results.report,
            params={"repeats": self.spec.run.repeats}, source_dir=self.spec.directory)
        results.run_ids = {"parent": tracked.parent_run_id, **tracked.child_run_ids}
        results.prompt_versions = dict(tracked.prompt_versions)
        results.tracking_uri = tracked.tracking_uri
