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

from vid2mp3 import bodies, bootstrap, event_signatures, events, logs
from vid2mp3.errors import (
    ConfigError,
    InvalidInput,
    MethodNotAllowed,
    TooManyRequests,
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
    if isinstance(exc, TooManyRequests):
        headers["Retry-After"] = str(exc.retry_after)
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
    """The request's JSON object; raises ``InvalidInput`` saying what is wrong with it, or
    ``PayloadTooLarge`` past ``bodies.MAX_JSON_BYTES`` (checked before the body is parsed)."""
    raw = bodies.read_capped(
        request_body(request), request.content_length, bodies.MAX_JSON_BYTES, "a JSON body"
    )
    if not raw:
        raise InvalidInput("the request needs a JSON body")
    body = bodies.parse_json(raw)
    if not isinstance(body, dict):
        raise InvalidInput("the JSON body must be an object")
    return body


class _RequestBody:
    """A request's body stream whose broken connection is the client's 400, not our 500."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def read(self, size: int | None = -1) -> bytes:
        from werkzeug.exceptions import ClientDisconnected

        try:
            data: bytes = self._stream.read(-1 if size is None else size)
        except (ClientDisconnected, OSError):
            # A body shorter than its Content-Length, a bad chunk, a dropped connection.
            raise InvalidInput(
                "the request body ended before it was complete (the connection broke or the "
                "body is shorter than its Content-Length); send it again"
            ) from None
        return data

    def readable(self) -> bool:
        return True


def request_body(request: Any) -> Any:
    """The body of ``request`` as a binary stream to read in chunks (``read(size)``); a body
    that breaks off raises ``InvalidInput``."""
    return _RequestBody(request.stream)


def authorization(request: Any) -> Any:
    """``request.authorization`` (werkzeug's parsed ``Authorization`` header), or ``None`` when
    it is absent or cannot be parsed: werkzeug raises ``ValueError`` for Basic credentials
    that are not ASCII, which would otherwise be a 500."""
    try:
        return request.authorization
    except ValueError:
        return None


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


def signed_event(request: Any) -> events.Event:
    """The CloudEvent an HTTP request carries (binary or structured mode, at most
    ``bodies.MAX_EVENT_BYTES``); raises ``Forbidden`` unless the platform signed it, and
    ``InvalidInput`` / ``PayloadTooLarge`` for a body that is not one."""
    from cloudevents.http import from_http

    raw = bodies.read_capped(
        request_body(request), request.content_length, bodies.MAX_EVENT_BYTES, "a CloudEvent"
    )
    try:
        event = to_event(from_http(request.headers, raw))
    except Vid2mp3Error:
        raise
    except Exception as exc:  # the SDK's own errors, of several kinds
        raise InvalidInput(f"the body is not a CloudEvent: {exc}") from None
    event_signatures.verify(event, services().config)
    return event


def handle_event(
    cloud_event: Any,
    handler: Callable[[Services, events.Event], str],
    accepts: Iterable[str],
) -> None:
    """Run ``handler`` for a received CloudEvent, answering like a broker expects: 2xx done,
    4xx never retry (bad event), 5xx retry later (503 for a transient error, 500 for a bug or
    a bad setting); every refusal is a JSON ``{"error": ...}``. An event the platform did not
    sign is refused (403) before anything else looks at it."""
    import flask

    event = None
    try:
        event = to_event(cloud_event)
        svc = services()
        event_signatures.verify(event, svc.config)
        accepted = tuple(accepts)
        if event.type not in accepted:
            raise InvalidInput(f"this function handles {', '.join(accepted)}, not {event.type}")
        events.validate(event)
        with logs.context(event_id=event.id, job_id=event.subject, event_type=event.type):
            outcome = handler(svc, event)
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
