"""The doors' shared edge: requests and CloudEvents in, JSON responses out.

Errors are mapped once: a ``Vid2mp3Error`` becomes its ``status`` and ``{"error": message}``;
anything else is a bug, logged with its traceback and answered 500. Flask and CloudEvent SDK
objects stop here; the library below sees plain values and ``vid2mp3.events.Event``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from vid2mp3 import bootstrap, events, logs
from vid2mp3.errors import (
    ConfigError,
    InvalidInput,
    MethodNotAllowed,
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


def error_response(exc: Vid2mp3Error, *, challenge: str = "Bearer") -> Any:
    """``{"error": message}`` with ``exc``'s status; a 401 challenges with the auth scheme
    ``challenge``, a transient error says when to try again."""
    headers = {"Retry-After": "5"} if isinstance(exc, TransientError) else {}
    if exc.status == 401:
        headers["WWW-Authenticate"] = f'{challenge} realm="vid2mp3"'
    return json_response({"error": exc.message}, exc.status, headers)


def _internal_error() -> Any:
    return json_response({"error": "internal error; it has been logged"}, 500)


def _cors(request: Any, response: Any) -> Any:
    origin = request.headers.get("Origin")
    if not origin:
        return response
    # Never build the services here: when building them is what failed, a second attempt
    # would double the wait and turn the JSON error into functions-framework's HTML page.
    allowed = bootstrap.current_config().cors_origins
    if "*" in allowed or origin in allowed:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
        response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, DELETE, OPTIONS"
        response.headers["Access-Control-Max-Age"] = "600"
    return response


def http_errors(view: Callable[[Any], Any] | None = None, *, challenge: str = "Bearer") -> Any:
    """Wrap an HTTP door: CORS, error mapping, and a request log line. ``challenge`` is the
    auth scheme its 401s ask for (``@http_errors(challenge="Basic")`` for login)."""
    if view is None:
        return functools.partial(http_errors, challenge=challenge)

    @functools.wraps(view)
    def wrapper(request: Any) -> Any:
        import flask

        try:
            response = flask.Response(status=204) if request.method == "OPTIONS" else view(request)
        except Vid2mp3Error as exc:
            response = _refused(request, exc, challenge)
        except Exception:
            log.exception("request crashed", extra={"path": request.path})
            response = _internal_error()
        try:
            return _cors(request, response)
        except ConfigError as exc:
            # Without services, CORS reads the environment itself, which may be what is wrong.
            return _refused(request, exc, challenge)

    return wrapper


def _refused(request: Any, exc: Vid2mp3Error, challenge: str) -> Any:
    log.info(
        "request refused",
        extra={"path": request.path, "status": exc.status, "reason": exc.message},
    )
    # A page's own fetch (Sec-Fetch-Mode cors/same-origin) must not get a Basic challenge: the
    # browser would answer it with its native password dialog over the page's own form.
    if challenge == "Basic" and request.headers.get("Sec-Fetch-Mode") in ("cors", "same-origin"):
        challenge = "FormBased"
    return error_response(exc, challenge=challenge)


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
    return events.Event.from_attributes(cloud_event.get_attributes(), cloud_event.data)


def handle_event(
    cloud_event: Any,
    handler: Callable[[Services, events.Event], str],
    accepts: Iterable[str],
) -> None:
    """Run ``handler`` for a received CloudEvent, answering like a broker expects: 2xx done,
    4xx never retry (bad event), 5xx retry later (503 for a transient error, 500 for a bug or
    a bad setting); every refusal is a JSON ``{"error": ...}``."""
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
    except Vid2mp3Error as exc:
        # A bad setting needs an operator; a bad event or a backend that is down does not.
        operator = exc.status >= 500 and not isinstance(exc, TransientError)
        with _event_context(event):
            log.log(
                logging.ERROR if operator else logging.WARNING,
                "event refused",
                extra={"status": exc.status, "reason": exc.message},
            )
        flask.abort(error_response(exc))
    except Exception:
        with _event_context(event):
            log.exception("event handler crashed")
        flask.abort(_internal_error())


def _event_context(event: events.Event | None) -> contextlib.AbstractContextManager[None]:
    return logs.context(event_id=event.id if event else "", job_id=event.subject if event else "")
