"""One alias's prompt version, kept in memory and refreshed off the request path.

A request takes the version in memory and never waits for the registry: once the version
is older than ``refresh_s``, the request starts a refresh in the background (one at a time)
and is answered at once. A registry that is down or hangs (a stopped tracking server)
therefore costs requests nothing; the last version that loaded keeps serving, and the
state says why. A version the registry names but this service cannot serve (it does not
render, it has no model) is reported as such, not as an outage. Only the first load waits,
and fails with the reason.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import os
import threading
import time
from concurrent.futures import Future
from typing import Any

from ..errors import RegistryError, TemplateError
from ..gateway.scrub import scrub
from ..prompts.versions import RegisteredPrompt, alias_version, client, load
from ..settings import tracking_uri as default_tracking_uri

log = logging.getLogger("workbench.serving")

# MLflow error codes by which the registry answers "no such prompt or alias"
_ANSWERED = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"}


class LivePrompt:
    """``prompts:/name@alias`` in memory, with the registry's state: ``ok``, ``unreachable``
    (no answer, or none within ``refresh_timeout_s``) or ``unservable``."""

    def __init__(self, name: str, alias: str, tracking_uri: str | None = None, *,
                 refresh_s: float, refresh_timeout_s: float, needs_model: bool) -> None:
        self.name, self.alias, self.uri = name, alias, f"prompts:/{name}@{alias}"
        self.refresh_s, self.refresh_timeout_s = refresh_s, refresh_timeout_s
        store = tracking_uri or default_tracking_uri()
        missing = _missing_store(store)
        if missing is not None:  # an MLflow client would create an empty store there
            raise RegistryError(f"cannot start serving {self.uri}: there is no MLflow store "
                                f"at {missing}; check MLFLOW_TRACKING_URI and the project folder")
        self._client, self._needs_model = client(store), needs_model
        self._lock = threading.Lock()
        self._prompt: RegisteredPrompt | None = None
        self._checked_at = self._loaded_at = self._refresh_started = 0.0
        self._refresh: Future[None] | None = None
        self._slow_logged = False
        self._state: str = "ok"
        self._problem: str | None = None
        self.current()  # fail fast: a service that cannot load its prompt should not start

    def current(self) -> RegisteredPrompt:
        """The version in memory; starts a background refresh once it is stale."""
        prompt = self._prompt
        if prompt is None:
            self._start_refresh().result()  # a cold start waits, and fails with the reason
            assert self._prompt is not None
            return self._prompt
        if time.monotonic() - self._checked_at >= self.refresh_s:
            self._start_refresh()
        return prompt

    async def acurrent(self) -> RegisteredPrompt:
        if self._prompt is None:
            await asyncio.wrap_future(self._start_refresh())
        return self.current()

    @property
    def refreshing(self) -> bool:
        """Whether a refresh is in flight."""
        refresh = self._refresh
        return refresh is not None and not refresh.done()

    def status(self, *, detail: bool = True) -> dict[str, Any]:
        state, problem = self._state, self._problem
        if self._overdue():
            state = "unreachable"
            problem = f"registry unreachable (no answer in {self.refresh_timeout_s:.1f}s)"
        if not detail:
            return {"prompt": self.name, "registry": state}
        prompt = self._prompt
        return {"prompt": self.name, "alias": self.alias,
                "version": prompt.version if prompt else None, "registry": state,
                "registry_error": problem,
                "loaded_s_ago": round(time.monotonic() - self._loaded_at, 3)}

    def _overdue(self) -> bool:
        return self.refreshing and (
            time.monotonic() - self._refresh_started > self.refresh_timeout_s)

    def _start_refresh(self) -> Future[None]:
        with self._lock:
            if self._refresh is None or self._refresh.done():
                self._refresh = Future()
                self._refresh_started, self._slow_logged = time.monotonic(), False
                threading.Thread(target=self._reload, args=(self._refresh,),
                                 name=f"workbench-refresh-{self.name}", daemon=True).start()
            elif self._prompt and not self._slow_logged and self._overdue():
                self._slow_logged = True
                log.warning("registry unreachable (no answer in %.1fs); still serving %s v%s",
                            self.refresh_timeout_s, self.name, self._prompt.version)
            return self._refresh

    def _reload(self, future: Future[None]) -> None:
        try:
            fresh = self._look_up()
        except Exception as exc:  # the registry failed, or names a version we cannot serve
            self._checked_at = time.monotonic()
            state, problem = self._classify(exc)
            if self._prompt is None:
                future.set_exception(self._cold_start_error(exc, state, problem))
                return
            if (state, problem) != (self._state, self._problem):
                log.warning("%s; still serving %s v%s", problem, self.name, self._prompt.version)
            self._state, self._problem = state, problem
            future.set_result(None)
            return
        if self._prompt is not None and fresh.version != self._prompt.version:
            log.info("%s moved: v%s → v%s", self.uri, self._prompt.version, fresh.version)
        if self._state != "ok" and self._prompt is not None:
            log.info("registry reachable again; serving %s v%s", self.name, fresh.version)
        self._prompt, self._state, self._problem = fresh, "ok", None
        self._checked_at = self._loaded_at = time.monotonic()
        future.set_result(None)

    def _look_up(self) -> RegisteredPrompt:
        gone = _missing_store(self._client._registry_uri)
        if gone is not None:  # connecting would create an empty database at the old path
            raise RegistryError(f"the registry's SQLite file {gone} is gone")
        try:
            # cache_ttl_seconds=0: this is the cache; MLflow's own would add up to another
            # interval of delay before an alias move is seen.
            fresh = load(self.name, alias=self.alias, cache_ttl_seconds=0,
                         mlflow_client=self._client)
        except (TemplateError, ValueError) as exc:  # ValueError: a model config we refuse
            version = alias_version(self.name, self.alias, mlflow_client=self._client)
            raise _Unservable(f"{self.uri} names v{version}, which cannot be served "
                              f"({type(exc).__name__}: {_first_line(exc)})") from exc
        if self._needs_model and fresh.model is None:
            raise _Unservable(f"{self.uri} names v{fresh.version}, which has no model config; "
                              "register it with one or pass model= to PromptService")
        return fresh

    @staticmethod
    def _classify(exc: Exception) -> tuple[str, str]:
        if isinstance(exc, _Unservable):
            return "unservable", str(exc)
        if isinstance(exc, RegistryError) and (
                getattr(exc.__cause__, "error_code", None) in _ANSWERED):
            return "unservable", _first_line(exc)  # no such prompt or alias
        return "unreachable", f"registry unreachable ({type(exc).__name__}: {_first_line(exc)})"

    def _cold_start_error(self, exc: Exception, state: str, problem: str) -> RegistryError:
        if state == "unservable":
            missing = getattr(exc.__cause__, "error_code", None) in _ANSWERED
            hint = _what_exists(self._client, self.name, self.alias) if missing else ""
            return RegistryError(f"cannot start serving: {problem}{hint}")
        return RegistryError(
            f"cannot start serving {self.uri}: the registry at "
            f"{scrub(self._client._registry_uri)} did not answer "
            f"({type(exc).__name__}: {_first_line(exc)}); "
            "check MLFLOW_TRACKING_URI and that the tracking server is up")


def _what_exists(c: Any, name: str, alias: str) -> str:
    """What the registry has instead of the missing prompt or alias, and the command that
    fixes it; empty when the registry cannot say (the error itself is the point)."""
    try:
        if c.get_prompt(name) is None:
            names = sorted(p.name for p in c.search_prompts(max_results=1000))
            close = difflib.get_close_matches(name, names, n=1)
            guess = f" (did you mean {close[0]!r}?)" if close else ""
            return (f"\n  registered prompts: {names[:20] or 'none'}{guess}; `workbench run` "
                    "registers an experiment's prompts under the experiment's name")
        latest = max((int(v.version) for v in c.search_prompt_versions(name)), default=None)
        if latest is None:
            return ""
        # a search leaves the aliases out; each version read names its own
        aliases = {a: n for n in range(1, latest + 1)
                   for a in c.get_prompt_version(name, n).aliases}
        return (f"\n  {name} has versions 1 to {latest} and aliases {aliases or 'none'}; fix: "
                f"`workbench promote {name} --version <N> --alias {alias}`")
    except Exception:  # noqa: BLE001  (a hint must not hide the error it explains)
        return ""


class _Unservable(RegistryError):
    """The registry answered, but with a version this service cannot serve."""


def _first_line(exc: BaseException) -> str:
    text = scrub(str(exc)).strip()  # a tracking URI may carry a password
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _missing_store(uri: str) -> str | None:
    """The path of a SQLite store whose file is gone (None for any other store)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///"):].split("?", 1)[0]
    return path if path and path != ":memory:" and not os.path.exists(path) else None
