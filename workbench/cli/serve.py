"""``workbench serve NAME@ALIAS [--index KB@ALIAS]``: the promoted prompt over HTTP (FastAPI on
uvicorn), with retrieval into ``{{context}}`` when an index is given."""

from __future__ import annotations

import argparse
import ipaddress
import os
from typing import Any

TOKEN_ENV = "WORKBENCH_SERVE_TOKEN"


def register(commands: Any) -> None:
    serve = commands.add_parser(
        "serve", help="serve promoted prompts over HTTP",
        description="Serve prompts:/NAME@ALIAS at POST /v1/prompts/NAME/complete, with "
                    "GET /healthz and the OpenAPI docs at /docs. Binding to anything but "
                    f"loopback needs a bearer token (--token or ${TOKEN_ENV}).")
    serve.add_argument("prompts", nargs="+", metavar="NAME@ALIAS", help="what to serve")
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    serve.add_argument("--token", default=os.environ.get(TOKEN_ENV),
                       help=f"bearer token clients must send (default: ${TOKEN_ENV})")
    serve.add_argument("--refresh", type=float, default=60.0, metavar="SECONDS",
                       help="how soon an alias move is picked up (default: 60)")
    serve.add_argument("--max-body", type=int, default=1_000_000, metavar="BYTES",
                       help="larger request bodies get a 413 (default: 1000000)")
    serve.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                       help="tag on every request's log record, e.g. application=helpdesk")
    serve.add_argument("--max-concurrency", type=int, default=None, metavar="N",
                       help="calls in flight per model; more wait in a queue (default: no "
                            "limit)")
    serve.add_argument("--max-queue", type=int, default=None, metavar="N",
                       help="requests waiting per model beyond --max-concurrency; past it a "
                            "429 with Retry-After (default: as many as --max-concurrency)")
    serve.add_argument("--index", default=None, metavar="NAME@ALIAS",
                       help="an index to search for every request, filling the template's "
                            "{{context}} from its 'query' variable; answers list their "
                            "sources (default: each prompt's serving.index in workbench.yaml)")
    serve.set_defaults(handler=_serve)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def _serve(args: argparse.Namespace) -> int:
    from ..errors import WorkbenchError

    if not is_loopback(args.host) and not args.token:
        raise WorkbenchError(
            f"--host {args.host} is reachable from other machines: give a bearer token with "
            f"--token or ${TOKEN_ENV}, or bind to 127.0.0.1")
    tags = {}
    for item in args.tag:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise WorkbenchError(f"--tag {item!r}: write KEY=VALUE")
        tags[key] = value
    targets = []
    for item in args.prompts:
        name, sep, alias = item.partition("@")
        if not sep or not name or not alias:
            raise WorkbenchError(f"{item!r}: write NAME@ALIAS, e.g. support-triage@production")
        targets.append((name, alias))

    # A dead tracking server must not stall a start or a refresh for minutes of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    import logging

    import uvicorn

    from ..serving.http_app import create_app
    from ..serving.service import PromptService

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    services = [PromptService(name, alias, refresh_s=args.refresh, tags=tags,
                              max_concurrency=args.max_concurrency, max_queue=args.max_queue,
                              **_options(name, args.index))
                for name, alias in targets]
    for service in services:
        searched = f", searching {service.index!r}" if service.index is not None else ""
        print(f"serving prompts:/{service.name}@{service.alias} "
              f"(version {service.prompt.version}{searched}) on http://{args.host}:{args.port}"
              f"/v1/prompts/{service.name}/complete", flush=True)
    app = create_app(services, token=args.token, max_body_bytes=args.max_body)
    uvicorn.run(app, host=args.host, port=args.port,
                access_log=False, log_level="warning")
    return 0


def _options(name: str, index: str | None) -> dict[str, Any]:
    """guard, monitor and index from workbench.yaml; ``--index`` replaces the file's index."""
    from ..serving.config import serving_options

    options = serving_options(name)
    if index is not None:
        options["index"] = index
    return options
