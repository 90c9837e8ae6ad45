"""A local gateway speaking the OpenFaaS gateway API, so ``faas-cli`` works against ``vid2mp3 up``.

Routes (the ones ``faas-cli invoke``, ``list`` and ``describe`` use):

- ``/function/<name>[/<path>]``: any method; path, query string, headers and the streamed body
  reach the function unchanged, with ``/function/<name>`` moved to ``SCRIPT_NAME``.
- ``POST /async-function/<name>[/<path>]``: answered ``202`` with ``X-Call-Id`` at once; the
  function runs on a worker thread and, when the request carried ``X-Callback-Url``, its answer
  is POSTed there with ``X-Call-Id``, ``X-Function-Status``, ``X-Function-Name`` and
  ``X-Duration-Seconds`` (the headers OpenFaaS's queue-worker sends). A callback URL is checked
  like a webhook (``vid2mp3.outbound``): public addresses only unless private targets are
  allowed, the checked address pinned, redirects not followed.
- ``GET /system/functions``, ``GET /system/function/<name>``, ``GET /system/info``, ``GET /healthz``.

``faas-cli`` names a function ``<name>.<namespace>`` (``register.openfaas-fn``); the namespace
suffix is accepted for the one namespace this gateway serves.

A CloudEvent function reached without a CloudEvent (``faas-cli invoke`` sends a plain body as
``text/plain``) is answered 400 naming the headers it needs, instead of functions-framework's
bare error. A CloudEvent the platform did not sign is refused here with 403 before any
function sees it (``verify_event``; the functions check again, as defence in depth): only the
dispatcher, the in-process bus and an operator's ``vid2mp3 events replay`` reach event
functions. Every function is a WSGI app in ``apps``: served from this process (the embedded
default) or a proxy to its own process; the routing and the answers are the same either way.
"""

from __future__ import annotations

import http.client
import io
import logging
import platform
import re
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

from werkzeug.exceptions import ClientDisconnected

from vid2mp3 import __version__, bodies, outbound, triggers
from vid2mp3.errors import Forbidden, InvalidInput, PayloadTooLarge
from vid2mp3.events import Event
from vid2mp3.runtime.wsgi import WsgiApp, json_response

log = logging.getLogger(__name__)

NAMESPACE = "openfaas-fn"
#: The binary-mode headers functions-framework needs to build a CloudEvent.
CLOUDEVENT_HEADERS = ("ce-id", "ce-source", "ce-specversion", "ce-type")
_STRUCTURED_TYPE = "application/cloudevents+json"
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
# Response headers that describe one hop, not the function's answer; never copied to a callback.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "content-length",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_SPOOL_IN_MEMORY = 1024 * 1024
_CHUNK = 64 * 1024
_CALLBACK_TIMEOUT = 30.0


class _Answer:
    """What a function answered on a worker thread: status, headers, body spooled to disk."""

    def __init__(self) -> None:
        self.status = "500 Internal Server Error"
        self.headers: list[tuple[str, str]] = []
        # Closed by the worker once the callback is sent; it outlives this constructor.
        self.body: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], Any]:
        self.status, self.headers = status, list(headers)
        return self.body.write

    @property
    def code(self) -> int:
        return int(self.status.split(" ", 1)[0])

    def size(self) -> int:
        self.body.seek(0, 2)
        size = self.body.tell()
        self.body.seek(0)
        return size


class Gateway:
    """WSGI app routing OpenFaaS gateway paths to ``apps[name]``.

    Args:
        apps: function name → WSGI app.
        index: answers any path the gateway does not own (the web UI), else 404.
        event_functions: the names that take CloudEvents (default: ``triggers.EVENT_FUNCTIONS``).
        async_workers: how many ``/async-function`` calls run at once; more wait their turn.
        verify_event: raises ``Forbidden`` for a CloudEvent the platform did not sign
            (``vid2mp3 up`` passes ``event_signatures.verify``); ``None`` leaves it to the
            functions.
        allow_private_callbacks: let ``X-Callback-Url`` reach private addresses (the
            ``ALLOW_PRIVATE_WEBHOOKS`` switch).
        body_limit: function name → the most bytes an async call's body may have and what
            the 413 says (``proxy.body_limit``); ``None``: no limit.
    """

    def __init__(
        self,
        apps: dict[str, WsgiApp],
        *,
        index: WsgiApp | None = None,
        event_functions: Iterable[str] = triggers.EVENT_FUNCTIONS,
        async_workers: int = 4,
        verify_event: Callable[[Event], None] | None = None,
        allow_private_callbacks: bool = False,
        body_limit: Callable[[str], tuple[int | None, str]] | None = None,
    ) -> None:
        self.body_limit = body_limit
        self.apps = apps
        self.verify_event = verify_event
        self.allow_private_callbacks = allow_private_callbacks
        self.index = index
        self.event_functions = frozenset(event_functions)
        self.async_workers = async_workers
        self.invocations: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        for prefix, handler in (
            ("/function/", self._invoke),
            ("/async-function/", self._invoke_async),
        ):
            if path.startswith(prefix):
                name, _, rest = path.removeprefix(prefix).partition("/")
                try:
                    return handler(environ, start_response, name, rest)
                except ClientDisconnected:
                    # A body shorter than its Content-Length, read here (an async call's spool,
                    # an event's check): the client's fault, as it is in a function.
                    return json_response(
                        start_response,
                        "400 Bad Request",
                        {"error": "the request body is shorter than its Content-Length"},
                    )
        if method in ("GET", "HEAD"):
            if path == "/healthz":
                return json_response(start_response, "200 OK", {"status": "ok"})
            if path == "/system/functions":
                return json_response(start_response, "200 OK", self.describe())
            if path == "/system/info":
                return json_response(start_response, "200 OK", self.info())
            if path.startswith("/system/function/"):
                return self._describe_one(start_response, path.removeprefix("/system/function/"))
        if self.index is not None:
            return self.index(environ, start_response)
        return json_response(
            start_response, "404 Not Found", {"error": f"nothing at {method} {path}"}
        )

    # -- synchronous calls ------------------------------------------------------------------

    def _invoke(
        self, environ: dict[str, Any], start_response: Callable[..., Any], name: str, rest: str
    ) -> Iterable[bytes]:
        name, refusal = self._resolve(name, environ)
        if refusal is None and name in self.event_functions:
            body, refusal = self._checked_event_body(environ, get_body(environ))
            environ = {**environ, "wsgi.input": body, "CONTENT_LENGTH": str(_remaining(body))}
            environ.pop("wsgi.input_terminated", None)
        if refusal is not None:
            return json_response(start_response, *refusal)
        call_id = environ.get("HTTP_X_CALL_ID") or str(uuid.uuid4())
        self._count(name)

        def start_with_call_id(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            if not any(key.lower() == "x-call-id" for key, _ in headers):
                headers = [*headers, ("X-Call-Id", call_id)]
            return start_response(status, headers, exc_info)

        return self.apps[name](
            self._function_environ(environ, name, rest, call_id), start_with_call_id
        )

    # -- asynchronous calls -----------------------------------------------------------------

    def _invoke_async(
        self, environ: dict[str, Any], start_response: Callable[..., Any], name: str, rest: str
    ) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            return json_response(
                start_response,
                "405 Method Not Allowed",
                {"error": "use POST for /async-function/<name>"},
                [("Allow", "POST")],
            )
        name, refusal = self._resolve(name, environ)
        if refusal is not None:
            return json_response(start_response, *refusal)
        callback = environ.get("HTTP_X_CALLBACK_URL", "")
        if callback:
            try:
                self._check_callback(callback)
            except InvalidInput as exc:
                return json_response(start_response, "400 Bad Request", {"error": exc.message})
        call_id = environ.get("HTTP_X_CALL_ID") or str(uuid.uuid4())
        start_time = str(time.time_ns())
        if name in self.event_functions:
            body, refusal = self._checked_event_body(environ, get_body(environ))
            if refusal is not None:
                body.close()
                return json_response(start_response, *refusal)
        else:
            # The caller is answered before the function runs, so the body is read now: to a
            # spool file that stays in memory while small and moves to disk when big.
            most, too_large = self.body_limit(name) if self.body_limit else (None, "")
            try:
                body = _spool_body(environ, most, too_large)
            except PayloadTooLarge as exc:
                return json_response(
                    start_response, "413 Request Entity Too Large", {"error": exc.message}
                )
        call_environ = self._function_environ(environ, name, rest, call_id, body=body)
        call_environ["HTTP_X_START_TIME"] = start_time
        self._count(name)
        self._pool().submit(self._run_async, name, call_environ, callback, call_id)
        log.info("async call queued", extra={"function": name, "call_id": call_id})
        start_response(
            "202 Accepted",
            [
                ("X-Call-Id", call_id),
                ("X-Start-Time", start_time),
                ("Content-Length", "0"),
            ],
        )
        return [b""]

    def _run_async(self, name: str, environ: dict[str, Any], callback: str, call_id: str) -> None:
        started = time.monotonic()
        answer = _Answer()
        try:
            result = self.apps[name](environ, answer.start_response)
            try:
                for chunk in result:
                    answer.body.write(chunk)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except Exception:
            log.exception("async call crashed", extra={"function": name, "call_id": call_id})
            answer.body.seek(0)
            answer.body.truncate()
            answer.start_response(
                "500 Internal Server Error", [("Content-Type", "application/json")]
            )
            answer.body.write(b'{"error": "internal error; it has been logged"}')
        finally:
            environ["wsgi.input"].close()
        duration = time.monotonic() - started
        log.info(
            "async call done",
            extra={"function": name, "call_id": call_id, "status": answer.code},
        )
        if callback:
            self._post_callback(callback, name, call_id, answer, duration)
        answer.body.close()

    def _check_callback(self, url: str) -> None:
        """Raise ``InvalidInput`` unless a callback may reach ``X-Callback-Url``."""
        target = outbound.parse(url, what="X-Callback-Url")
        try:
            outbound.addresses(target, allow_private=self.allow_private_callbacks, what="callback")
        except socket.gaierror:
            raise InvalidInput(f"the callback host {target.host!r} cannot be resolved") from None

    def _post_callback(
        self, url: str, name: str, call_id: str, answer: _Answer, duration: float
    ) -> None:
        headers = {key: value for key, value in answer.headers if key.lower() not in _HOP_BY_HOP}
        headers.update(
            {
                "Content-Length": str(answer.size()),
                "X-Call-Id": call_id,
                "X-Function-Status": str(answer.code),
                "X-Function-Name": name,
                "X-Duration-Seconds": f"{duration:.6f}",
            }
        )
        where = {"function": name, "call_id": call_id, "callback": url}
        try:
            # Checked again now, and the checked address pinned: a DNS answer that changed
            # since the call was taken cannot turn the callback to an internal address.
            target = outbound.parse(url, what="X-Callback-Url")
            pinned = outbound.addresses(
                target, allow_private=self.allow_private_callbacks, what="callback"
            )
            status = outbound.post(target, pinned, answer.body, headers, timeout=_CALLBACK_TIMEOUT)
        except InvalidInput as exc:
            log.warning("callback refused", extra={**where, "reason": exc.message})
            return
        except (OSError, http.client.HTTPException) as exc:
            log.warning("callback failed", extra={**where, "reason": str(exc)})
            return
        if not 200 <= status < 300:
            # A redirect is not followed: it could lead anywhere, internal addresses included.
            log.warning("callback answered", extra={**where, "status": status})

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self.async_workers, thread_name_prefix="async-function"
                )
            return self._executor

    def close(self, *, wait: bool = True) -> None:
        """Stop taking async calls; with ``wait``, finish (and call back) the queued ones."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=wait)

    # -- shared -----------------------------------------------------------------------------

    def _resolve(
        self, name: str, environ: dict[str, Any]
    ) -> tuple[str, tuple[str, dict[str, Any]] | None]:
        """The function's name without a namespace suffix, or the status and body refusing it."""
        name, _, namespace = name.partition(".")
        if namespace and namespace != NAMESPACE:
            return name, (
                "404 Not Found",
                {"error": f"no namespace {namespace!r}; this gateway serves {NAMESPACE!r}"},
            )
        if not _NAME.match(name) or name not in self.apps:
            return name, (
                "404 Not Found",
                {"error": f"no function {name!r}; deployed: {', '.join(sorted(self.apps))}"},
            )
        if name in self.event_functions:
            return name, self._cloudevent_refusal(name, environ)
        return name, None

    def _cloudevent_refusal(
        self, name: str, environ: dict[str, Any]
    ) -> tuple[str, dict[str, Any]] | None:
        content_type = environ.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
        if environ.get("REQUEST_METHOD") == "POST" and content_type == _STRUCTURED_TYPE:
            return None
        missing = [
            h for h in CLOUDEVENT_HEADERS if not environ.get("HTTP_" + h.upper().replace("-", "_"))
        ]
        if environ.get("REQUEST_METHOD") == "POST" and not missing:
            return None
        types = triggers.TRIGGERS.get(name, ())
        body: dict[str, Any] = {
            "error": (
                f"{name} is triggered by CloudEvents"
                + (f" ({', '.join(types)})" if types else "")
                + ": POST one in binary mode with the headers "
                + ", ".join(CLOUDEVENT_HEADERS)
                + " and a JSON body (Content-Type: application/json), or in structured mode"
                + f" with Content-Type: {_STRUCTURED_TYPE}"
            ),
            "required_headers": list(CLOUDEVENT_HEADERS),
            "missing_headers": missing,
            "accepts": list(types),
        }
        if environ.get("REQUEST_METHOD") != "POST":
            return "405 Method Not Allowed", body
        return "400 Bad Request", body

    def _checked_event_body(
        self, environ: dict[str, Any], read: Callable[[int], bytes]
    ) -> tuple[IO[bytes], tuple[str, dict[str, Any]] | None]:
        """The CloudEvent request's body (read, at most ``bodies.MAX_EVENT_BYTES``), and a
        refusal when the platform did not sign the event or it cannot be read as one."""
        raw = read(bodies.MAX_EVENT_BYTES + 1)
        if len(raw) > bodies.MAX_EVENT_BYTES:
            limit = f"{bodies.MAX_EVENT_BYTES // 1024} KiB"
            return io.BytesIO(), (
                "413 Request Entity Too Large",
                {"error": f"a CloudEvent may be at most {limit}"},
            )
        body = io.BytesIO(raw)
        if self.verify_event is None:
            return body, None
        try:
            self.verify_event(_event_of(environ, raw))
        except Forbidden as exc:
            return body, ("403 Forbidden", {"error": exc.message})
        except InvalidInput as exc:
            return body, ("400 Bad Request", {"error": exc.message})
        return body, None

    def _function_environ(
        self,
        environ: dict[str, Any],
        name: str,
        rest: str,
        call_id: str,
        *,
        body: IO[bytes] | None = None,
    ) -> dict[str, Any]:
        prefix = "/async-function/" if body is not None else "/function/"
        call = {
            **environ,
            "SCRIPT_NAME": environ.get("SCRIPT_NAME", "") + prefix + name,
            "PATH_INFO": "/" + rest,
            "HTTP_X_CALL_ID": call_id,
            # Overwritten, never appended to: `vid2mp3 up` makes the functions trust this
            # header (TRUSTED_PROXY_HEADER) as the client's address, so a value the client
            # sent must not reach them.
            "HTTP_X_FORWARDED_FOR": environ.get("REMOTE_ADDR", ""),
        }
        if body is not None:
            # The server's socket is gone by the time the worker runs: hand over only the
            # request's values and the spooled body.
            call = {k: v for k, v in call.items() if isinstance(v, str) or k.startswith("wsgi.")}
            call.pop("wsgi.input_terminated", None)
            call["wsgi.input"] = body
            call["CONTENT_LENGTH"] = str(_remaining(body))
        return call

    def _count(self, name: str) -> None:
        with self._lock:
            self.invocations[name] += 1

    def describe(self) -> list[dict[str, Any]]:
        """The function list in the shape ``faas-cli list`` reads (OpenFaaS ``FunctionStatus``)."""
        return [self._status(name) for name in sorted(self.apps)]

    def _status(self, name: str) -> dict[str, Any]:
        annotations = {}
        if name in triggers.TRIGGERS:
            annotations["topic"] = ",".join(triggers.TRIGGERS[name])
        return {
            "name": name,
            "image": f"vid2mp3-{name}:local",
            "namespace": NAMESPACE,
            "envProcess": "",
            "invocationCount": self.invocations[name],
            "replicas": 1,
            "availableReplicas": 1,
            "labels": {"com.vid2mp3.function": name},
            "annotations": annotations,
        }

    def _describe_one(self, start_response: Callable[..., Any], name: str) -> list[bytes]:
        name = name.strip("/").partition(".")[0]
        if name not in self.apps:
            return json_response(
                start_response, "404 Not Found", {"error": f"no function {name!r}"}
            )
        return json_response(start_response, "200 OK", self._status(name))

    def info(self) -> dict[str, Any]:
        """``GET /system/info`` as ``faas-cli version`` reads it."""
        version = {"release": __version__, "sha": "", "commit_message": ""}
        return {
            "provider": {"provider": "vid2mp3 up", "orchestration": "local", "version": version},
            "version": version,
            "arch": platform.machine(),
        }


def get_body(environ: dict[str, Any]) -> Callable[[int], bytes]:
    """A reader of the request body that stops where it ends (chunked or not)."""
    from werkzeug.wsgi import get_input_stream

    return get_input_stream(environ).read


def _event_of(environ: dict[str, Any], raw: bytes) -> Event:
    """The CloudEvent of a request, binary or structured mode; raises ``InvalidInput``."""
    content_type = environ.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
    if content_type == _STRUCTURED_TYPE:
        document = bodies.parse_json(raw)
        if not isinstance(document, dict):
            raise InvalidInput("the structured CloudEvent is not a JSON object")
        return Event.from_attributes(*_structured(document))
    attributes = {
        key.removeprefix("HTTP_CE_").lower(): value
        for key, value in environ.items()
        if key.startswith("HTTP_CE_")
    }
    return Event.from_attributes(attributes, raw)


def _structured(document: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    attributes = {k: v for k, v in document.items() if k not in ("data", "data_base64")}
    return attributes, document.get("data") or {}


def _spool_body(environ: dict[str, Any], most: int | None, too_large: str) -> IO[bytes]:
    """The request body in a spool file, at most ``most`` bytes (``PayloadTooLarge`` past it,
    the spool removed)."""
    from werkzeug.wsgi import get_input_stream

    stream: Any = get_input_stream(environ)
    if most is not None:
        length = environ.get("CONTENT_LENGTH", "")
        bodies.check_length(int(length) if length.isdigit() else None, most, too_large)
        stream = bodies.BoundedReader(stream, most, too_large)
    # Handed to the worker thread, which closes it after the call.
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115
    try:
        shutil.copyfileobj(stream, spool, _CHUNK)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool


def _remaining(body: IO[bytes]) -> int:
    here = body.tell()
    body.seek(0, 2)
    end = body.tell()
    body.seek(here)
    return end - here
