"""``vid2mp3 up --processes`` from a folder holding a ``vid2mp3/`` directory (a repository
checkout after ``pip install .``): every function process must import the installed package."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.fixtures.net import free_port, stop, wait_until_up

pytest_plugins = ["tests.fixtures.services_real"]


@pytest.fixture
def up_beside_a_decoy(mysql_url: str, amqp_url: str, tmp_path: Path) -> Iterator[str]:
    """The gateway URL of ``up --processes`` run with a decoy ``vid2mp3`` in its cwd."""
    decoy = tmp_path / "vid2mp3"
    decoy.mkdir()
    (decoy / "__init__.py").write_text('raise ImportError("decoy imported")\n')
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": mysql_url,
        "EVENTS_URL": amqp_url,
        "STORAGE_URL": f"file://{tmp_path / 'blobs'}",
        "VID2MP3_HOME": str(tmp_path / "home"),
        "JWT_SECRET": "processes-test-secret",
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    for key in ("K_SINK", "SMTP_URL", "OPENAI_BASE_URL", "OPENAI_API_KEY"):
        env.pop(key, None)
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        # -P keeps this interpreter off the decoy too, as the ``vid2mp3`` console script does:
        # only the function processes are under test.
        process = subprocess.Popen(
            [sys.executable, "-P", "-m", "vid2mp3.cli", "up", "--processes", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/healthz", process=process, log=log, timeout=90)
        yield url
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
