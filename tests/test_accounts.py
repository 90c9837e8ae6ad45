"""Accounts (issue 10, points 6 and 7): the password policy, sessions that end when the account
is deleted or its password changes, and the ``account`` function (change password, delete my
account with its jobs and files) - on SQLite and on MariaDB."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api, make_config
from vid2mp3 import bootstrap, throttle
from vid2mp3.bus.memory import MemoryBus
from vid2mp3.services import Services

PASSWORD = "correct horse battery"
SECRET = "a-test-secret-long-enough-for-hs256"


@dataclass
class Stack:
    api: Api
    services: Services
    bus: MemoryBus
    blobs: Path

    def files(self) -> list[Path]:
        return sorted(p for p in self.blobs.rglob("*") if p.is_file())

    def rows(self, sql: str, *params: Any) -> int:
        with self.services.uow() as uow:
            return int(uow.execute(sql, params).fetchone()[0])


@pytest.fixture(params=["sqlite", "mariadb"])
def stack(request: pytest.FixtureRequest, tmp_path: Path, apps: dict[str, Any]) -> Iterator[Stack]:
    """The functions with the in-process bus and a blob folder; SQLite or MariaDB."""
    env = {"STORAGE_URL": f"file://{tmp_path / 'blobs'}"}
    if request.param == "mariadb":
        env.update(DATABASE_URL=request.getfixturevalue("mysql_url"), JWT_SECRET=SECRET)
    svc = bootstrap.build(make_config(tmp_path / "home", **env))
    bootstrap.install(svc)
    bus = bootstrap.deliver_in_process(svc, apps)
    assert bus is not None
    bus.base_delay = 0.01
    yield Stack(Api(apps), svc, bus, tmp_path / "blobs")
    bootstrap.install(None)
    svc.db.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- point 6: the password policy -------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "words"),
    [
        ("12345678", "among the most common"),
        ("password", "among the most common"),
        (" " * 8, "only spaces"),
        ("\0" * 8, "control characters"),
        ("abcdefghijk", "sequences like"),
        ("2020-01-01x", "dates are often easy to guess"),
        ("aaaaaaaaaaaaaaaa", "too easy to guess"),
        ("ada.lovelace", "email"),
        ("AdaLovelace-1815", "email"),
        ("short", "at least 8 characters"),
        ("x" * 1025, "at most 1024 characters"),
    ],
)
def test_weak_passwords_are_refused_saying_why(api: Api, password: str, words: str) -> None:
    response = api.register("ada.lovelace@example.com", password)
    assert response.status_code == 400
    message = response.get_json()["error"]
    assert words in message
    if "guess" in message or "common" in message:
        assert "for example three or four unrelated words" in message  # what would do
    assert api.call("login", "POST", auth=("ada.lovelace@example.com", password)).status_code == 401


def test_a_strong_password_of_any_allowed_length_is_accepted(api: Api) -> None:
    assert api.register("a@example.com", "violet tractor anthem").status_code == 201
    long_one = "violet tractor anthem " * 46  # 1012 characters
    assert api.register("b@example.com", long_one[:1024]).status_code == 201


# -- point 7: sessions end ----------------------------------------------------------------------


def _token(stack: Stack, email: str) -> str:
    assert stack.api.register(email, PASSWORD).status_code == 201
    response = stack.api.call("login", "POST", auth=(email, PASSWORD))
    assert response.status_code == 200, response.get_json()
    return str(response.get_json()["token"])


def _init(stack: Stack, token: str) -> Any:
    return stack.api.call(
        "upload-init",
        "POST",
        json={"filename": "talk.mp4", "size": 1000, "content_type": "video/mp4"},
        headers=bearer(token),
    )


def test_a_deleted_accounts_tokens_stop_at_every_door(stack: Stack) -> None:
    token = _token(stack, "gone@example.com")
    init = _init(stack, token)
    assert init.status_code == 201
    job_id, upload = init.get_json()["job_id"], init.get_json()["upload"]
    upload_path = upload["url"].split("/function/jobs", 1)[1]
    assert stack.api.call("validate", "POST", headers=bearer(token)).status_code == 200
    deleted = stack.api.call(
        "account", "DELETE", json={"password": PASSWORD}, headers=bearer(token)
    )
    assert deleted.status_code == 204
    doors = [
        ("validate", "POST", "/", {"headers": bearer(token)}),
        ("upload-init", "POST", "/", {"headers": bearer(token), "json": {"filename": "a.mp4"}}),
        ("jobs", "GET", "/", {"headers": bearer(token)}),
        ("jobs", "GET", f"/{job_id}", {"headers": bearer(token)}),
        ("settings", "GET", "/", {"headers": bearer(token)}),
        ("account", "POST", "/password", {"headers": bearer(token), "json": {}}),
        # The upload token of the account's job, and its session token on the same door.
        ("jobs", "PUT", upload_path, {"headers": upload["headers"], "data": b"x" * 1000}),
        ("jobs", "PUT", upload_path, {"headers": bearer(token), "data": b"x" * 1000}),
    ]
    for function, method, path, kwargs in doors:
        refused = stack.api.call(function, method, path, **kwargs)
        assert refused.status_code == 401, (function, method, path, refused.get_json())
        assert "no longer exists" in refused.get_json()["error"]
    assert stack.api.call("login", "POST", auth=("gone@example.com", PASSWORD)).status_code == 401


def test_a_password_change_ends_older_sessions(stack: Stack) -> None:
    old = _token(stack, "pat@example.com")
    other_device = stack.api.call("login", "POST", auth=("pat@example.com", PASSWORD))
    second = other_device.get_json()["token"]
    new_password = "lantern orbit meadow"
    changed = stack.api.call(
        "account",
        "POST",
        "/password",
        json={"current_password": PASSWORD, "new_password": new_password},
        headers=bearer(old),
    )
    assert changed.status_code == 200, changed.get_json()
    fresh = changed.get_json()["token"]
    for stale in (old, second):
        refused = stack.api.call("validate", "POST", headers=bearer(stale))
        assert refused.status_code == 401
        assert "sign in again" in refused.get_json()["error"]
        assert _init(stack, stale).status_code == 401
    assert stack.api.call("validate", "POST", headers=bearer(fresh)).status_code == 200
    assert _init(stack, fresh).status_code == 201
    assert stack.api.call("login", "POST", auth=("pat@example.com", PASSWORD)).status_code == 401
    again = stack.api.call("login", "POST", auth=("pat@example.com", new_password))
    assert again.status_code == 200
    relogin = stack.api.call("validate", "POST", headers=bearer(again.get_json()["token"]))
    assert relogin.status_code == 200


def test_a_password_change_needs_the_current_password_and_a_strong_new_one(stack: Stack) -> None:
    token = _token(stack, "quinn@example.com")

    def change(current: str, new: str, **env: str) -> Any:
        return stack.api.call(
            "account",
            "POST",
            "/password",
            json={"current_password": current, "new_password": new},
            headers=bearer(token),
            environ_base={"REMOTE_ADDR": env.get("address", "198.51.100.7")},
        )

    weak = change(PASSWORD, "password")
    assert weak.status_code == 400 and "most common" in weak.get_json()["error"]
    for n in range(throttle.LOGIN_ACCOUNT.free_failures):
        wrong = change("not my password", "lantern orbit meadow", address=f"192.0.2.{n}")
        assert wrong.status_code == 403 and wrong.get_json() == {"error": "the password is wrong"}
    # Guessing through a stolen session is throttled like a sign-in.
    locked = change(PASSWORD, "lantern orbit meadow", address="192.0.2.99")
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) >= 1
    assert stack.api.call("validate", "POST", headers=bearer(token)).status_code == 200


# -- point 7: delete my account ----------------------------------------------------------------


def test_deleting_an_account_removes_its_jobs_files_and_rows(stack: Stack, make_video: Any) -> None:
    token = _token(stack, "del@example.com")
    keep = _token(stack, "keep@example.com")
    video = make_video("mp4")
    mine = [stack.api.upload(token, video) for _ in range(2)]
    theirs = stack.api.upload(keep, video)
    waiting = _init(stack, token).get_json()["job_id"]  # never uploaded
    busy = stack.api.call("account", "DELETE", json={"password": PASSWORD}, headers=bearer(token))
    assert busy.status_code == 409 and "once it has finished" in busy.get_json()["error"]
    stack.bus.run_until_idle()
    assert [stack.api.job(token, j)["state"] for j in mine] == ["completed", "completed"]
    files_of_other = [p for p in stack.files() if theirs in str(p)]
    assert len(stack.files()) > len(files_of_other) >= 2  # videos, MP3s, transcripts
    ids = (*mine, waiting)
    marks = ", ".join("?" for _ in ids)
    assert stack.rows(f"SELECT COUNT(*) FROM outbox WHERE job_id IN ({marks})", *ids) > 0

    wrong = stack.api.call(
        "account", "DELETE", json={"password": "nope nope"}, headers=bearer(token)
    )
    assert wrong.status_code == 403
    deleted = stack.api.call("account", "DELETE", auth=("del@example.com", PASSWORD))
    assert deleted.status_code == 204

    # Only the other user's files are left on disk, and none of the account's rows.
    assert [p for p in stack.files() if theirs not in str(p)] == []
    assert [p for p in stack.files() if theirs in str(p)] == files_of_other
    for table, column in [
        ("jobs", "id"),
        ("outbox", "job_id"),
        ("notifications", "job_id"),
        ("step_leases", "job_id"),
        ("event_log", "subject"),
    ]:
        sql = f"SELECT COUNT(*) FROM {table} WHERE {column} IN ({marks})"
        assert stack.rows(sql, *ids) == 0, table
    assert stack.rows("SELECT COUNT(*) FROM users WHERE email = ?", "del@example.com") == 0
    assert stack.api.job(keep, theirs)["state"] == "completed"
    assert stack.api.call("login", "POST", auth=("del@example.com", PASSWORD)).status_code == 401
    # The email is free again.
    assert stack.api.register("del@example.com", PASSWORD).status_code == 201


def test_account_paths_and_methods(api: Api) -> None:
    token = api.token("ray@example.com", PASSWORD)
    assert api.call("account", "GET", "/", headers=bearer(token)).status_code == 405
    assert api.call("account", "GET", "/password", headers=bearer(token)).status_code == 405
    assert api.call("account", "POST", "/nothing", headers=bearer(token)).status_code == 404
    no_password = api.call("account", "DELETE", json={}, headers=bearer(token))
    assert no_password.status_code == 400 and "password" in no_password.get_json()["error"]
    assert api.call("account", "DELETE").status_code == 401
