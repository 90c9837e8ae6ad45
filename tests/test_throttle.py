"""Sign-in and sign-up throttling (issue 10, point 5): failures counted in the SQL database per
account and per client address, 429 with Retry-After, the right password refused during a
lockout, a success resets the account; the client address is the connection's, or the
right-most entry of a header only when ``TRUSTED_PROXY_HEADER`` names it, which the
``vid2mp3 up`` gateway overwrites. Client addresses below are WSGI environ values (documentation
ranges): no traffic leaves 127.0.0.1."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client

from tests.conftest import Api, make_config
from vid2mp3 import bootstrap, throttle
from vid2mp3.config import Config
from vid2mp3.db.migrations import migrate
from vid2mp3.db.mysql import MysqlDatabase
from vid2mp3.local.gateway import Gateway
from vid2mp3.local.processes import FunctionProcesses
from vid2mp3.local.proxy import FunctionProxy

PASSWORD = "correct horse battery"
SECRET = "a-test-secret-long-enough-for-hs256"
HERE, THERE = "198.51.100.7", "203.0.113.9"


@pytest.fixture(params=["sqlite", "mariadb"])
def on_db(request: pytest.FixtureRequest, tmp_path: Path, apps: dict[str, Any]) -> Iterator[Api]:
    """The functions, with their state in SQLite or in MariaDB."""
    env = {}
    if request.param == "mariadb":
        env = {"DATABASE_URL": request.getfixturevalue("mysql_url"), "JWT_SECRET": SECRET}
    svc = bootstrap.build(make_config(tmp_path / "home", **env))
    bootstrap.install(svc)
    yield Api(apps)
    bootstrap.install(None)
    svc.db.close()


@pytest.fixture
def on_mariadb(mysql_url: str, tmp_path: Path, apps: dict[str, Any]) -> Iterator[Api]:
    svc = bootstrap.build(make_config(tmp_path / "home", DATABASE_URL=mysql_url, JWT_SECRET=SECRET))
    bootstrap.install(svc)
    yield Api(apps)
    bootstrap.install(None)
    svc.db.close()


def _login(api: Api, email: str, password: str, address: str = HERE, **headers: str) -> Any:
    return api.call(
        "login",
        "POST",
        auth=(email, password),
        headers=headers,
        environ_base={"REMOTE_ADDR": address},
    )


def _register(api: Api, email: str, address: str = HERE) -> Any:
    return api.call(
        "register",
        "POST",
        json={"email": email, "password": PASSWORD},
        environ_base={"REMOTE_ADDR": address},
    )


def _address(n: int) -> str:
    return f"192.0.2.{n}"


def test_wrong_passwords_lock_the_account_even_for_the_right_password(on_db: Api) -> None:
    assert _register(on_db, "ada@example.com").status_code == 201
    # Each from its own address: the account's count alone locks it.
    for n in range(throttle.LOGIN_ACCOUNT.free_failures):
        assert _login(on_db, "ada@example.com", "wrong guess", _address(n)).status_code == 401
    refused = _login(on_db, "ada@example.com", "wrong guess", _address(50))
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= throttle.LOGIN_ACCOUNT.first_delay
    assert "try again in" in refused.get_json()["error"]
    right = _login(on_db, "ada@example.com", PASSWORD, _address(51))
    assert right.status_code == 429
    assert "token" not in right.get_json()


def test_a_successful_login_resets_the_account(on_db: Api) -> None:
    _register(on_db, "bob@example.com")
    below = throttle.LOGIN_ACCOUNT.free_failures - 1
    for _round in range(2):
        for n in range(below):
            assert _login(on_db, "bob@example.com", "wrong guess", _address(n)).status_code == 401
        assert _login(on_db, "bob@example.com", PASSWORD, _address(9)).status_code == 200
    # Without the reset, the second round's failures would have locked it.
    assert _login(on_db, "bob@example.com", "wrong guess", _address(9)).status_code == 401


def test_one_address_is_limited_across_accounts(on_db: Api) -> None:
    emails = [f"user{n}@example.com" for n in range(6)]
    for email in emails:
        assert _register(on_db, email, _address(n := emails.index(email))).status_code == 201, n
    per_account = 2  # well below the account limit: only the address's count can lock
    for email in emails[:5]:
        for _ in range(per_account):
            assert _login(on_db, email, "wrong guess", HERE).status_code == 401
    assert 5 * per_account == throttle.LOGIN_ADDRESS.free_failures
    locked = _login(on_db, emails[5], PASSWORD, HERE)
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) >= 1
    assert _login(on_db, emails[5], PASSWORD, THERE).status_code == 200


def test_a_forged_forwarded_for_is_ignored_unless_configured(on_db: Api) -> None:
    for n in range(5):
        _register(on_db, f"fox{n}@example.com", _address(n))
    for n in range(throttle.LOGIN_ADDRESS.free_failures):
        forged = {"X-Forwarded-For": _address(100 + n)}
        response = _login(on_db, f"fox{n % 5}@example.com", "wrong guess", HERE, **forged)
        assert response.status_code == 401
    # Every forged value counted against the one real address.
    assert _login(on_db, "fox0@example.com", PASSWORD, HERE).status_code == 429


def test_the_client_address_rules() -> None:
    plain = Config.from_env({"VID2MP3_HOME": "/tmp/unused", "JWT_SECRET": "s"})
    trusting = Config.from_env(
        {"VID2MP3_HOME": "/tmp/unused", "JWT_SECRET": "s", "TRUSTED_PROXY_HEADER": "X-Real-Ip"}
    )
    forged = {"X-Forwarded-For": "192.0.2.1", "X-Real-Ip": "192.0.2.1, 198.51.100.4"}
    assert throttle.client_address(plain, HERE, forged) == HERE
    # The right-most entry: the one the trusted proxy wrote, whatever the client put before it.
    assert throttle.client_address(trusting, HERE, forged) == "198.51.100.4"
    assert throttle.client_address(trusting, HERE, {}) == HERE
    assert throttle.client_address(trusting, HERE, {"X-Real-Ip": "not an address"}) == HERE
    assert throttle.client_address(trusting, HERE, {"X-Real-Ip": "198.51.100.4:5123"}) == (
        "198.51.100.4"
    )
    # IPv6 counts per /64: one host usually has the whole network.
    v6 = throttle.client_address(plain, "2001:db8:1:2:aaaa::1", {})
    assert v6 == throttle.client_address(plain, "2001:db8:1:2:bbbb::2", {}) == "2001:db8:1:2::/64"
    assert throttle.client_address(plain, "::ffff:198.51.100.4", {}) == "198.51.100.4"
    assert throttle.client_address(plain, None, {}) == "unknown"


def test_unknown_emails_are_throttled_like_accounts(on_db: Api) -> None:
    _register(on_db, "real@example.com", _address(200))
    answers = {}
    for email, base in (("real@example.com", 0), ("ghost@example.com", 20)):
        answers[email] = [
            (r.status_code, r.get_json()["error"].split(" in ")[0])
            for r in (
                _login(on_db, email, "wrong guess", _address(base + n))
                for n in range(throttle.LOGIN_ACCOUNT.free_failures + 1)
            )
        ]
    assert answers["real@example.com"] == answers["ghost@example.com"]
    assert answers["ghost@example.com"][-1][0] == 429


def test_attempts_at_the_same_moment_cannot_pass_the_limit(on_mariadb: Api) -> None:
    _register(on_mariadb, "cat@example.com")
    statuses: list[int] = []
    start = threading.Barrier(12)

    def attempt(n: int) -> None:
        start.wait()
        statuses.append(
            _login(on_mariadb, "cat@example.com", "wrong guess", _address(n)).status_code
        )

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Counted before the password is checked: exactly the free attempts reached it.
    assert sorted(statuses) == [401] * throttle.LOGIN_ACCOUNT.free_failures + [429] * 7


def test_sign_ups_told_taken_are_limited_per_address(on_db: Api) -> None:
    assert _register(on_db, "dan@example.com", THERE).status_code == 201
    for _ in range(throttle.SIGNUP_ADDRESS.free_failures):
        assert _register(on_db, "dan@example.com", HERE).status_code == 409
    # A new email from there is refused too, so the answer says nothing about accounts.
    refused = _register(on_db, "new@example.com", HERE)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert _register(on_db, "new@example.com", THERE).status_code == 201
    # Successful sign-ups are not failures: many people behind one address may sign up.
    for n in range(throttle.SIGNUP_ADDRESS.free_failures + 1):
        assert _register(on_db, f"crowd{n}@example.com", THERE).status_code == 201


# -- through the gateway of `vid2mp3 up`: in this process, and with --processes --------------


def _lock_an_address_under_forged_headers(first: Client, second: Client) -> None:
    """Ten failures from HERE, each under another forged X-Forwarded-For, alternating between
    the two gateways; then HERE is refused and THERE is not."""
    for n in range(6):
        body = {"email": f"eve{n}@example.com", "password": PASSWORD}
        assert _via(first, "register", _address(n), json=body).status_code == 201
    for n in range(throttle.LOGIN_ADDRESS.free_failures):
        node = (first, second)[n % 2]
        forged = {"X-Forwarded-For": _address(100 + n)}
        account = f"eve{1 + n % 5}@example.com"
        wrong = _via(node, "login", HERE, auth=(account, "wrong guess"), headers=forged)
        assert wrong.status_code == 401
    for node in (first, second):
        assert _via(node, "login", HERE, auth=("eve5@example.com", PASSWORD)).status_code == 429
    # The functions saw the gateway's client address, not the gateway's own connection.
    assert _via(second, "login", THERE, auth=("eve5@example.com", PASSWORD)).status_code == 200


def test_the_in_process_gateway_overwrites_forwarded_for(
    tmp_path: Path, apps: dict[str, Any]
) -> None:
    # As `vid2mp3 up` configures itself.
    svc = bootstrap.build(make_config(tmp_path / "home", TRUSTED_PROXY_HEADER="X-Forwarded-For"))
    bootstrap.install(svc)
    try:
        client = Client(Gateway(apps))
        _lock_an_address_under_forged_headers(client, client)
    finally:
        bootstrap.install(None)
        svc.db.close()


# -- across processes, through the gateway of `vid2mp3 up --processes` ------------------------


@pytest.fixture
def two_instances(mysql_url: str, tmp_path: Path) -> Iterator[list[Client]]:
    """Two separately started login/register processes on one MariaDB, each behind its own
    gateway (as two nodes of ``vid2mp3 up --processes``); clients of the two gateways."""
    database = MysqlDatabase(mysql_url)
    migrate(database)
    database.close()
    env = {k: v for k, v in os.environ.items() if k not in ("K_SINK", "EVENTS_URL", "SMTP_URL")}
    env.update(
        DATABASE_URL=mysql_url,
        JWT_SECRET=SECRET,
        STORAGE_URL=f"file://{tmp_path / 'blobs'}",
        VID2MP3_HOME=str(tmp_path / "home"),
        PUBLIC_URL="http://127.0.0.1:1",
        # What `vid2mp3 up` gives its function processes.
        TRUSTED_PROXY_HEADER="X-Forwarded-For",
    )
    nodes = [FunctionProcesses(["login", "register"], env=env) for _ in range(2)]
    try:
        for node in nodes:
            node.start()
        for node in nodes:
            node.wait_ready()
        gateways = [
            Gateway({n: FunctionProxy(n, node.host, p.port) for n, p in node.processes.items()})
            for node in nodes
        ]
        yield [Client(gateway) for gateway in gateways]
    finally:
        for node in nodes:
            node.stop()


def _via(client: Client, path: str, address: str, **kwargs: Any) -> Any:
    return client.post(f"/function/{path}", environ_base={"REMOTE_ADDR": address}, **kwargs)


def test_counts_hold_across_processes_and_forged_headers_never_count(
    two_instances: list[Client],
) -> None:
    first, second = two_instances
    # The address: forged X-Forwarded-For values are overwritten by each gateway.
    _lock_an_address_under_forged_headers(first, second)
    # The account: failures alternate between the two instances; five lock it on both.
    for n in range(throttle.LOGIN_ACCOUNT.free_failures):
        node = (first, second)[n % 2]
        wrong = _via(node, "login", _address(10 + n), auth=("eve0@example.com", "wrong guess"))
        assert wrong.status_code == 401
    for node in (first, second):
        right = _via(node, "login", _address(20), auth=("eve0@example.com", PASSWORD))
        assert right.status_code == 429 and int(right.headers["Retry-After"]) >= 1
