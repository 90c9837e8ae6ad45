"""The gateway's proxy to a function process: bodies stream both ways, a dead function is 502."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
import requests

from tests.fixtures.net import Served, free_port
from vid2mp3.local.gateway import Gateway
from vid2mp3.local.proxy import FunctionProxy

MIB = 1024 * 1024


def _echo(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Hashes the request body; answers ``?size=N`` bytes in 64 KiB chunks."""
    from werkzeug.wsgi import get_input_stream

    digest = hashlib.sha256()
    stream = get_input_stream(environ)
    while chunk := stream.read(65536):
        digest.update(chunk)
    size = int((environ.get("QUERY_STRING") or "size=0").split("=")[1])
    start_response(
        "200 OK",
        [
            ("Content-Type", "application/octet-stream"),
            ("X-Body-Sha256", digest.hexdigest()),
            ("X-Path", environ["PATH_INFO"]),
            ("X-Host", environ.get("HTTP_HOST", "")),
        ],
    )
    return (b"x" * 65536 for _ in range(size // 65536))


@pytest.fixture
def gateway_url() -> Iterator[str]:
    function = Served(_echo)
    apps = {
        "echo": FunctionProxy("echo", "127.0.0.1", function.port),
        "gone": FunctionProxy("gone", "127.0.0.1", free_port()),
    }
    gateway = Served(Gateway(apps))
    yield gateway.url
    gateway.close()
    function.close()


def test_counted_body_and_path_reach_the_function(gateway_url: str) -> None:
    body = b"v" * (3 * MIB + 7)
    r = requests.put(f"{gateway_url}/function/echo/jobs/1/upload?size=0", data=body)
    assert r.status_code == 200
    assert r.headers["X-Body-Sha256"] == hashlib.sha256(body).hexdigest()
    assert r.headers["X-Path"] == "/jobs/1/upload"
    assert r.headers["X-Host"] == gateway_url.removeprefix("http://")


def test_chunked_upload_and_streamed_download(gateway_url: str) -> None:
    parts = [b"a" * 100_000, b"b" * 5, b"c" * MIB]

    def chunks() -> Iterator[bytes]:
        yield from parts

    r = requests.post(f"{gateway_url}/function/echo/?size={8 * MIB}", data=chunks(), stream=True)
    assert r.status_code == 200
    assert r.headers["X-Body-Sha256"] == hashlib.sha256(b"".join(parts)).hexdigest()
    received = sum(len(c) for c in r.iter_content(MIB))
    assert received == 8 * MIB


def test_a_function_that_is_down_answers_502(gateway_url: str) -> None:
    r = requests.post(f"{gateway_url}/function/gone/", json={})
    assert r.status_code == 502
    assert "not reachable" in r.json()["error"]


def test_processes_need_a_shared_broker(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from vid2mp3 import cli

    monkeypatch.setenv("VID2MP3_HOME", str(tmp_path))
    for key in ("EVENTS_URL", "K_SINK", "DATABASE_URL", "STORAGE_URL"):
        monkeypatch.delenv(key, raising=False)
    assert cli.main(["up", "--processes", "--port", str(free_port())]) == 1
    assert "EVENTS_URL=amqp://" in capsys.readouterr().err
