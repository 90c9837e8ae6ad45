"""Byte limits enforced while streaming, and bad input answered 4xx, never 5xx (issue 10).

- uploads stop at the declared size and at ``MAX_UPLOAD_BYTES`` whatever the transfer encoding,
  reading at most one byte past the limit, and leave nothing in the store (local, GridFS);
- JSON bodies are capped (64 KiB) before parsing; deep nesting and lone surrogates are a 400;
- what upload-init and settings store fits its column, on SQLite and on MariaDB;
- the ``--processes`` proxy forwards the raw path and enforces its own body limits, so
  ``%ff%fe``, ``%00`` or ``%2e%2e`` get a JSON 4xx in both ``vid2mp3 up`` modes.
"""

from __future__ import annotations

import http.client
import io
import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_config
from tests.fixtures import platform as client
from tests.fixtures.fake_functions import wait_for
from tests.fixtures.net import Served, free_port, stop
from vid2mp3 import bodies, bootstrap, uploads, users
from vid2mp3.config import Config
from vid2mp3.errors import InvalidInput, PayloadTooLarge
from vid2mp3.local.gateway import Gateway
from vid2mp3.local.proxy import FunctionProxy, forward_target
from vid2mp3.local.server import build_gateway
from vid2mp3.runtime import functions
from vid2mp3.services import Services

pytest_plugins = ["tests.fixtures.services_real"]

MIB = 1024 * 1024
PASSWORD = "correct horse battery"
SECRET = "limits-test-secret-" + "x" * 40
#: Request targets no client should be able to turn into a 5xx, in either mode.
HOSTILE_PATHS = (
    "/function/jobs/%ff%fe",
    "/function/jobs/%00",
    "/function/jobs/%2e%2e",
    "/function/jobs/%2e%2e/%2e%2e/register",
    "/function/jobs/%ff%fe/upload",
    "/function/jobs/%00/download?x=%00%ff",
    "/function/settings/%00",
    "/function/settings%2f..",
    "/function/%ff",
    "/function/jobs%00",
    "/%ff%fe",
    "/function/register/%c0%ae%c0%ae",
)


class Counting:
    """An endless request body that counts the bytes taken from it."""

    def __init__(self, size: int = 64 * MIB) -> None:
        self.left = size
        self.taken = 0

    def read(self, n: int | None = -1) -> bytes:
        n = self.left if n is None or n < 0 else min(n, self.left)
        self.left -= n
        self.taken += n
        return b"v" * n


def _user(services: Services, email: str = "limits@example.com") -> str:
    return users.register(services, email, PASSWORD).id


def _job(services: Services, user_id: str, size: int) -> Any:
    job, _ = uploads.create(
        services, user_id, filename="clip.mp4", size=size, content_type="video/mp4"
    )
    return job


def _stored_anything(services: Services, job_id: str) -> bool:
    """True when the store holds any byte of the job's upload, partial copies included."""
    store: Any = services.store
    if hasattr(store, "root"):
        folder = Path(store.root) / "videos" / job_id
        return folder.exists() and any(folder.iterdir())
    files = store.database[f"{store.bucket_name}.files"]
    chunks = store.database[f"{store.bucket_name}.chunks"]
    return files.count_documents({}) > 0 or chunks.count_documents({}) > 0


@pytest.fixture(params=["local", "gridfs"])
def store_services(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Services]:
    """Embedded services on the local folder, then on GridFS (mongomock unless
    ``TEST_MONGO_URL``)."""
    overrides: dict[str, Any] = {}
    if request.param == "gridfs":
        from vid2mp3.storage.gridfs import GridFSBlobStore

        overrides["store"] = GridFSBlobStore.from_url(request.getfixturevalue("gridfs_url"))
    svc = bootstrap.build(make_config(tmp_path / "home"), **overrides)
    yield svc
    svc.db.close()


# -- uploads ------------------------------------------------------------------------------------


def test_a_chunked_upload_stops_one_byte_past_the_declared_size(
    store_services: Services,
) -> None:
    job = _job(store_services, _user(store_services), 1000)
    body = Counting()
    with pytest.raises(PayloadTooLarge, match="1000 bytes declared"):
        uploads.receive(store_services, job.id, job.user_id, body, None)  # type: ignore[arg-type]
    assert body.taken <= 1001
    assert not _stored_anything(store_services, job.id)
    # The job still takes the right upload.
    uploads.receive(store_services, job.id, job.user_id, io.BytesIO(b"v" * 1000), None)
    assert store_services.store.size(job.video_key) == 1000


def test_a_content_length_over_the_declared_size_is_413_before_reading(
    store_services: Services,
) -> None:
    job = _job(store_services, _user(store_services), 1000)
    body = Counting()
    with pytest.raises(PayloadTooLarge, match="1000 bytes declared"):
        uploads.receive(store_services, job.id, job.user_id, body, 1001)  # type: ignore[arg-type]
    assert body.taken == 0
    with pytest.raises(InvalidInput, match="differs from the declared size"):
        uploads.receive(store_services, job.id, job.user_id, body, 999)  # type: ignore[arg-type]
    assert body.taken == 0
    assert not _stored_anything(store_services, job.id)


def test_max_upload_bytes_holds_for_a_job_declared_before_it_was_lowered(tmp_path: Path) -> None:
    before = bootstrap.build(make_config(tmp_path / "home"))
    job = _job(before, _user(before), 10_000)
    before.db.close()
    lowered = bootstrap.build(make_config(tmp_path / "home", MAX_UPLOAD_BYTES="4096"))
    try:
        for length in (None, 10_000):
            body = Counting()
            with pytest.raises(PayloadTooLarge, match="4096 bytes \\(MAX_UPLOAD_BYTES\\)"):
                uploads.receive(lowered, job.id, job.user_id, body, length)  # type: ignore[arg-type]
            assert body.taken == (4097 if length is None else 0)
        assert not _stored_anything(lowered, job.id)
    finally:
        lowered.db.close()


def _chunked_put(url: str, path: str, headers: dict[str, str], chunks: Iterable[bytes]) -> Any:
    """PUT with ``Transfer-Encoding: chunked``; the status and the JSON answer. A server that
    refuses early may close while we still send: its answer is read all the same."""
    parts = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(parts[0], int(parts[1]), timeout=60)
    try:
        connection.putrequest("PUT", path, skip_accept_encoding=True)
        for key, value in {**headers, "Transfer-Encoding": "chunked"}.items():
            connection.putheader(key, value)
        connection.endheaders()
        try:
            for chunk in chunks:
                connection.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            connection.send(b"0\r\n\r\n")
        except OSError:
            pass
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


def _init(url: str, token: str, size: int) -> tuple[str, str, dict[str, str]]:
    import requests

    r = requests.post(
        f"{url}/function/upload-init",
        json={"filename": "clip.mp4", "size": size, "content_type": "video/mp4"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 201, r.text
    upload = r.json()["upload"]
    return r.json()["job_id"], upload["url"].removeprefix(url), upload["headers"]


@pytest.fixture
def embedded_up(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``vid2mp3 up``'s gateway (functions in this process) on a real HTTP server; its URL and
    the blob folder."""
    config = make_config(tmp_path / "home")
    gateway, services = build_gateway(config)
    served = Served(gateway)
    yield served.url, config.home / "blobs"
    served.close()
    gateway.close()
    bootstrap.install(None)
    services.sink.stop()
    services.db.close()


def test_a_chunked_put_over_http_is_413_and_leaves_no_file(
    embedded_up: tuple[str, Path],
) -> None:
    url, blobs = embedded_up
    token = client.token(url, "chunked@example.com")
    job_id, path, headers = _init(url, token, 1000)
    status, answer = _chunked_put(url, path, headers, (b"v" * 65536 for _ in range(64)))
    assert status == 413
    assert "1000 bytes declared" in answer["error"]
    folder = blobs / "videos" / job_id
    assert not folder.exists() or not any(folder.iterdir())
    status, answer = _chunked_put(url, path, headers, [b"v" * 600, b"v" * 400])
    assert (status, answer["state"]) == (200, "awaiting_upload")
    assert (blobs / "videos" / job_id / "clip.mp4").stat().st_size == 1000


# -- JSON bodies --------------------------------------------------------------------------------


def _post(apps: dict[str, Any], function: str, token: str = "", **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    method = "PUT" if function == "settings" else "POST"
    return apps[function].test_client().open("/", method=method, headers=headers, **kwargs)


@pytest.mark.parametrize("function", ["register", "upload-init", "settings"])
def test_a_json_body_over_64_kib_is_413_before_it_is_parsed(
    api: Any, apps: dict[str, Any], function: str
) -> None:
    token = api.token("json-cap@example.com")
    big = json.dumps({"filename": "x" * bodies.MAX_JSON_BYTES}).encode()
    r = _post(apps, function, token, data=big, content_type="application/json")
    assert r.status_code == 413
    assert "at most 65536 bytes" in r.get_json()["error"]
    # Chunked (no Content-Length): read one byte past the cap, no further.
    body = Counting()
    r = _post(
        apps,
        function,
        token,
        content_type="application/json",
        environ_overrides={"wsgi.input": body, "wsgi.input_terminated": True, "CONTENT_LENGTH": ""},
    )
    assert r.status_code == 413
    # What is left after the answer is discarded up to DRAIN_BYTES, never read whole (64 MiB).
    assert body.taken <= bodies.MAX_JSON_BYTES + 1 + functions.DRAIN_BYTES


def test_a_refused_body_is_never_read_whole(services: Services, apps: dict[str, Any]) -> None:
    # A wrong token on a 64 MiB chunked upload: functions-framework would read it all into
    # memory before answering.
    body = Counting()
    r = (
        apps["jobs"]
        .test_client()
        .put(
            "/some-job/upload",
            headers={"Authorization": "Bearer nope"},
            environ_overrides={
                "wsgi.input": body,
                "wsgi.input_terminated": True,
                "CONTENT_LENGTH": "",
            },
        )
    )
    assert r.status_code == 401
    assert body.taken <= functions.DRAIN_BYTES


CE_HEADERS = {
    "ce-id": "e-1",
    "ce-source": "/limits",
    "ce-specversion": "1.0",
    "ce-type": "io.vid2mp3.video.uploaded",
}


@pytest.mark.parametrize("function", ["convert", "summarize", "notify"])
def test_a_cloudevent_is_never_read_past_its_cap(
    services: Services, apps: dict[str, Any], function: str
) -> None:
    big = json.dumps({"job_id": "j", "pad": "x" * bodies.MAX_EVENT_BYTES}).encode()
    r = (
        apps[function]
        .test_client()
        .post("/", data=big, headers={**CE_HEADERS, "Content-Type": "application/json"})
    )
    assert r.status_code == 413
    assert isinstance(r.get_json()["error"], str)
    body = Counting()
    r = (
        apps[function]
        .test_client()
        .post(
            "/",
            headers={**CE_HEADERS, "Content-Type": "application/json"},
            environ_overrides={
                "wsgi.input": body,
                "wsgi.input_terminated": True,
                "CONTENT_LENGTH": "",
            },
        )
    )
    # Chunked, werkzeug stops reading at the cap, so the event is cut and does not parse: a 400
    # (never retried), with no more than the cap read.
    assert r.status_code in (400, 413)
    assert isinstance(r.get_json()["error"], str)
    assert body.taken <= bodies.MAX_EVENT_BYTES + 64 * 1024


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "413"),  # 200 kB: over the cap
        (b"[" * 30_000 + b"]" * 30_000, "nested too deeply"),
        (b'{"a":' * 65 + b"1" + b"}" * 65, "nested too deeply"),
        (b'{"email": "\\ud800@example.com", "password": "correct horse"}', "lone surrogate"),
        (b'{"\\udfff": 1}', "lone surrogate"),
        (b'{"email": NaN}', "NaN is not a JSON value"),
        (b'{"size": 1e999}', "out of range"),
        (b'{"email": "\\x"}', "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b'{"size": ' + b"9" * 5000 + b"}", "not valid JSON"),
    ],
)
def test_bad_json_is_a_4xx_saying_why(
    services: Services, apps: dict[str, Any], raw: bytes, says: str
) -> None:
    r = _post(apps, "register", data=raw, content_type="application/json")
    expected = 413 if says == "413" else 400
    assert r.status_code == expected, r.get_data()
    if says != "413":
        assert says in r.get_json()["error"]


def test_valid_unicode_and_nesting_still_pass(api: Any, apps: dict[str, Any]) -> None:
    r = _post(
        apps,
        "register",
        data=b'{"email": "emoji@example.com", "password": "\\ud83d\\ude00 correct horse"}',
        content_type="application/json",
    )
    assert r.status_code == 201, r.get_json()
    nested = b'{"a":' * 63 + b"1" + b"}" * 63
    assert bodies.parse_json(nested)["a"]["a"]["a"]


# -- field lengths on every database ------------------------------------------------------------


@pytest.fixture(params=["sqlite", "mariadb"])
def db_apps(
    request: pytest.FixtureRequest, tmp_path: Path, apps: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    """The function apps on SQLite, then on MariaDB (a longer value would crash there)."""
    env = {"ALLOW_PRIVATE_WEBHOOKS": "1", "JWT_SECRET": SECRET}
    if request.param == "mariadb":
        env["DATABASE_URL"] = request.getfixturevalue("mysql_url")
    svc = bootstrap.build(make_config(tmp_path / "home", **env))
    bootstrap.install(svc)
    yield apps
    bootstrap.install(None)
    svc.db.close()


def _token(apps: dict[str, Any], email: str) -> str:
    r = apps["register"].test_client().post("/", json={"email": email, "password": PASSWORD})
    assert r.status_code == 201, r.get_json()
    r = apps["login"].test_client().post("/", auth=(email, PASSWORD))
    return str(r.get_json()["token"])


def test_upload_init_fields_fit_their_columns(db_apps: dict[str, Any]) -> None:
    token = _token(db_apps, "fields@example.com")

    def init(**fields: Any) -> Any:
        body = {"filename": "clip.mp4", "size": 1000, "content_type": "video/mp4", **fields}
        return _post(db_apps, "upload-init", token, json=body)

    r = init(content_type="video/" + "x" * 300)
    assert r.status_code == 400
    assert "at most 127 characters" in r.get_json()["error"]
    assert init(content_type="video/" + "x" * 121).status_code == 201  # exactly 127
    for name in ("ü" * 300 + ".mp4", "a" * 5000 + ".webm", "😀" * 100 + ".mkv"):
        r = init(filename=name)
        assert r.status_code == 201, r.get_json()
        job_id = r.get_json()["job_id"]
        got = (
            db_apps["jobs"]
            .test_client()
            .get(f"/{job_id}", headers={"Authorization": f"Bearer {token}"})
        )
        stored = got.get_json()["filename"]
        assert stored.endswith(name[name.rindex(".") :])  # the extension is kept
        assert len(stored) <= uploads.MAX_FILENAME_CHARS
        assert len(stored.encode()) <= uploads.MAX_FILENAME_BYTES
    r = init(options={"bitrate": "x" * 60_000})
    assert r.status_code == 400


def test_a_webhook_url_over_its_column_is_400(db_apps: dict[str, Any]) -> None:
    token = _token(db_apps, "hook@example.com")
    base = "http://127.0.0.1:9/"
    fits = base + "a" * (2048 - len(base))
    r = _post(db_apps, "settings", token, json={"webhook_url": fits + "a"})
    assert r.status_code == 400
    assert "2048" in r.get_json()["error"]
    r = _post(db_apps, "settings", token, json={"webhook_url": fits})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["webhook_url"] == fits


# -- the proxy: raw paths and body limits --------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "script", "path_info", "query", "forwarded"),
    [
        ("/function/jobs/%ff%fe?a=%00", "/function/jobs", "/\xff\xfe", "a=%00", "/%ff%fe?a=%00"),
        ("/function/jobs/%00", "/function/jobs", "/\x00", "", "/%00"),
        ("/function/jobs/%2e%2e/x", "/function/jobs", "/../x", "", "/%2e%2e/x"),
        ("/function/jobs", "/function/jobs", "/", "", "/"),
        ("/function/j%6fbs/a%2Fb", "/function/jobs", "/a/b", "", "/a%2Fb"),
        # An encoded slash in the name: the decoded path, encoded again.
        ("/function/jobs%2Fx/y", "/function/jobs", "/x/y", "", "/x/y"),
        ("", "/function/jobs", "/a b%", "q=1 2", "/a%20b%25?q=1%202"),
        ("http://h:1/async-function/jobs/1", "/async-function/jobs", "/1", "", "/1"),
    ],
)
def test_the_proxy_forwards_the_raw_request_target(
    raw: str, script: str, path_info: str, query: str, forwarded: str
) -> None:
    environ = {"REQUEST_URI": raw, "SCRIPT_NAME": script, "PATH_INFO": path_info}
    environ["QUERY_STRING"] = query
    assert forward_target(environ) == forwarded


def _storing_function(folder: Path) -> Callable[..., Iterable[bytes]]:
    """A function that stores the body it reads in ``folder``, and drops it when the body
    breaks off, as the jobs function does."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        from werkzeug.wsgi import get_input_stream

        target = folder / "upload"
        try:
            with target.open("wb") as out:
                stream = get_input_stream(environ)
                while chunk := stream.read(65536):
                    out.write(chunk)
        except OSError:
            target.unlink()
            start_response("400 Bad Request", [("Content-Type", "application/json")])
            return [b'{"error": "broken body"}']
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"stored": %d}' % target.stat().st_size]

    return app


def test_the_proxy_cuts_a_chunked_body_past_its_limit(tmp_path: Path) -> None:
    function = Served(_storing_function(tmp_path))
    proxy = FunctionProxy("jobs", "127.0.0.1", function.port, max_body_bytes=100_000)
    gateway = Served(Gateway({"jobs": proxy}))
    try:
        status, answer = _chunked_put(
            gateway.url, "/function/jobs/1/upload", {}, (b"v" * 65536 for _ in range(100))
        )
        assert status == 413
        wait_for("the function to drop the partial upload", lambda: not any(tmp_path.iterdir()))
        status, answer = _chunked_put(gateway.url, "/function/jobs/1/upload", {}, [b"v" * 99_999])
        assert (status, answer) == (200, {"stored": 99_999})
        connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
        connection.request("PUT", "/function/jobs/1/upload", body=b"v" * 100_001)
        response = connection.getresponse()
        assert response.status == 413
        assert "too large" in json.loads(response.read())["error"]
        connection.close()
    finally:
        gateway.close()
        function.close()


def _raw_request(url: str, method: str, target: str, token: str = "") -> tuple[int, bytes]:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        # putrequest checks the target for control characters; these targets are ASCII.
        connection.putrequest(method, target, skip_accept_encoding=True)
        if token:
            connection.putheader("Authorization", f"Bearer {token}")
        connection.putheader("Content-Length", "0")
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _assert_hostile_paths_are_4xx(url: str, token: str) -> None:
    for target in HOSTILE_PATHS:
        for method in ("GET", "PUT", "POST", "DELETE"):
            status, body = _raw_request(url, method, target, token)
            assert 400 <= status < 500, (method, target, status, body)
            assert isinstance(json.loads(body)["error"], str), (method, target, body)


def test_hostile_paths_are_4xx_in_one_process(embedded_up: tuple[str, Path]) -> None:
    url, _ = embedded_up
    _assert_hostile_paths_are_4xx(url, client.token(url, "paths@example.com"))


# -- the same through `vid2mp3 up --processes` (MariaDB, RabbitMQ) --------------------------------


@pytest.fixture(scope="module")
def processes_up(
    mysql_module_url: str, amqp_module_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("limits-up")
    env = client.backends_env(
        mysql_module_url,
        amqp_module_url,
        root,
        JWT_SECRET=SECRET,
        MAX_UPLOAD_BYTES=str(2 * MIB),
    )
    port = free_port()
    process = client.start_up(env, port, root / "up.log")
    yield f"http://127.0.0.1:{port}", root / "blobs"
    stop(process)


def test_hostile_paths_are_4xx_behind_the_proxy(processes_up: tuple[str, Path]) -> None:
    url, _ = processes_up
    _assert_hostile_paths_are_4xx(url, client.token(url, "proxy-paths@example.com"))


def test_upload_limits_hold_behind_the_proxy(processes_up: tuple[str, Path]) -> None:
    url, blobs = processes_up
    token = client.token(url, "proxy-upload@example.com")
    job_id, path, headers = _init(url, token, 1000)
    # Chunked past the declared size (but under the proxy's MAX_UPLOAD_BYTES): the function
    # refuses it at byte 1001.
    status, answer = _chunked_put(url, path, headers, (b"v" * 65536 for _ in range(24)))
    assert status == 413
    assert "1000 bytes declared" in answer["error"]
    folder = blobs / "videos" / job_id
    wait_for("no partial upload", lambda: not folder.exists() or not any(folder.iterdir()))
    # A Content-Length over MAX_UPLOAD_BYTES: the proxy refuses it without reading.
    connection = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=30)
    connection.putrequest("PUT", path)
    for key, value in {**headers, "Content-Length": str(3 * MIB)}.items():
        connection.putheader(key, value)
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 413
    assert "MAX_UPLOAD_BYTES" in json.loads(response.read())["error"]
    connection.close()
    # A wrong token answered before the body is read: a 401, not a broken proxy.
    status, answer = _chunked_put(
        url, path, {"Authorization": "Bearer nope"}, (b"v" * 65536 for _ in range(24))
    )
    assert status == 401
    status, answer = _chunked_put(url, path, headers, [b"v" * 1000])
    assert status == 200, answer


def test_json_cap_holds_behind_the_proxy(processes_up: tuple[str, Path]) -> None:
    url, _ = processes_up
    big = json.dumps({"email": "x" * (bodies.MAX_JSON_BYTES + 1)}).encode()
    status, _ = _chunked_put(url, "/function/settings", {}, [big])
    assert status == 413
    import requests

    r = requests.post(f"{url}/function/register", data=big, headers={"Content-Type": "a/json"})
    assert r.status_code == 413
    assert "65536" in r.json()["error"]
    r = requests.post(
        f"{url}/function/register",
        data=b'{"email": "\\ud800", "password": "correct horse"}',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400
    assert "surrogate" in r.json()["error"]


def test_config_max_upload_bytes_is_the_proxy_limit_for_uploads(tmp_path: Path) -> None:
    from vid2mp3.local.proxy import body_limit

    config: Config = make_config(tmp_path / "home", MAX_UPLOAD_BYTES="12345")
    assert body_limit("jobs", config)[0] == 12345
    assert body_limit("register", config)[0] == bodies.MAX_JSON_BYTES
    assert body_limit("convert", config)[0] is None
