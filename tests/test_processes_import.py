"""``vid2mp3 up --processes`` from a folder holding a ``vid2mp3/`` directory (a repository
checkout after ``pip install .``): every function process must import the installed package."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.fixtures import platform as client
from tests.fixtures.net import free_port, stop

pytest_plugins = ["tests.fixtures.services_real"]


@pytest.fixture
def up_beside_a_decoy(mysql_url: str, amqp_url: str, tmp_path: Path) -> Iterator[str]:
    """The gateway URL of ``up --processes`` run with a decoy ``vid2mp3`` in its cwd."""
    decoy = tmp_path / "vid2mp3"
    decoy.mkdir()
    (decoy / "__init__.py").write_text('raise ImportError("decoy imported")\n')
    port = free_port()
    env = client.backends_env(mysql_url, amqp_url, tmp_path, JWT_SECRET="processes-test-secret")
    # -P keeps this interpreter off the decoy too, as the ``vid2mp3`` console script does: only
    # the function processes are under test.
    process = client.start_up(env, port, tmp_path / "up.log", cwd=tmp_path, python_flags=["-P"])
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


def test_function_processes_ignore_a_vid2mp3_folder_in_the_cwd(up_beside_a_decoy: str) -> None:
    url = up_beside_a_decoy
    email, password = "ada@example.com", "correct horse battery"
    registered = requests.post(
        f"{url}/function/register", json={"email": email, "password": password}, timeout=30
    )
    assert registered.status_code == 201, registered.text
    assert registered.headers["Content-Type"].startswith("application/json")
    assert registered.json()["email"] == email
    login = requests.post(f"{url}/function/login", auth=(email, password), timeout=30)
    assert login.status_code == 200, login.text
    assert login.json()["token"]
