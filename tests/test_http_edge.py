"""The doors' edge when things go wrong: every answer is JSON, the services are built at most
once per request, CORS preflights, and event handlers that crash."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api, binary_event
from vid2mp3 import bootstrap, conversion, events
from vid2mp3.config import Config
from vid2mp3.db.database import Database
from vid2mp3.db.mysql import MysqlDatabase
from vid2mp3.errors import TransientError
from vid2mp3.services import Services

# Every HTTP door, with a call that reaches its library code.
DOORS = [
    ("register", "POST", "/", {"json": {"email": "a@example.com", "password": "long enough"}}),
    ("login", "POST", "/", {"auth": ("a@example.com", "long enough")}),
    ("validate", "POST", "/", {"headers": {"Authorization": "Bearer a.b.c"}}),
    ("jobs", "GET", "/", {"headers": {"Authorization": "Bearer a.b.c"}}),
]


@pytest.fixture
def no_services(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Nothing installed: each door builds the services from this test's environment."""
    bootstrap.install(None)
    monkeypatch.setenv("VID2MP3_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("JWT_SECRET", "edge-test-secret")
    for key in ("DATABASE_URL", "STORAGE_URL", "EVENTS_URL", "K_SINK", "CORS_ORIGINS"):
        monkeypatch.delenv(key, raising=False)
    yield
    bootstrap.install(None)


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[Config]:
    """The configs ``bootstrap.build`` was called with, one per attempt to build the services."""
    calls: list[Config] = []
    real = bootstrap.build

    def counting(config: Config | None = None, **overrides: object) -> Services:
        calls.append(config or Config.from_env())
        return real(config, **overrides)

    monkeypatch.setattr(bootstrap, "build", counting)
    return calls


@pytest.fixture
def api_apps(apps: dict[str, Any]) -> Api:
    """The function apps without installed services (``api`` installs them)."""
    return Api(apps)


def _unreachable_mysql(config: Config) -> Database:
    # One attempt: the default retries would spend seconds backing off on every request.
    return MysqlDatabase(config.database_url, connect_attempts=1)


@pytest.mark.parametrize(("door", "method", "path", "kwargs"), DOORS)
def test_an_unreachable_database_is_a_json_503_built_once(
    no_services: None,
    builds: list[Config],
    monkeypatch: pytest.MonkeyPatch,
    api_apps: Api,
    door: str,
    method: str,
    path: str,
    kwargs: dict[str, Any],
) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://root@127.0.0.1:1/vid2mp3")
    monkeypatch.setenv("CORS_ORIGINS", "https://app.example")
    monkeypatch.setattr(bootstrap, "make_database", _unreachable_mysql)
    kwargs = {**kwargs, "headers": {**kwargs.get("headers", {}), "Origin": "https://app.example"}}
    response = api_apps.call(door, method, path, **kwargs)
    assert response.status_code == 503
    assert response.mimetype == "application/json"
    assert "database unreachable" in response.get_json()["error"]
    assert response.headers["Retry-After"]
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert len(builds) == 1


@pytest.mark.parametrize(("door", "method", "path", "kwargs"), DOORS)
def test_an_unsupported_database_url_is_a_json_500_naming_the_key(
    no_services: None,
    builds: list[Config],
    monkeypatch: pytest.MonkeyPatch,
    api_apps: Api,
    door: str,
    method: str,
    path: str,
    kwargs: dict[str, Any],
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://db/vid2mp3")
    response = api_apps.call(door, method, path, **kwargs)
    assert response.status_code == 500
    assert response.mimetype == "application/json"
    assert "DATABASE_URL" in response.get_json()["error"]
    assert len(builds) == 1


def test_a_bad_setting_is_json_even_for_a_cors_preflight(
    no_services: None, builds: list[Config], monkeypatch: pytest.MonkeyPatch, api_apps: Api
) -> None:
    monkeypatch.setenv("MAX_ATTEMPTS", "many")
    response = api_apps.call("register", "OPTIONS", headers={"Origin": "https://app.example"})
    assert response.status_code == 500
    assert response.mimetype == "application/json"
    assert "MAX_ATTEMPTS" in response.get_json()["error"]
    assert builds == []


def test_cors_preflight_allows_delete(
    tmp_path: Path, apps: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = Config.from_env(
        {"VID2MP3_HOME": str(tmp_path / "home"), "CORS_ORIGINS": "https://app.example"}
    )
    services = bootstrap.build(config)
    bootstrap.install(services)
    try:
        response = Api(apps).call(
            "jobs",
            "OPTIONS",
            "/some-job",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "DELETE",
                "Access-Control-Request-Headers": "Authorization",
            },
        )
    finally:
        bootstrap.install(None)
        services.db.close()
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
    allowed = {m.strip() for m in response.headers["Access-Control-Allow-Methods"].split(",")}
    assert {"GET", "POST", "PUT", "DELETE"} <= allowed
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]


@pytest.fixture
def http_log() -> Iterator[list[logging.LogRecord]]:
    """What the ``vid2mp3.http`` logger logs during the test (``logs.configure`` stops
    propagation, so pytest's ``caplog`` never sees it)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("vid2mp3.http")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


@pytest.mark.parametrize(
    ("failure", "status", "words"),
    [
        (RuntimeError("a bug in the handler"), 500, "internal error; it has been logged"),
        (TransientError("storage is down"), 503, "storage is down"),
    ],
)
def test_an_event_handler_failure_is_a_json_5xx(
    services: Services,
    apps: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    http_log: list[logging.LogRecord],
    failure: Exception,
    status: int,
    words: str,
) -> None:
    def handler(*_: Any) -> str:
        raise failure

    monkeypatch.setattr(conversion, "handle_video_uploaded", handler)
    sample = resources.files("vid2mp3.contract") / "samples" / f"{events.VIDEO_UPLOADED}.json"
    event = events.Event.from_json(sample.read_text())
    response = apps["convert"].test_client().post("/", **binary_event(event))
    assert response.status_code == status
    assert response.mimetype == "application/json"
    assert words in response.get_json()["error"]
    if status == 500:
        [record] = [r for r in http_log if r.getMessage() == "event handler crashed"]
        assert record.exc_info is not None
