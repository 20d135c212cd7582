"""One error tree: litellm's exceptions mapped once, and every workbench error a WorkbenchError."""

import inspect
import pickle

import httpx
import litellm
import pytest

from workbench import Experiment, errors
from workbench.errors import (
    ConnectionFailed,
    ContextWindowExceeded,
    GatewayError,
    ProviderError,
    RateLimited,
    Timeout,
    Unauthorized,
    WorkbenchError,
)
from workbench.gateway.config import ModelConfig
from workbench.gateway.failures import mapped

from .llm_server import Faults

CONFIG = ModelConfig(model="openai/test-model")
KEY = "sk-abcdefghijklmnopqrstuvwx"


def _response(status: int) -> httpx.Response:
    return httpx.Response(status, request=httpx.Request("POST", "http://provider/v1"))


def _made(cls: type, status: int | None = None) -> Exception:
    message = f"the provider says no (key {KEY})"
    common = {"message": message, "llm_provider": "openai", "model": "test-model"}
    if cls is litellm.APIError:
        return cls(status_code=status, **common)
    if cls in (litellm.Timeout, litellm.APIConnectionError):
        return cls(**common)
    return cls(**common, response=_response(status))


# litellm's class, the HTTP status its response had, the workbench class, the status kept
CASES = [
    (litellm.RateLimitError, 429, RateLimited, 429),
    (litellm.AuthenticationError, 401, Unauthorized, 401),
    (litellm.PermissionDeniedError, 403, Unauthorized, 403),
    (litellm.ContextWindowExceededError, 400, ContextWindowExceeded, 400),
    (litellm.BadRequestError, 400, ProviderError, 400),
    (litellm.NotFoundError, 404, ProviderError, 404),
    (litellm.UnprocessableEntityError, 422, ProviderError, 422),
    (litellm.InternalServerError, 500, ProviderError, 500),
    (litellm.BadGatewayError, 502, ProviderError, 502),
    (litellm.ServiceUnavailableError, 503, ProviderError, 503),
    (litellm.APIError, 500, ProviderError, 500),
    (litellm.Timeout, None, Timeout, None),
    (litellm.APIConnectionError, None, ConnectionFailed, None),
]


@pytest.mark.parametrize(("source", "sent", "expected", "status"), CASES,
                         ids=[case[0].__name__ for case in CASES])
def test_each_litellm_exception_maps_to_one_workbench_error(source, sent, expected, status):
    exc = _made(source, sent)
    error = mapped(exc, CONFIG, retries=2)
    assert type(error) is expected
    assert (error.model, error.status, error.retries) == ("openai/test-model", status, 2)
    assert isinstance(error, GatewayError) and isinstance(error, WorkbenchError)
    text = str(error)
    assert text.startswith(f"openai/test-model: {source.__name__}") and "(after 2 retries)" in text
    assert KEY not in text and "[redacted]" in text  # the scrubbing is kept
    # the Router's own count is read from the exception when the caller has none
    exc.num_retries = 3
    assert mapped(exc, CONFIG).retries == 3
    assert mapped(error, CONFIG) is error  # mapped once: a workbench error is passed on


def test_every_exception_class_in_workbench_errors_is_a_workbench_error():
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass)
               if issubclass(c, BaseException) and not issubclass(c, Warning)
               and c.__module__ == errors.__name__]
    assert {"GatewayError", "RateLimited", "Unauthorized", "ContextWindowExceeded",
            "Timeout", "ConnectionFailed", "ProviderError"} <= {c.__name__ for c in classes}
    assert all(issubclass(c, WorkbenchError) for c in classes)


def test_gateway_errors_cross_a_process_boundary_with_their_attributes():
    error = RateLimited("m: RateLimitError (429): slow down", model="m", status=429, retries=4)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is RateLimited and str(copy) == str(error)
    assert (copy.model, copy.status, copy.retries) == ("m", 429, 4)


def test_the_old_name_of_the_context_window_error_still_works():
    from workbench.gateway.client import ContextWindowError

    assert ContextWindowError is ContextWindowExceeded


ROWS = [{"id": f"e{i}", "ticket": f"{marker} ticket {i}", "label": "negative"}
        for i, marker in enumerate(["fine", "SLOW", "NOKEY", "BOOM", "HUGE", "fine"])]
EXPECTED = {"e0": None, "e1": "RateLimited", "e2": "Unauthorized", "e3": "ProviderError",
            "e4": "ContextWindowExceeded", "e5": None}


@pytest.mark.parametrize("workers", [1, 2])
def test_each_failed_row_names_its_error_type(make_experiment, llm_server, workers):
    llm_server.faults = Faults(by_content={"SLOW": "rate_limit", "NOKEY": "unauthorized",
                                           "BOOM": "server_error", "HUGE": "context_window"})
    folder = make_experiment(rows=ROWS, prompts={"bare": {"template": "{{ticket}}"}},
                             baseline="bare")
    results = Experiment.from_yaml(folder).run(progress=False, track=False, workers=workers)
    frame = results.frame.set_index("example_id")
    kinds = {k: v if isinstance(v, str) else None for k, v in frame["error_type"].items()}
    assert kinds == EXPECTED
    assert frame["error"].notna().to_dict() == {k: v is not None for k, v in EXPECTED.items()}
    assert "(429)" in frame.loc["e1", "error"] and "(401)" in frame.loc["e2", "error"]


@pytest.mark.parametrize(("cause", "expected"), [(httpx.ConnectError("refused"), ConnectionFailed),
                                                 (httpx.ReadTimeout("slow"), Timeout)])
def test_a_500_litellm_made_from_a_failed_connection_is_no_provider_error(cause, expected):
    exc = _made(litellm.InternalServerError, 500)  # what litellm raises for a refused port
    exc.__cause__ = cause
    error = mapped(exc, CONFIG)
    assert type(error) is expected and error.status is None
    # no server answered: the row must not show the 500 litellm made up
    assert "(500)" not in str(error)
    assert str(error).startswith("openai/test-model: InternalServerError (no response: ")


def test_the_cli_counts_failed_calls_by_type(capsys):
    import pandas as pd

    from workbench.cli.run import _print_errors
    from workbench.results import Results

    frame = pd.DataFrame({"variant": "v", "cached": False,
                          "error": ["m: RateLimitError (429): slow"] * 2
                          + ["m: Timeout: late", None],
                          "error_type": ["RateLimited", "RateLimited", "Timeout", None]})
    _print_errors(Results(frame, metrics={}, primary="x"))
    assert capsys.readouterr().out.splitlines()[0] == (
        "failed calls: 3 of 4 (RateLimited 2, Timeout 1)")
