"""The scorer interface: a named callable that turns (output, example) into a Score.

Scorers are registered by type name so an experiment file can name them with options, and
a notebook function decorated with ``@scorer`` works exactly like a built-in.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, ValidationError

from ...errors import ScorerError
from ..evalsets import Example

MetricKind = Literal["binary", "continuous"]


@dataclass(frozen=True)
class Score:
    """A value (1.0/0.0 for pass/fail) with the reason a reviewer needs to trust it."""

    value: float | None
    reason: str = ""
    error: str | None = None
    # what a judge's own model call cost, kept apart from the variant's call
    cost: float | None = None
    tokens: int | None = None
    # the judge's verdict came from the response cache: its cost was paid by an earlier run
    cached: bool = False


@runtime_checkable
class Scorer(Protocol):
    name: str
    kind: MetricKind

    def __call__(self, output: str, example: Example) -> Score | Awaitable[Score]: ...


class Options(BaseModel):
    """Base for scorer options: unknown keys are errors when the experiment loads."""

    model_config = ConfigDict(extra="forbid", frozen=True)


_REGISTRY: dict[str, Callable[..., Scorer]] = {}


def register(type_name: str) -> Callable[[type], type]:
    """Make a scorer class available to experiment files as ``type: <type_name>``."""

    def decorate(cls: type) -> type:
        _REGISTRY[type_name] = cls
        cls.type_name = type_name
        return cls

    return decorate


def registered_types() -> dict[str, Callable[..., Scorer]]:
    return dict(_REGISTRY)


def build_scorer(type_name: str, options: Mapping[str, Any] | None = None, *,
                 name: str | None = None) -> Scorer:
    """Instantiate a registered scorer, validating its options now rather than mid-run."""
    try:
        factory = _REGISTRY[type_name]
    except KeyError:
        raise ScorerError(
            f"unknown scorer type {type_name!r}; known types: {sorted(_REGISTRY)}"
        ) from None
    try:
        return factory(name=name, **dict(options or {}))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'options'}: {e['msg']}" for e in exc.errors()
        )
        raise ScorerError(f"scorer {type_name!r}: {problems}") from exc


class OptionScorer:
    """Built-in scorers: options parsed by an ``Options`` model, one ``score`` method."""

    Opts: type[Options] = Options
    kind: MetricKind = "binary"
    type_name: str = ""
    # options that name an eval-set field; the experiment checks them against its data
    data_fields: tuple[str, ...] = ("expected", "context")

    def __init__(self, name: str | None = None, **options: Any) -> None:
        self.options = self.Opts(**options)
        self.name = name or self.type_name

    def __call__(self, output: str, example: Example) -> Score:
        return self.score(output, example)

    def score(self, output: str, example: Example) -> Score:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.options.model_dump().items())
        return f"{type(self).__name__}({self.name!r}, {args})"


class FunctionScorer:
    """A plain function used as a scorer; it asks only for the arguments it names."""

    _ARGS = ("output", "example", "inputs")

    def __init__(self, fn: Callable[..., Any], *, name: str, kind: MetricKind) -> None:
        self.fn, self.name, self.kind = fn, name, kind
        params = inspect.signature(fn).parameters
        unknown = [p for p in params if p not in self._ARGS]
        if unknown:
            raise ScorerError(
                f"scorer {name!r}: parameters {unknown} are not provided; "
                f"a scorer function may take {list(self._ARGS)}"
            )
        self._wants = [p for p in self._ARGS if p in params]
        self.is_async = inspect.iscoroutinefunction(fn)

    def _kwargs(self, output: str, example: Example) -> dict[str, Any]:
        available = {"output": output, "example": example, "inputs": example.inputs}
        return {k: available[k] for k in self._wants}

    def __call__(self, output: str, example: Example) -> Score | Awaitable[Score]:
        if self.is_async:
            async def run() -> Score:
                return to_score(await self.fn(**self._kwargs(output, example)))
            return run()
        return to_score(self.fn(**self._kwargs(output, example)))

    def __repr__(self) -> str:
        return f"scorer({self.name!r}, kind={self.kind!r})"


def scorer(fn: Callable[..., Any] | None = None, *, name: str | None = None,
           kind: MetricKind = "binary") -> Any:
    """Turn a function into a scorer: ``@scorer`` or ``@scorer(name=..., kind="continuous")``.

    The function returns a bool, a number, ``(value, reason)`` or a ``Score``.
    """

    def wrap(f: Callable[..., Any]) -> FunctionScorer:
        return FunctionScorer(f, name=name or f.__name__, kind=kind)

    return wrap(fn) if fn is not None else wrap


def to_score(result: Any) -> Score:
    if isinstance(result, Score):
        return result
    reason = ""
    if isinstance(result, tuple) and len(result) == 2:
        result, reason = result
    if result is None:
        return Score(None, str(reason))
    if isinstance(result, bool):
        return Score(1.0 if result else 0.0, str(reason))
    if isinstance(result, (int, float)):
        return Score(float(result), str(reason))
    raise ScorerError(f"a scorer returned {type(result).__name__}; return a bool, number or Score")
