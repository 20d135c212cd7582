"""The Python API a notebook, the widgets and the CLI all use: load, run, compare, promote."""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from . import collector
from .aio import run_sync
from .errors import SpecError, WorkbenchError, WorkbenchWarning
from .evaluation.evalsets import EvalSet
from .evaluation.scorers import Scorer, build_scorer
from .files import BlockDumper, add_prompt_entry
from .gateway.cache import ResponseCache
from .gateway.config import ModelConfig
from .gateway.send import Send, gateway, using
from .gateway.send import for_run as send_for_run
from .gateway.send import notes as send_notes
from .observe.hook import attribute, request_type
from .prompts.templates import PromptTemplate
from .rag.retrieve import prepare as prepare_retrievers
from .rag.retrieve import retrieval_scorers, validation_view
from .run_outcome import outcome
from .run_types import Variant
from .runner import Progress, cost_guard, run_matrix
from .settings import cache_path
from .spec import _NAME, ExperimentSpec, check_run_options, load_spec, variant_name

if TYPE_CHECKING:
    import pandas as pd

    from .results import Results
    from .run_types import Plan


class Experiment:
    """Prompt variants × model variants × an eval set × scorers, validated before any call."""

    def __init__(self, spec: ExperimentSpec, *, evalset: EvalSet | None = None,
                 extra_scorers: Sequence[Scorer] = ()) -> None:
        unloaded = sorted(set(spec.prompts) - set(spec.templates))
        if unloaded:  # a spec built in Python rather than read by load_spec
            raise SpecError(spec.path or spec.name, "prompts", f"prompts {unloaded} are not "
                            "loaded", "build the spec with workbench.spec.load_spec(path) or "
                            "use Experiment.from_yaml(path)")
        self.spec = spec
        self.evalset = evalset or self._load_evalset()
        self._extra_scorers = list(extra_scorers)
        self.scorers: list[Scorer] = [
            build_scorer(s.type, s.options, name=s.name) for s in spec.scorers
        ] + list(extra_scorers) + retrieval_scorers(spec)
        self.retrievers = prepare_retrievers(spec, self.evalset)
        self.variants = [
            Variant(name=variant_name(p, m, spec, r), prompt_name=p, prompt=spec.templates[p],
                    model_name=m, model=spec.models[m], retriever=self.retrievers.get(r))
            for r in spec.retrievers or [None] for p in spec.prompts for m in spec.models
        ]
        self.warnings = self._validate()
        self._check_scorers()
        self._cancel = threading.Event()
        self._interrupted = threading.Event()  # a Ctrl-C: the user stopped it, log nothing
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
    def extra_scorers(self) -> tuple[Scorer, ...]:
        """Scorers given in Python rather than in experiment.yaml: a rebuilt experiment
        (another eval set, an updated prompt file) must carry them, or results change."""
        return tuple(self._extra_scorers)

    def reloaded(self) -> Experiment:
        """The experiment as its files now say, on this eval set, with this one's notebook
        scorers."""
        return Experiment(load_spec(self.spec.path), evalset=self.evalset,
                          extra_scorers=self._extra_scorers)

    @property
    def metrics(self) -> dict[str, str]:
        return {s.name: s.kind for s in self.scorers}

    def __repr__(self) -> str:
        return (f"Experiment({self.name!r}, variants={[v.name for v in self.variants]}, "
                f"examples={len(self.evalset)}, scorers={list(self.metrics)})")

    # ---- validation -----------------------------------------------------------------------
    def _load_evalset(self) -> EvalSet:
        es = self.spec.eval_set
        evalset = EvalSet.from_file(self.spec.directory / es.path, id_field=es.id_field,
                                    split=es.split)
        return evalset.head(es.limit) if es.limit else evalset

    def _validate(self) -> list[str]:
        """Everything that can be checked before a call: models, names, the data each
        prompt and scorer reads. Raises ``SpecError``; returns (and warns) the rest."""
        from .evaluation.datachecks import check_data, scorer_fields
        from .gateway.modelcheck import check_models, model_configs
        from .spec import check_variant_names

        where = self.spec.path or self.name
        check_models(where, model_configs(self.spec, self.scorers))
        check_variant_names(self.spec, where)
        first = next(iter(self.retrievers.values()), None)  # context filled as a run fills it
        evalset = self.evalset if first is None else validation_view(self.evalset, first)
        notes = check_data(where, self.spec.templates, evalset,
                           scorer_fields(self.scorers[:len(self.spec.scorers)]))
        for note in notes:
            warnings.warn(note, WorkbenchWarning, stacklevel=4)
        return notes

    def preview(self, variant: str, example: int | str = 0) -> list[dict[str, str]]:
        """The messages ``variant`` would send for one example (position or id); sends nothing."""
        chosen = next((v for v in self.variants if v.name == variant), None)
        if chosen is None:
            raise WorkbenchError(f"no variant {variant!r}; variants are "
                                 f"{[v.name for v in self.variants]}")
        examples = self.evalset.examples
        found = examples[example] if isinstance(example, int) else next(
            (e for e in examples if e.id == example), None)
        if found is None:
            raise WorkbenchError(f"no example {example!r} in {self.evalset.source}")
        return chosen.prompt.render(**chosen.example(found).inputs)

    def _check_scorers(self) -> None:
        """Scorers that can check the eval set (e.g. its labels) do so before any call."""
        for i, scorer in enumerate(self.scorers):
            check = getattr(scorer, "check_examples", None)
            try:
                if check is not None:
                    check(self.evalset.examples)
            except ValueError as exc:
                place = f"scorers[{i}]" if i < len(self.spec.scorers) else scorer.name
                raise SpecError(self.spec.path or self.name, place, str(exc)) from exc

    def _check_keys(self) -> None:
        """Keys of every model the run calls: a judge's too, or it fails after paid calls."""
        from .gateway.modelcheck import model_configs

        judges = model_configs(self.spec, self.scorers).values()
        for config in [*(v.model for v in self.variants), *judges]:
            if config is not None:
                config.check_keys()  # raises GatewayError naming the missing variable

    # ---- running ----------------------------------------------------------------------------
    def plan(self, *, limit: int | None = None, repeats: int | None = None,
             use_cache: bool = True, refresh: Sequence[str] = (),
             cache: ResponseCache | None = None) -> Plan:
        """Render and check every call without sending any: context windows, cached calls,
        and an upper estimate of the cost of the rest (``str(plan)`` says it in words)."""
        from .gateway.modelcheck import calling_scorers
        from .preflight import plan_run

        check_run_options(limit=limit, repeats=repeats)
        unknown = sorted(set(refresh) - {v.name for v in self.variants})
        if unknown:
            raise WorkbenchError(f"refresh names unknown variants {unknown}; "
                                 f"variants are {[v.name for v in self.variants]}")
        evalset = self.evalset.head(limit) if limit else self.evalset
        with _open_cache(self, cache) as opened:
            plan = plan_run(self.variants, evalset.examples, gateway(opened),
                            repeats=repeats or self.spec.run.repeats,
                            policy=self.spec.run.context_policy,
                            truncate_variable=self.spec.run.truncate_variable,
                            use_cache=use_cache, refresh=frozenset(refresh))
        plan.judges = calling_scorers(self.scorers)
        return plan

    async def arun(self, *, limit: int | None = None, use_cache: bool = True, track: bool = True,
                   progress: bool = True, concurrency: int | None = None,
                   repeats: int | None = None, refresh: Sequence[str] = (),
                   max_cost: float | None = None, cache: ResponseCache | None = None,
                   workers: int | None = None, log_again: bool = False,
                   send: Send | None = None) -> Results:
        """Run the matrix, score it, log it to MLflow; resumable through the response cache.

        Nothing is sent unless every call fits its context window and the estimated cost is
        within ``max_cost`` (argument or ``run.max_cost``). The run also stops sending once
        the cost actually spent reaches it. ``workers`` (or ``run.workers``) > 1 makes the
        calls from that many worker processes, which share the rate limits; this process
        caches, scores and logs.

        ``send`` replaces the transport for every call of the run, the judges' included
        (``workbench.testing.FakeSend`` answers in memory): the response cache is neither
        read nor written, and ``workers`` is ignored.

        A re-run served wholly from the cache that matches a logged execution (config, eval
        set, prompts, outputs, scores) is not logged twice: ``results.run_ids`` point at the
        existing runs and a warning says so. ``log_again=True`` logs a new parent run anyway.
        """
        check_run_options(limit=limit, repeats=repeats, concurrency=concurrency,
                           workers=workers, max_cost=max_cost)
        if send is None:
            self._check_keys()
        self._cancel.clear()
        self._interrupted.clear()
        evalset = self.evalset.head(limit) if limit else self.evalset
        repeats = repeats or self.spec.run.repeats
        concurrency = concurrency or self.spec.run.concurrency
        max_cost = max_cost or self.spec.run.max_cost
        use_cache = use_cache and send is None  # a replaced transport has no cache
        # the collector stays out of the calls, the scoring and the MLflow logging alike
        with collector.quiet(), attribute(self.name, request_type=request_type() or "experiment"):
            with _open_cache(self, cache) as opened:
                plan = self._checked_plan(limit, repeats, use_cache, refresh, opened, max_cost,
                                          track, priced_here=send is None)
                given, workers = send, workers or self.spec.run.workers
                send, notes = (send, []) if send is not None else send_for_run(
                    opened, concurrency=concurrency, workers=workers,
                    models=[v.model for v in self.variants])
                if given is not None and workers > 1:
                    notes = [f"workers: {workers} ignored: the run was given its own send"]
                with using(given) if given is not None else nullcontext():
                    rows = await run_matrix(
                        self.variants, evalset.examples, self.scorers, send,
                        concurrency=concurrency, repeats=repeats, use_cache=use_cache,
                        refresh=frozenset(refresh), plan=plan,
                        progress=self._fresh_progress(max_cost), show_progress=progress,
                        cancel=self._cancel)
                opened.flush()  # every answer committed before the results are used
            results = outcome(self, rows, repeats, max_cost, notes + send_notes(send),
                              cancelled=self._cancel.is_set())
            if track and len(rows) and not self._interrupted.is_set():
                self._track(results, evalset, log_again=log_again,
                            resend=not use_cache or bool(refresh))
        self.last_results = results
        return results

    def _checked_plan(self, limit: int | None, repeats: int, use_cache: bool,
                      refresh: Sequence[str], cache: ResponseCache, max_cost: float | None,
                      track: bool, *, priced_here: bool = True) -> Plan:
        """The run's plan, within ``max_cost``, with the store answering: else nothing is
        sent (a dead store found after the calls would have cost them all).

        ``priced_here``: the gateway prices the calls (not a send of the caller's), so a
        model without a price would make ``max_cost`` a limit that is never reached.
        """
        from .preflight import CostLimitError

        plan = self.plan(limit=limit, repeats=repeats, use_cache=use_cache, refresh=refresh,
                         cache=cache)
        if max_cost is not None and priced_here and math.isnan(plan.estimated_cost):
            from .gateway.pricing import has_price

            unpriced = sorted({v.model.model for v in self.variants if not has_price(v.model)})
            raise CostLimitError(
                f"{self.name}: max_cost ${max_cost:.4f} cannot be kept: no price is known for "
                f"{unpriced}, so their calls would count as free; nothing was sent. fix: set "
                "input_cost_per_token and output_cost_per_token in those models' configs, "
                "or run without max_cost")
        if max_cost is not None and plan.estimated_cost > max_cost:
            raise CostLimitError(
                f"{self.name}: {plan}, over max_cost ${max_cost:.4f}; nothing was sent. "
                "fix: raise max_cost, run fewer examples (limit=) or a cheaper model")
        if track:
            from .settings import tracking_uri
            from .store import check_store

            check_store(tracking_uri(self.spec.directory))
        return plan

    def _fresh_progress(self, max_cost: float | None) -> Progress:
        """The user's listeners carry over to this run; a previous run's guard does not."""
        listeners = [f for f in self.progress.listeners if not hasattr(f, "max_cost")]
        if max_cost is not None:
            listeners.append(cost_guard(max_cost, self._cancel))
        self.progress = Progress(listeners=listeners)
        return self.progress

    def run(self, **options: Any) -> Results:
        """Blocking form of ``arun`` for notebooks and scripts.

        A Ctrl-C that lands once the run is scored and logged returns the results: nothing
        was lost. (asyncio turns one pressed during the MLflow writes into a cancellation
        after they finish, which would otherwise discard the finished run.)
        """
        finished: list[Results] = []

        async def until_logged() -> Results:
            results = await self.arun(**options)
            finished.append(results)
            return results

        try:
            return run_sync(until_logged)
        except KeyboardInterrupt:
            if not finished:
                self._interrupted.set()
                self.cancel()  # in a notebook the run goes on in a helper thread: stop its calls
                raise
            results = finished[0]
            logged = " and was logged" if results.run_ids else ""
            results.warnings.append(f"interrupted after the run had finished{logged}: "
                                    "nothing was lost")
            return results

    def cancel(self) -> None:
        """Stop sending new calls; finished calls stay cached, so a re-run resumes."""
        self._cancel.set()

    # ---- pricing and editing (what the notebook panels offer) -------------------------------
    def estimate(self, *, limit: int | None = None, repeats: int | None = None,
                 prompts: Mapping[str, PromptTemplate] | None = None) -> pd.DataFrame:
        """Calls, prompt tokens and worst-case cost per variant, before anything is sent.

        Completion tokens are priced at each model's ``max_tokens`` (the most a call can
        cost); ``prompts`` prices unsaved edits of prompt variants, by prompt name. A model
        missing from litellm's price table gets NaN (unknown), never a made-up zero.
        """
        from .preflight import estimate

        check_run_options(limit=limit, repeats=repeats)
        examples = (self.evalset.head(limit) if limit else self.evalset).examples
        return estimate(self.variants, examples, repeats or self.spec.run.repeats, prompts)

    def with_models(self, models: Mapping[str, ModelConfig]) -> Experiment:
        """The same prompts and eval set on other model variants (in memory; the YAML file
        is unchanged). The baseline stays the same prompt, renamed if variant names change."""
        where = self.spec.path or self.name
        if not models:
            raise SpecError(where, "models", "no model variants",
                            "add one, e.g. `smollm2: {model: local/smollm2}`")
        for key in models:
            if not _NAME.match(key):
                raise SpecError(where, f"models.{key}", "invalid variant name",
                                "use letters, digits, '-', '_' and '.' only")
        spec = self.spec.model_copy(update={"models": dict(models)})
        old = next((v for v in self.variants if v.name == spec.baseline), None)
        if old is not None:
            arms = [m for m in spec.models if m == old.model_name] or list(spec.models)
            retriever = old.retriever.name if old.retriever is not None else None
            spec = spec.model_copy(
                update={"baseline": variant_name(old.prompt_name, arms[0], spec, retriever)})
        return Experiment(spec, evalset=self.evalset, extra_scorers=self._extra_scorers)

    def save_prompt(self, name: str, template: PromptTemplate | str | list[dict[str, str]], *,
                    description: str = "") -> Experiment:
        """Write ``prompts/<name>.yaml`` and list it in experiment.yaml, so the variant is part
        of the experiment for every later run and reader; returns the reloaded experiment."""
        path = self.spec.path
        if path is None:
            raise WorkbenchError("this experiment was not loaded from a file; "
                                 "use Experiment.from_yaml(...) to save prompt variants")
        if not _NAME.match(name):
            raise SpecError(path, f"prompts.{name}", "invalid variant name",
                            "use letters, digits, '-', '_' and '.' only")
        file = self.spec.directory / "prompts" / f"{name}.yaml"
        if name in self.spec.prompts or file.exists():
            raise SpecError(path, f"prompts.{name}", "a prompt variant of that name exists",
                            "choose another name")
        text = template.template if isinstance(template, PromptTemplate) else template
        prompt = PromptTemplate(text, name=name, description=description)
        missing = sorted(prompt.variables - set(self.evalset.columns))
        if missing:
            raise SpecError(path, f"prompts.{name}", f"the template uses {missing} but the "
                            f"eval set has only {sorted(self.evalset.columns)}",
                            "rename the placeholder or add the field to the eval set")
        content: dict[str, object] = {"description": description} if description else {}
        content["messages" if prompt.is_chat else "template"] = prompt.template
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(yaml.dump(content, Dumper=BlockDumper, sort_keys=False,
                                  allow_unicode=True, width=100), encoding="utf-8")
        add_prompt_entry(path, name, f"prompts/{name}.yaml")
        saved = Experiment(load_spec(path), evalset=self.evalset,
                           extra_scorers=self._extra_scorers)
        return saved if saved.spec.models == self.spec.models else saved.with_models(
            self.spec.models)

    def _track(self, results: Results, evalset: EvalSet, *, log_again: bool = False,
               resend: bool = False) -> None:
        from .run_logging import track

        track(self, results, evalset, log_again=log_again, resend=resend)


@contextmanager
def _open_cache(experiment: Experiment, cache: ResponseCache | None) -> Iterator[ResponseCache]:
    """The caller's cache, or the project's own, closed again afterwards."""
    if cache is not None:
        yield cache
        return
    opened = ResponseCache(cache_path(experiment.spec.directory))
    try:
        yield opened
    finally:
        opened.close()
