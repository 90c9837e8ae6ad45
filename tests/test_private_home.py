"""The embedded state is its owner's alone: ``VID2MP3_HOME`` and every folder in it 0700, every
file 0600 (database and its WAL, videos, MP3s, emails, the secret), whatever the umask."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api, make_config
from vid2mp3 import bootstrap, private_files
from vid2mp3.mail.outbox import OutboxMailer
from vid2mp3.model import JobState
from vid2mp3.storage.local import LocalBlobStore

VID2MP3 = [str(Path(sys.executable).parent / "vid2mp3")]
#: The usual umask, which left a fresh home 0755 and its files 0644.
USUAL_UMASK = 0o022


def modes(home: Path) -> dict[str, str]:
    """Relative path → octal mode of everything under ``home`` (and ``home`` itself, as ".")."""
    found = {".": oct(stat.S_IMODE(home.stat().st_mode))}
    for path in home.rglob("*"):
        found[str(path.relative_to(home))] = oct(stat.S_IMODE(path.lstat().st_mode))
    return found


def assert_private(home: Path) -> dict[str, str]:
    seen = modes(home)
    wrong = {
        name: mode
        for name, mode in seen.items()
        if mode != ("0o700" if (home / name).is_dir() else "0o600")
    }
    assert not wrong, f"not private: {wrong}"
    return seen


@pytest.fixture
def usual_umask() -> Iterator[None]:
    previous = os.umask(USUAL_UMASK)
    yield
    os.umask(previous)


def test_a_conversion_from_the_command_line_leaves_only_private_state(
    tmp_path: Path, make_video: Any
) -> None:
    video = tmp_path / "talk.mp4"
    shutil.copy(make_video("mp4"), video)
    video.chmod(0o644)
    home = tmp_path / "fresh" / "home"  # neither exists yet
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "STORAGE_", "EVENTS_", "K_SINK", "SMTP_", "OPENAI_"))
    }
    done = subprocess.run(
        [*VID2MP3, "convert", str(video), "-o", str(tmp_path / "talk.mp3")],
        env={**env, "VID2MP3_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=lambda: os.umask(USUAL_UMASK),
    )
    assert done.returncode == 0, done.stderr
    seen = assert_private(home)
    kinds = {name.split("/", 1)[0] for name in seen}
    assert {"vid2mp3.db", "jwt_secret", "blobs", "outbox"} <= kinds, seen
    assert any(name.endswith(".mp3") for name in seen), seen
    assert any(name.endswith(".eml") for name in seen), seen
    # The user's own video was stored by copy, not by a link whose mode we would have to change.
    assert stat.S_IMODE(video.stat().st_mode) == 0o644
    # What the user asked for keeps the user's umask.
    assert stat.S_IMODE((tmp_path / "talk.mp3").stat().st_mode) == 0o644


def test_an_upload_converted_through_the_functions_leaves_only_private_state(
    tmp_path: Path, make_video: Any, usual_umask: None
) -> None:
    from vid2mp3.runtime import functions

    home = tmp_path / "home"
    services = bootstrap.build(make_config(home))
    bootstrap.install(services)
    try:
        apps = functions.load_all()
        bus = bootstrap.deliver_in_process(services, apps)
        assert bus is not None
        api = Api(apps)
        token = api.token("private@example.com")
        job_id = api.upload(token, make_video("mp4"))
        bus.run_until_idle()
        assert api.job(token, job_id)["state"] == JobState.COMPLETED.value
    finally:
        bootstrap.install(None)
        services.db.close()
    seen = assert_private(home)
    assert "vid2mp3.db" in seen
    assert any(name.startswith(f"blobs/videos/{job_id}/") for name in seen), seen
    assert any(name.startswith(f"blobs/mp3/{job_id}/") for name in seen), seen
    assert any(name.startswith("outbox/") and name.endswith(".eml") for name in seen), seen


def test_each_store_creates_private_folders_and_files(tmp_path: Path, usual_umask: None) -> None:
    import io
    from email.message import EmailMessage

    root = tmp_path / "a" / "b" / "blobs"
    store = LocalBlobStore(root)
    store.put_stream("videos/j/x.mp4", io.BytesIO(b"v"), content_type="video/mp4", metadata={})
    public = tmp_path / "public.mp3"
    public.write_bytes(b"ID3")
    public.chmod(0o644)
    store.put_file("mp3/j/x.mp3", str(public), content_type="audio/mpeg", metadata={})
    assert stat.S_IMODE(public.stat().st_mode) == 0o644
    message = EmailMessage()
    message["To"] = "a" * 64 + "@" + "b" * 180 + ".example"  # a long address still fits
    message.set_content("hi")
    OutboxMailer(tmp_path / "a" / "outbox").send(message)
    assert_private(tmp_path / "a")
    assert private_files.is_private(root / "mp3" / "j" / "x.mp3")
