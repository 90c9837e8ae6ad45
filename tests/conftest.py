"""Shared fixtures: an embedded-mode ``Services`` per test, the function apps, users, tokens."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vid2mp3 import bootstrap, event_signatures, events
from vid2mp3.bus.memory import MemoryBus
from vid2mp3.config import Config
from vid2mp3.runtime import functions
from vid2mp3.services import Services

pytest_plugins = [
    "tests.fixtures.media",
    "tests.fixtures.backends",
    "tests.fixtures.services_real",
]


def make_config(home: Path, **env: str) -> Config:
    return Config.from_env({"VID2MP3_HOME": str(home), "PUBLIC_URL": "http://testserver", **env})


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    """Embedded-mode services (SQLite, local folder, memory bus) installed process-wide."""
    svc = bootstrap.build(make_config(tmp_path / "home"))
    bootstrap.install(svc)
    yield svc
    bootstrap.install(None)
    svc.db.close()


@pytest.fixture(scope="session")
def apps() -> dict[str, Any]:
    """Every function loaded once through functions-framework's ``create_app``."""
    return functions.load_all()


@pytest.fixture
def bus(services: Services, apps: dict[str, Any]) -> MemoryBus:
    """The memory bus, delivering to the function apps (call ``run_until_idle()``)."""
    sink = bootstrap.deliver_in_process(services, apps)
    assert sink is not None
    sink.base_delay = 0.01  # retries in tests need not wait
    return sink


class Api:
    """Calls the HTTP functions the way a client does, through their test clients."""

    def __init__(self, apps: dict[str, Any]) -> None:
        self.apps = apps

    def call(self, function: str, method: str, path: str = "/", **kwargs: Any) -> Any:
        return self.apps[function].test_client().open(path, method=method, **kwargs)

    def register(self, email: str, password: str = "correct horse") -> Any:
        return self.call("register", "POST", json={"email": email, "password": password})

    def token(self, email: str, password: str = "correct horse") -> str:
        self.register(email, password)
        response = self.call("login", "POST", auth=(email, password))
        assert response.status_code == 200, response.get_json()
        return response.get_json()["token"]

    def upload(self, token: str, video: Path, **options: Any) -> str:
        """upload-init, PUT the bytes, complete; returns the job id."""
        auth = {"Authorization": f"Bearer {token}"}
        init = self.call(
            "upload-init",
            "POST",
            json={
                "filename": video.name,
                "size": video.stat().st_size,
                "content_type": "video/mp4",
                "options": options,
            },
            headers=auth,
        )
        assert init.status_code == 201, init.get_json()
        body = init.get_json()
        upload = body["upload"]
        path = upload["url"].split("/function/jobs", 1)[1]
        with video.open("rb") as f:
            put = self.call("jobs", "PUT", path, data=f, headers=upload["headers"])
        assert put.status_code == 200, put.get_json()
        done = self.call("jobs", "POST", f"/{body['job_id']}/complete", headers=auth)
        assert done.status_code == 202, done.get_json()
        return body["job_id"]

    def job(self, token: str, job_id: str) -> dict[str, Any]:
        response = self.call(
            "jobs", "GET", f"/{job_id}", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200, response.get_json()
        return response.get_json()


@pytest.fixture
def api(services: Services, apps: dict[str, Any]) -> Api:
    return Api(apps)


def signed(event: events.Event) -> events.Event:
    """``event`` signed as the platform's publisher signs it (with the installed services')."""
    return event_signatures.sign(event, bootstrap.services().config)


def binary_event(event: events.Event) -> dict[str, Any]:
    """Test-client kwargs posting ``event``, signed by the platform, in binary content mode."""
    event = signed(event)
    return {"data": json.dumps(event.data), "headers": event.binary_headers()}


def structured_event(event: events.Event) -> dict[str, Any]:
    """Test-client kwargs posting ``event``, signed by the platform, in structured mode."""
    return {
        "data": signed(event).to_json(),
        "headers": {"Content-Type": "application/cloudevents+json"},
    }
