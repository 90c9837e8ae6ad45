"""The local gateway speaks the OpenFaaS gateway API, checked with faas-cli's exact requests.

The gateway runs on a werkzeug server in a thread on a free 127.0.0.1 port, in front of the real
functions (embedded services). Requests are written to the socket byte for byte as faas-cli
0.17 sends them through Go's net/http: ``/function/<name>.<namespace>``, ``User-Agent`` right
after ``Host``, ``Content-Length``, the other headers in sorted order, ``Accept-Encoding: gzip``
last, and ``Content-Type: text/plain`` unless ``--content-type`` says otherwise.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import http.client
import json
import queue
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.conftest import signed
from tests.fixtures.net import Served
from vid2mp3 import event_signatures, events, triggers
from vid2mp3.bodies import MAX_EVENT_BYTES
from vid2mp3.local.gateway import CLOUDEVENT_HEADERS, Gateway
from vid2mp3.services import Services

FAAS_CLI_USER_AGENT = "faas-cli/0.17.1 (openfaas; linux; amd64)"
WAIT = 30.0  # seconds a test waits for a callback before it fails; never a timing assertion


def faas_cli_request(
    port: int,
    name: str,
    body: bytes = b"",
    *,
    method: str = "POST",
    content_type: str = "text/plain",
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    async_: bool = False,
    namespace: str = "openfaas-fn",
) -> http.client.HTTPResponse:
    """``faas-cli invoke NAME [-a] [-m METHOD] [-H k=v] [--query k=v]`` with ``body`` on stdin."""
    suffix = f".{namespace}" if namespace else ""
    path = f"/{'async-function' if async_ else 'function'}/{name}{suffix}"
    if query:
        path += "?" + urlencode(sorted(query.items()))
    # Go writes Host, then User-Agent, then Content-Length (omitted for an empty GET), then the
    # request's headers sorted by name, then the transport's Accept-Encoding.
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        f"User-Agent: {FAAS_CLI_USER_AGENT}",
    ]
    if body or method not in ("GET", "HEAD", "DELETE"):
        lines.append(f"Content-Length: {len(body)}")
    for key, value in sorted({"Content-Type": content_type, **(headers or {})}.items()):
        lines.append(f"{key}: {value}")
    lines.append("Accept-Encoding: gzip")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    sock.sendall(raw)
    response = http.client.HTTPResponse(sock, method=method)
    response.begin()
    response.body = response.read()  # type: ignore[attr-defined]
    sock.close()
    return response


class Callbacks:
    """An HTTP server recording every request made to it (the ``X-Callback-Url`` receiver)."""

    def __init__(self) -> None:
        received: queue.Queue[tuple[str, dict[str, str], bytes]] = queue.Queue()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                received.put((self.path, dict(self.headers.items()), self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.received = received
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def next(self) -> tuple[str, dict[str, str], bytes]:
        return self.received.get(timeout=WAIT)

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join()


@pytest.fixture
def gateway(services: Services, apps: dict[str, Any]) -> Iterator[Gateway]:
    # As ``vid2mp3 up`` builds it, except that callbacks may reach the loopback receiver.
    gw = Gateway(
        apps,
        verify_event=functools.partial(event_signatures.verify, config=services.config),
        allow_private_callbacks=True,
    )
    yield gw
    gw.close()


@pytest.fixture
def served(gateway: Gateway) -> Iterator[Served]:
    server = Served(gateway)
    yield server
    server.close()


@pytest.fixture
def callbacks() -> Iterator[Callbacks]:
    receiver = Callbacks()
    yield receiver
    receiver.close()


def as_json(response: http.client.HTTPResponse) -> Any:
    return json.loads(response.body)  # type: ignore[attr-defined]


def register_body(email: str) -> bytes:
    return json.dumps({"email": email, "password": "correct horse"}).encode()


# -- synchronous invocation --------------------------------------------------------------------


def test_invoke_register_login_validate_as_faas_cli(served: Served) -> None:
    created = faas_cli_request(served.port, "register", register_body("ada@example.com"))
    assert created.status == 201, created.body  # type: ignore[attr-defined]
    assert as_json(created)["email"] == "ada@example.com"
    assert created.getheader("X-Call-Id")

    basic = base64.b64encode(b"ada@example.com:correct horse").decode()
    login = faas_cli_request(served.port, "login", headers={"Authorization": f"Basic {basic}"})
    assert login.status == 200, login.body  # type: ignore[attr-defined]
    token = as_json(login)["token"]

    claims = faas_cli_request(
        served.port, "validate", method="GET", headers={"Authorization": f"Bearer {token}"}
    )
    assert claims.status == 200, claims.body  # type: ignore[attr-defined]
    assert as_json(claims)["sub"] == as_json(created)["id"]


def test_function_errors_come_back_unchanged(served: Served) -> None:
    response = faas_cli_request(served.port, "register", b"not json")
    assert response.status == 400
    assert "JSON" in as_json(response)["error"]


def test_subpath_moves_to_path_info_and_call_id_is_shared() -> None:
    seen: dict[str, Any] = {}

    def echo(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        seen.update(
            script=environ["SCRIPT_NAME"],
            path=environ["PATH_INFO"],
            query=environ["QUERY_STRING"],
            call_id=environ.get("HTTP_X_CALL_ID"),
        )
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"echoed"]

    server = Served(Gateway({"echo": echo}, event_functions=()))
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=WAIT)
        conn.request("GET", "/function/echo/sub/path?x=1")
        response = conn.getresponse()
        assert response.read() == b"echoed"
        conn.close()
    finally:
        server.close()
    assert response.status == 200
    assert seen["script"] == "/function/echo"
    assert seen["path"] == "/sub/path"
    assert seen["query"] == "x=1"
    assert seen["call_id"] == response.getheader("X-Call-Id")


def test_put_body_query_and_header_forwarded() -> None:
    seen: dict[str, Any] = {}

    def echo(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        seen.update(
            method=environ["REQUEST_METHOD"],
            query=environ["QUERY_STRING"],
            header=environ.get("HTTP_X_TRACE"),
            content_type=environ.get("CONTENT_TYPE"),
            body=environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)),
        )
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    server = Served(Gateway({"echo": echo}, event_functions=()))
    try:
        body = bytes(range(256)) * 1000
        response = faas_cli_request(
            server.port,
            "echo",
            body,
            method="PUT",
            content_type="application/octet-stream",
            headers={"X-Trace": "abc"},
            query={"b": "2", "a": "1"},
        )
    finally:
        server.close()
    assert response.status == 200
    assert seen == {
        "method": "PUT",
        "query": "a=1&b=2",
        "header": "abc",
        "content_type": "application/octet-stream",
        "body": body,
    }


def test_unknown_function_and_namespace_are_404(served: Served) -> None:
    missing = faas_cli_request(served.port, "nope")
    assert missing.status == 404
    assert "register" in as_json(missing)["error"]
    other = faas_cli_request(served.port, "register", namespace="dev")
    assert other.status == 404
    assert "dev" in as_json(other)["error"]


# -- CloudEvent functions --------------------------------------------------------------------


@pytest.mark.parametrize("name", triggers.EVENT_FUNCTIONS)
@pytest.mark.parametrize("async_", [False, True])
def test_cloudevent_function_without_cloudevent_is_400_naming_headers(
    served: Served, name: str, async_: bool
) -> None:
    response = faas_cli_request(served.port, name, b'{"job_id": "x"}', async_=async_)
    assert response.status == 400
    body = as_json(response)
    for header in ("ce-id", "ce-source", "ce-specversion", "ce-type"):
        assert header in body["error"]
    assert body["required_headers"] == list(CLOUDEVENT_HEADERS)
    assert body["missing_headers"] == list(CLOUDEVENT_HEADERS)
    assert body["accepts"] == list(triggers.TRIGGERS.get(name, ()))


def test_cloudevent_through_faas_cli_headers_reaches_the_function(served: Served) -> None:
    event = signed(
        events.Event(
            type=events.JOB_FAILED,
            subject="no-such-job",
            data={"job_id": "no-such-job", "user_id": "u", "stage": "convert"},  # reason missing
        )
    )
    headers = {k: v for k, v in event.binary_headers().items() if k != "Content-Type"}
    response = faas_cli_request(
        served.port,
        "notify",
        json.dumps(event.data).encode(),
        content_type="application/json",
        headers=headers,
    )
    # The function itself answered: the event's data is checked against its schema.
    assert response.status == 400
    assert "reason" in as_json(response)["error"]


# -- asynchronous invocation -------------------------------------------------------------------


def test_async_invoke_answers_202_and_posts_result_to_callback(
    served: Served, callbacks: Callbacks
) -> None:
    response = faas_cli_request(
        served.port,
        "register",
        register_body("bob@example.com"),
        async_=True,
        headers={"X-Callback-Url": callbacks.url + "/done"},
    )
    assert response.status == 202
    assert response.body == b""  # type: ignore[attr-defined]
    call_id = response.getheader("X-Call-Id")
    assert call_id

    path, headers, body = callbacks.next()
    assert path == "/done"
    assert headers["X-Call-Id"] == call_id
    assert headers["X-Function-Status"] == "201"
    assert headers["X-Function-Name"] == "register"
    assert float(headers["X-Duration-Seconds"]) >= 0
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body)["email"] == "bob@example.com"

    # The user exists: the function really ran.
    again = faas_cli_request(served.port, "register", register_body("bob@example.com"))
    assert again.status == 409


def test_async_cloudevent_result_carries_the_function_status(
    served: Served, callbacks: Callbacks
) -> None:
    event = signed(events.Event(type=events.VIDEO_UPLOADED, subject="j", data={"job_id": "j"}))
    headers = {k: v for k, v in event.binary_headers().items() if k != "Content-Type"}
    response = faas_cli_request(
        served.port,
        "convert",
        json.dumps(event.data).encode(),
        async_=True,
        content_type="application/json",
        headers={**headers, "X-Callback-Url": callbacks.url},
    )
    assert response.status == 202
    _, received, body = callbacks.next()
    assert received["X-Function-Status"] == "400"
    assert received["X-Function-Name"] == "convert"
    assert "user_id" in json.loads(body)["error"]


def test_async_crash_is_reported_as_500(callbacks: Callbacks) -> None:
    def broken(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        raise RuntimeError("boom")

    gateway = Gateway({"broken": broken}, event_functions=(), allow_private_callbacks=True)
    server = Served(gateway)
    try:
        response = faas_cli_request(
            server.port, "broken", b"x", async_=True, headers={"X-Callback-Url": callbacks.url}
        )
        assert response.status == 202
        _, headers, body = callbacks.next()
    finally:
        server.close()
        gateway.close()
    assert headers["X-Function-Status"] == "500"
    assert "internal error" in json.loads(body)["error"]


def test_async_without_callback_still_runs(served: Served, gateway: Gateway) -> None:
    response = faas_cli_request(
        served.port, "register", register_body("cy@example.com"), async_=True
    )
    assert response.status == 202
    gateway.close()  # waits for queued calls
    again = faas_cli_request(served.port, "register", register_body("cy@example.com"))
    assert again.status == 409


def test_async_refuses_bad_callback_and_non_post(served: Served) -> None:
    bad = faas_cli_request(
        served.port,
        "register",
        register_body("di@example.com"),
        async_=True,
        headers={"X-Callback-Url": "file:///etc/passwd"},
    )
    assert bad.status == 400
    assert "X-Callback-Url" in as_json(bad)["error"]
    get = faas_cli_request(served.port, "register", method="GET", async_=True)
    assert get.status == 405


# -- the trust boundary (issue 10) --------------------------------------------------------------


@pytest.mark.parametrize("async_", [False, True])
@pytest.mark.parametrize("mode", ["binary", "structured", "forged signature"])
def test_an_outsiders_cloudevent_is_refused_before_any_function(
    services: Services, apps: dict[str, Any], mode: str, async_: bool
) -> None:
    calls: list[str] = []

    def spy(name: str) -> Any:
        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            calls.append(name)
            return apps[name](environ, start_response)

        return app

    gateway = Gateway(
        {name: spy(name) for name in apps},
        verify_event=functools.partial(event_signatures.verify, config=services.config),
    )
    server = Served(gateway)
    event = events.Event(
        type=events.JOB_FAILED,
        subject="victim",
        data={"job_id": "victim", "user_id": "u", "stage": "convert", "reason": "gotcha"},
    )
    if mode == "structured":
        body, content_type, headers = event.to_json().encode(), "application/cloudevents+json", {}
    else:
        if mode == "forged signature":
            event = dataclasses.replace(event, signature="v1=" + "0" * 64)
        headers = {k: v for k, v in event.binary_headers().items() if k != "Content-Type"}
        body, content_type = json.dumps(event.data).encode(), "application/json"
    try:
        for name in ("notify", "dead-letter/convert"):
            response = faas_cli_request(
                server.port,
                name,
                body,
                content_type=content_type,
                headers=headers,
                async_=async_,
                namespace="",
            )
            assert response.status == 403, (name, response.body)  # type: ignore[attr-defined]
            assert "vid2mp3signature" in as_json(response)["error"]
    finally:
        server.close()
        gateway.close()
    assert calls == []


def test_a_signed_event_passes_and_a_changed_one_does_not(served: Served) -> None:
    event = signed(events.Event(type=events.VIDEO_UPLOADED, subject="j", data={"job_id": "j"}))
    headers = {k: v for k, v in event.binary_headers().items() if k != "Content-Type"}
    for data, status in (({"job_id": "j"}, 400), ({"job_id": "other"}, 403)):
        response = faas_cli_request(
            served.port,
            "convert",
            json.dumps(data).encode(),
            content_type="application/json",
            headers=headers,
        )
        # 400: the function itself looked at it (the schema wants more); 403: refused unseen.
        assert response.status == status, response.body  # type: ignore[attr-defined]


def test_an_event_body_beyond_the_cap_is_413(served: Served) -> None:
    event = signed(events.Event(type=events.VIDEO_UPLOADED, subject="j", data={"job_id": "j"}))
    headers = {k: v for k, v in event.binary_headers().items() if k != "Content-Type"}
    response = faas_cli_request(
        served.port,
        "convert",
        b"{" + b" " * MAX_EVENT_BYTES + b"}",
        content_type="application/json",
        headers=headers,
    )
    assert response.status == 413


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/x",
        "http://[::1]:9/x",
        "http://[64:ff9b::7f00:1]/x",
        "http://169.254.169.254/latest/meta-data",
        "http://localhost:9/x",
    ],
)
def test_async_callbacks_to_private_addresses_are_refused(
    services: Services, apps: dict[str, Any], url: str
) -> None:
    gateway = Gateway(apps)  # the default: the private-target switch off
    server = Served(gateway)
    try:
        response = faas_cli_request(
            server.port,
            "register",
            register_body("cb@example.com"),
            async_=True,
            headers={"X-Callback-Url": url},
        )
    finally:
        server.close()
        gateway.close()
    assert response.status == 400
    assert "public address" in as_json(response)["error"]
    # Refused before running: the account was not created.
    with services.uow() as uow:
        assert uow.users.by_email("cb@example.com") is None


def test_async_callbacks_do_not_follow_redirects(
    served: Served, gateway: Gateway, callbacks: Callbacks
) -> None:
    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(307)
            self.send_header("Location", callbacks.url + "/internal")
            self.send_header("Content-Length", "0")
            self.end_headers()
            hits.put(self.path)

        def log_message(self, *args: Any) -> None:
            pass

    hits: queue.Queue[str] = queue.Queue()
    redirector = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    thread = threading.Thread(target=redirector.serve_forever, daemon=True)
    thread.start()
    try:
        response = faas_cli_request(
            served.port,
            "register",
            register_body("rd@example.com"),
            async_=True,
            headers={"X-Callback-Url": f"http://127.0.0.1:{redirector.server_address[1]}/cb"},
        )
        assert response.status == 202
        assert hits.get(timeout=WAIT) == "/cb"
    finally:
        redirector.shutdown()
        thread.join()
    gateway.close()  # waits until every queued call and its callback are done
    assert callbacks.received.empty()  # the 307 was not followed


# -- system endpoints -----------------------------------------------------------------------------


def test_system_functions_lists_every_function_as_faas_cli_reads_it(served: Served) -> None:
    faas_cli_request(served.port, "register", register_body("ed@example.com"))
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=WAIT)
    conn.request("GET", "/system/functions", headers={"User-Agent": FAAS_CLI_USER_AGENT})
    response = conn.getresponse()
    listed = json.loads(response.read())
    conn.close()
    assert response.status == 200
    assert {f["name"] for f in listed} == set(triggers.ALL_FUNCTIONS)
    by_name = {f["name"]: f for f in listed}
    for name, function in by_name.items():
        assert isinstance(function["invocationCount"], int)
        assert function["replicas"] == function["availableReplicas"] == 1
        assert function["namespace"] == "openfaas-fn"
        assert isinstance(function["labels"], dict) and isinstance(function["annotations"], dict)
        topic = function["annotations"].get("topic")
        assert topic == (",".join(triggers.TRIGGERS[name]) if name in triggers.TRIGGERS else None)
    assert by_name["register"]["invocationCount"] == 1


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/healthz", 200),
        ("/system/info", 200),
        ("/system/function/convert", 200),
        ("/system/function/nope", 404),
        ("/nowhere", 404),
    ],
)
def test_other_gateway_paths(served: Served, path: str, status: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=WAIT)
    conn.request("GET", path)
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    assert response.status == status
    if path == "/system/function/convert":
        assert body["name"] == "convert"
    if status == 404:
        assert "error" in body


def test_an_async_body_past_the_functions_limit_is_413_and_not_run(
    services: Services, apps: dict[str, Any]
) -> None:
    from vid2mp3.local.proxy import body_limit

    gateway = Gateway(apps, body_limit=functools.partial(body_limit, config=services.config))
    server = Served(gateway)
    big = json.dumps({"email": "big@example.com", "password": "x" * 70_000}).encode()
    try:
        response = faas_cli_request(server.port, "register", big, async_=True)
    finally:
        server.close()
        gateway.close()
    assert response.status == 413
    assert "at most" in as_json(response)["error"]
    with services.uow() as uow:
        assert uow.users.by_email("big@example.com") is None


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"specversion": "1.0", "id": "\xff\xfe"}', "application/cloudevents+json"),
        (b"[" * 100_000, "application/cloudevents+json"),
        (b"[" * 100_000, "application/json"),
    ],
)
def test_an_unreadable_cloudevent_is_a_json_400_at_the_gateway(
    served: Served, body: bytes, content_type: str
) -> None:
    headers = {
        "ce-id": "x",
        "ce-source": "/attacker",
        "ce-specversion": "1.0",
        "ce-type": events.JOB_FAILED,
    }
    response = faas_cli_request(
        served.port, "notify", body, content_type=content_type, headers=headers
    )
    assert response.status == 400
    assert isinstance(as_json(response)["error"], str)
