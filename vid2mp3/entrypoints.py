"""The doors' shared edge: requests and CloudEvents in, JSON responses out.

Errors are mapped once: a ``Vid2mp3Error`` becomes its ``status`` and ``{"error": message}``;
anything else is a bug, logged with its traceback and answered 500. Flask and CloudEvent SDK
objects stop here; the library below sees plain values and ``vid2mp3.events.Event``.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from vid2mp3 import bootstrap, events, logs
from vid2mp3.errors import (
    InvalidInput,
    MethodNotAllowed,
    PermanentError,
    TransientError,
    Vid2mp3Error,
)
from vid2mp3.services import Services

log = logging.getLogger("vid2mp3.http")

Response = tuple[Any, int, dict[str, str]]


def services() -> Services:
    svc = bootstrap.services()
    logs.configure()
    return svc


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Any:
    import flask

    response = flask.Response(
        json.dumps(body, separators=(",", ":")), status=status, mimetype="application/json"
    )
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def error_response(exc: Vid2mp3Error) -> Any:
    headers = {"Retry-After": "5"} if isinstance(exc, TransientError) else {}
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="vid2mp3"'
    return json_response({"error": exc.message}, exc.status, headers)


def _cors(request: Any, response: Any) -> Any:
    origin = request.headers.get("Origin")
    allowed = bootstrap.services().config.cors_origins
    if origin and ("*" in allowed or origin in allowed):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
        response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, OPTIONS"
        response.headers["Access-Control-Max-Age"] = "600"
    return response


def http_errors(view: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Wrap an HTTP door: CORS, error mapping, and a request log line."""

    @functools.wraps(view)
    def wrapper(request: Any) -> Any:
        import flask

        if request.method == "OPTIONS":
            return _cors(request, flask.Response(status=204))
        try:
            response = view(request)
        except Vid2mp3Error as exc:
            log.info(
                "request refused",
                extra={"path": request.path, "status": exc.status, "reason": exc.message},
            )
            response = error_response(exc)
        except Exception:
            log.exception("request crashed", extra={"path": request.path})
            response = json_response({"error": "internal error; it has been logged"}, 500)
        return _cors(request, response)

    return wrapper


def json_body(request: Any) -> dict[str, Any]:
    """The request's JSON object; raises ``InvalidInput`` saying what is wrong with it."""
    raw = request.get_data(cache=True)
    if not raw:
        raise InvalidInput("the request needs a JSON body")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidInput("the JSON body must be an object")
    return body


def require_method(request: Any, *allowed: str) -> None:
    if request.method not in allowed:
        raise MethodNotAllowed(
            f"method {request.method} is not allowed here; use {' or '.join(allowed)}"
        )


def stream_response(chunks: Iterable[bytes], headers: Mapping[str, str]) -> Any:
    import flask

    return flask.Response(flask.stream_with_context(chunks), headers=dict(headers))


def to_event(cloud_event: Any) -> events.Event:
    """The library's ``Event`` from an SDK CloudEvent (binary or structured mode)."""
    data = cloud_event.data
    if isinstance(data, bytes | str):
        try:
            data = json.loads(data or b"{}")
        except ValueError:
            raise InvalidInput("CloudEvent data is not JSON") from None
    if not isinstance(data, dict):
        raise InvalidInput("CloudEvent data must be a JSON object")
    return events.Event(
        type=cloud_event["type"],
        subject=cloud_event.get("subject") or str(data.get("job_id", "")),
        data=data,
        source=cloud_event["source"],
        id=cloud_event["id"],
        time=cloud_event.get("time") or "",
    )


def handle_event(
    cloud_event: Any,
    handler: Callable[[Services, events.Event], str],
    accepts: Iterable[str],
) -> None:
    """Run ``handler`` for a received CloudEvent, answering like a broker expects: 2xx done,
    4xx never retry (bad event), 503 retry later. Unexpected errors propagate (500, retried)."""
    import flask

    event = None
    try:
        event = to_event(cloud_event)
        accepted = tuple(accepts)
        if event.type not in accepted:
            raise InvalidInput(f"this function handles {', '.join(accepted)}, not {event.type}")
        events.validate(event)
        with logs.context(event_id=event.id, job_id=event.subject, event_type=event.type):
            outcome = handler(services(), event)
            log.info("event handled", extra={"outcome": outcome})
    except (PermanentError, TransientError) as exc:
        with logs.context(
            event_id=event.id if event else "", job_id=event.subject if event else ""
        ):
            log.warning("event refused", extra={"status": exc.status, "reason": exc.message})
        flask.abort(error_response(exc))
