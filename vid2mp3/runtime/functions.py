"""Load ``functions/<name>/main.py`` as functions-framework apps, the way production does."""

from __future__ import annotations

import contextlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

from vid2mp3.bodies import MAX_EVENT_BYTES
from vid2mp3.triggers import ALL_FUNCTIONS, TRIGGERS


def source(name: str) -> Path:
    """The ``main.py`` of function ``name`` (shipped in the wheel as ``vid2mp3.functions``)."""
    path = Path(str(resources.files("vid2mp3.functions") / name / "main.py"))
    if not path.is_file():
        raise LookupError(f"no function {name!r}; known: {', '.join(ALL_FUNCTIONS)}")
    return path


def target(name: str) -> str:
    """The Python name of function ``name``'s entry point (``upload-init`` → ``upload_init``)."""
    return name.replace("-", "_")


#: What is left of a request body after the function answered is read and discarded up to
#: this much, so a client still sending a small body reads the answer instead of a reset.
DRAIN_BYTES = 1024 * 1024
_DRAIN_CHUNK = 64 * 1024


def load(name: str) -> Any:
    """A functions-framework WSGI app for one function."""
    import functions_framework
    from werkzeug.exceptions import HTTPException

    app = functions_framework.create_app(target(name), str(source(name)))
    _bound_body_reading(app, functions_framework.read_request)
    # What Flask or functions-framework refuse before our door runs (a path no route takes,
    # a method, a body that is not a CloudEvent) is answered in our JSON shape too.
    app.register_error_handler(HTTPException, _json_refusal)
    if name in TRIGGERS:
        # functions-framework reads a CloudEvent whole before our handler sees it; werkzeug
        # holds it to this many bytes as it reads (Content-Length or chunked): a 413.
        app.config["MAX_CONTENT_LENGTH"] = MAX_EVENT_BYTES
    return app


def _json_refusal(exc: Any) -> Any:
    import flask

    if exc.code is None or not 400 <= exc.code < 500:
        return exc
    headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
    return flask.Response(
        json.dumps({"error": exc.description or exc.name}),
        status=exc.code,
        headers=headers,
        mimetype="application/json",
    )


def _bound_body_reading(app: Any, read_request: Any) -> None:
    # functions-framework's read_request (an after_request hook) reads the whole body into
    # memory before every answer: a 2 GiB upload refused at byte 1001, or with a wrong token,
    # would be held whole all the same. It is replaced by a bounded drain that keeps nothing.
    hooks = app.after_request_funcs.setdefault(None, [])
    app.after_request_funcs[None] = [_drain if h is read_request else h for h in hooks]


def _drain(response: Any) -> Any:
    import flask

    if response.is_streamed:  # as read_request: the answer may still be reading the body
        return response
    left = DRAIN_BYTES
    # A body that broke off (a short or badly chunked one) has nothing more to give.
    with contextlib.suppress(Exception):
        stream = flask.request.stream
        while left > 0 and (chunk := stream.read(min(_DRAIN_CHUNK, left))):
            left -= len(chunk)
    return response


def load_all(names: tuple[str, ...] = ALL_FUNCTIONS) -> dict[str, Any]:
    return {name: load(name) for name in names}
