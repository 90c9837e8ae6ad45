"""Fuzz the HTTP doors: generated requests through ``vid2mp3 up``'s gateway (functions in this
process) never get a 5xx, and every 4xx is JSON ``{"error": "..."}`` (issue 10, point 10).

Methods, paths (percent-encoded bytes, dot segments, real and made-up job ids), headers
(Authorization garbage and a valid session token, Content-Type, Content-Length, CloudEvent
headers), and JSON or non-JSON bodies, chunked or counted. Bounded for CI: a fixed number of
examples per test, derandomized, no deadline, no example database written to the repository.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import Client

from tests.conftest import make_config
from vid2mp3 import bootstrap
from vid2mp3.local.server import build_gateway
from vid2mp3.triggers import EVENT_FUNCTIONS, HTTP_FUNCTIONS

PASSWORD = "correct horse battery"
BOUNDED = settings(
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass
class Target:
    client: Client
    token: str
    job_id: str


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """The gateway of ``vid2mp3 up`` with a user, their session token and a job of theirs."""
    home: Path = tmp_path_factory.mktemp("fuzz") / "home"
    gateway, services = build_gateway(make_config(home, ALLOW_PRIVATE_WEBHOOKS="1"))
    client = Client(gateway)
    r = client.post("/function/register", json={"email": "fuzz@example.com", "password": PASSWORD})
    assert r.status_code == 201, r.get_data()
    r = client.post("/function/login", auth=("fuzz@example.com", PASSWORD))
    token = r.get_json()["token"]
    r = client.post(
        "/function/upload-init",
        json={"filename": "clip.mp4", "size": 1000, "content_type": "video/mp4"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 201, r.get_data()
    yield Target(client, token, r.get_json()["job_id"])
    gateway.close(wait=True)
    bootstrap.install(None)
    services.sink.stop()
    services.db.close()


# -- strategies --------------------------------------------------------------------------------

_ASCII = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
_LATIN1 = st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")
# Weighted towards what reaches a function: most requests call an HTTP function by name.
FUNCTION_NAMES = st.one_of(
    st.sampled_from(HTTP_FUNCTIONS),
    st.sampled_from(HTTP_FUNCTIONS),
    st.sampled_from(
        [*EVENT_FUNCTIONS, "", "nope", "jobs.openfaas-fn", "jobs.elsewhere", "JOBS", "%6aobs"]
    ),
)
PREFIXES = st.sampled_from(
    ["/function/"] * 6 + ["/async-function/", "/system/function/", "/", "/function//"]
)
SEGMENTS = st.one_of(
    st.sampled_from(
        ["upload", "complete", "download", "{job}", "..", ".", "", "%00", "%ff%fe", "%2e%2e"]
    ),
    st.sampled_from(["%2f", "%c0%ae", "%e2%80%ae", "%", "%zz", "a%", ";x=1", "{job}x"]),
    st.binary(max_size=12).map(lambda b: quote(b, safe="")),
    st.text(_ASCII, max_size=12).map(lambda t: quote(t, safe="!$&'()*+,;=:@~")),
)
METHODS = st.sampled_from(
    ["GET", "POST", "PUT", "DELETE"] * 3 + ["PATCH", "HEAD", "OPTIONS", "PROPFIND", "TRACE"]
)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)
#: Values for the keys the HTTP functions read, plausible and not.
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "email": st.one_of(st.emails(), st.text(max_size=300), JSON_VALUES),
    # Never the fuzz account's own password: deleting the account or changing its password
    # would end the valid token's reach for the rest of the run.
    "password": st.one_of(st.text(max_size=40), st.just("another horse battery"), JSON_VALUES),
    "current_password": st.one_of(st.text(max_size=40), JSON_VALUES),
    "new_password": st.one_of(st.text(max_size=40), st.just("a fresh horse battery")),
    "filename": st.one_of(st.text(max_size=300), st.just("clip.mp4"), JSON_VALUES),
    "size": st.one_of(st.integers(min_value=-(2**64), max_value=2**64), JSON_VALUES),
    "content_type": st.one_of(
        st.sampled_from(["video/mp4", "audio/mpeg", "application/octet-stream"]),
        st.text(max_size=300).map(lambda t: "video/" + t),
        JSON_VALUES,
    ),
    "options": st.one_of(
        st.fixed_dictionaries(
            {}, optional={"bitrate": JSON_VALUES | st.text(), "quality": JSON_VALUES}
        ),
        JSON_VALUES,
    ),
    # Hosts that are IP literals or refused before any lookup: the fuzz makes no DNS queries.
    "webhook_url": st.one_of(
        st.none(),
        st.sampled_from(
            [
                "http://127.0.0.1:9/hook",
                "http://x..y/",
                "http://[::1",
                "ftp://a/",
                "http://[::1]:9/",
            ]
        ),
        st.sampled_from(["http://127.0.0.1:9/", "https://[::ffff:127.0.0.1]/", "http:"]).flatmap(
            lambda base: st.text(max_size=80).map(lambda t: base + t)
        ),
        JSON_VALUES,
    ),
}
FIELDS = st.fixed_dictionaries({}, optional=FIELD_VALUES)


def _shape(*keys: str) -> st.SearchStrategy[dict[str, Any]]:
    """Bodies with only the keys one function reads, so its deeper checks are reached (an
    unknown key is refused before the values are looked at)."""
    return st.fixed_dictionaries({}, optional={k: FIELD_VALUES[k] for k in keys})


#: The keys each HTTP function reads from its JSON body.
SHAPES = {
    "register": _shape("email", "password", "webhook_url"),
    "upload-init": _shape("filename", "size", "content_type", "options"),
    "settings": _shape("webhook_url"),
    "account": _shape("password", "current_password", "new_password"),
}
RAW_BODIES = st.one_of(
    st.binary(max_size=300),
    st.sampled_from(
        [
            b'{"email": "\\ud800"}',
            b'{"a": NaN}',
            b"[" * 5000,
            b'{"a":' * 70 + b"1" + b"}" * 70,
            b"\xff\xfe{\x00}\x00",
            b'{"size": 1e999}',
            b'{"specversion": "1.0", "id": "x", "type": "t", "source": "/s"}',
        ]
    ),
)
BODIES = st.one_of(
    st.none(),
    FIELDS.map(lambda d: json.dumps(d).encode()),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    RAW_BODIES,
)
CONTENT_TYPES = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "application/json",
            "application/cloudevents+json",
            "text/plain",
            "multipart/form-data; boundary=x",
            "application/x-www-form-urlencoded",
            "application/json; charset=utf-16",
        ]
    ),
    st.text(_LATIN1, max_size=40),
)
AUTH_KINDS = st.sampled_from(
    ["valid"] * 4 + ["none", "bearer-junk", "basic-junk", "junk", "jwt-junk"]
)


def _authorization(kind: str, token: str, junk: str) -> str | None:
    return {
        "none": None,
        "valid": f"Bearer {token}",
        "bearer-junk": f"Bearer {junk}",
        "basic-junk": "Basic "
        + base64.b64encode(junk.encode("latin-1", "replace")).decode()
        + junk[:3],
        "junk": junk,
        "jwt-junk": "Bearer " + token.rsplit(".", 1)[0] + "." + quote(junk, safe=""),
    }[kind]


@st.composite
def http_requests(draw: st.DrawFn, token: str, job_id: str) -> dict[str, Any]:
    """Keyword arguments for ``Client.open``: one generated request."""
    path = draw(PREFIXES) + draw(FUNCTION_NAMES)
    for segment in draw(st.lists(SEGMENTS, max_size=4)):
        path += "/" + segment.replace("{job}", job_id)
    if draw(st.booleans()):
        path += "?" + quote(draw(st.text(max_size=20)), safe="=&")
    headers: dict[str, str] = {}
    authorization = _authorization(draw(AUTH_KINDS), token, draw(st.text(_LATIN1, max_size=40)))
    if authorization is not None:
        headers["Authorization"] = authorization
    content_type = draw(CONTENT_TYPES)
    if content_type is not None:
        headers["Content-Type"] = content_type
    if draw(st.booleans()):
        headers.update(
            {
                "ce-id": draw(st.text(_LATIN1, max_size=20)),
                "ce-source": "/fuzz",
                "ce-specversion": draw(st.sampled_from(["1.0", "0.3", "x"])),
                "ce-type": draw(st.sampled_from(["io.vid2mp3.video.uploaded", "x"])),
                "ce-subject": job_id,
            }
        )
    if draw(st.booleans()):
        headers["X-Callback-Url"] = draw(
            st.sampled_from(["http://127.0.0.1:9/cb", "ftp://x/", "http://x..y/", "junk"])
        )
    body = draw(BODIES)
    overrides: dict[str, Any] = {}
    length = draw(st.sampled_from(["counted", "chunked", "wrong", "junk"]))
    if length == "chunked":
        overrides.update({"wsgi.input_terminated": True, "CONTENT_LENGTH": ""})
    elif length == "wrong":
        overrides["CONTENT_LENGTH"] = str(draw(st.integers(min_value=0, max_value=2**40)))
    elif length == "junk":
        overrides["CONTENT_LENGTH"] = draw(st.sampled_from(["-1", "abc", "1e3", " 12", "0x10"]))
    return {
        "path": path,
        "method": draw(METHODS),
        "headers": headers,
        "data": body,
        "environ_overrides": overrides,
    }


def _check(target: Target, request: dict[str, Any]) -> None:
    response = target.client.open(**request)
    status = response.status_code
    body = response.get_data()
    shown = f"{request['method']} {request['path']} -> {status} {body[:300]!r}"
    assert status < 500, shown
    if 400 <= status < 500 and request["method"] != "HEAD":
        answer = json.loads(body)
        assert isinstance(answer, dict), shown
        assert isinstance(answer.get("error"), str), shown


# -- the tests ---------------------------------------------------------------------------------


def test_any_request_to_the_gateway(target: Target) -> None:
    @settings(BOUNDED, max_examples=1500)
    @given(request=http_requests(target.token, target.job_id))
    def run(request: dict[str, Any]) -> None:
        _check(target, request)

    run()


@pytest.mark.parametrize("function", HTTP_FUNCTIONS)
def test_json_bodies_to_each_http_function(target: Target, function: str) -> None:
    @settings(BOUNDED, max_examples=150)
    @given(
        body=st.one_of(
            SHAPES.get(function, FIELDS).map(lambda d: json.dumps(d).encode()),
            FIELDS.map(lambda d: json.dumps(d).encode()),
            RAW_BODIES,
        ),
        method=st.sampled_from(["POST", "PUT", "GET", "DELETE"]),
        rest=st.sampled_from(
            ["", "/", "/password", "/{job}", "/{job}/complete", "/{job}/upload", "/x/y"]
        ),
        auth=AUTH_KINDS,
        chunked=st.booleans(),
    )
    def run(body: bytes, method: str, rest: str, auth: str, chunked: bool) -> None:
        headers = {"Content-Type": "application/json"}
        authorization = _authorization(auth, target.token, "x.y.z")
        if authorization is not None:
            headers["Authorization"] = authorization
        overrides = {"wsgi.input_terminated": True, "CONTENT_LENGTH": ""} if chunked else {}
        request = {
            "path": f"/function/{function}" + rest.replace("{job}", target.job_id),
            "method": method,
            "headers": headers,
            "data": body,
            "environ_overrides": overrides,
        }
        _check(target, request)

    run()


def test_uploads_with_any_headers_and_body(target: Target) -> None:
    @settings(BOUNDED, max_examples=300)
    @given(
        body=st.one_of(st.binary(max_size=3000), st.just(b"v" * 1000)),
        length=st.one_of(st.none(), st.integers(min_value=0, max_value=2**40), st.just(1000)),
        chunked=st.booleans(),
        auth=AUTH_KINDS,
        content_type=CONTENT_TYPES,
    )
    def run(
        body: bytes, length: int | None, chunked: bool, auth: str, content_type: str | None
    ) -> None:
        headers: dict[str, str] = {}
        authorization = _authorization(auth, target.token, "junk")
        if authorization is not None:
            headers["Authorization"] = authorization
        if content_type is not None:
            headers["Content-Type"] = content_type
        overrides: dict[str, Any] = {}
        if chunked:
            overrides = {"wsgi.input_terminated": True, "CONTENT_LENGTH": ""}
        elif length is not None:
            overrides = {"CONTENT_LENGTH": str(length)}
        request = {
            "path": f"/function/jobs/{target.job_id}/upload",
            "method": "PUT",
            "headers": headers,
            "data": body,
            "environ_overrides": overrides,
        }
        _check(target, request)

    run()
