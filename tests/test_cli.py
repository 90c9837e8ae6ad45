"""End to end: the ``vid2mp3`` command as a user runs it, in subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from mutagen.id3 import ID3
from mutagen.mp3 import MP3

from tests.fixtures.net import free_port, stop, wait_until_up
from vid2mp3 import media

# The console script pip installed next to this interpreter: what a user runs.
VID2MP3 = [str(Path(sys.executable).parent / "vid2mp3")]


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "STORAGE_", "EVENTS_", "K_SINK", "SMTP_", "OPENAI_"))
    }
    return {**env, "VID2MP3_HOME": str(home), **extra}


def test_convert_writes_the_mp3_and_reports_it(tmp_path: Path, make_video: Any) -> None:
    video = make_video("mkv_opus")
    out = tmp_path / "out" / "talk.mp3"
    done = subprocess.run(
        [*VID2MP3, "convert", str(video), "-o", str(out), "--bitrate", "128k"],
        env=env_for(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(str(out))
    assert "0:04" in done.stdout
    audio = MP3(out)
    assert audio.info.length == pytest.approx(media.probe(str(video)).audio_duration, abs=0.1)
    assert audio.info.bitrate == 128000
    assert str(ID3(out)["TIT2"]) == video.stem
    assert "100%" in done.stderr  # the progress bar reached the end
    assert len(list((tmp_path / "home" / "outbox").glob("*.eml"))) == 1


def test_convert_defaults_to_the_video_name_and_copies_mp3_audio(
    tmp_path: Path, make_video: Any
) -> None:
    video = tmp_path / "lecture.avi"
    video.write_bytes(make_video("avi_mp3").read_bytes())
    done = subprocess.run(
        [*VID2MP3, "convert", str(video), "--no-progress"],
        env=env_for(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert MP3(tmp_path / "lecture.mp3").info.bitrate == 96000  # the source's stream, not 192k


@pytest.mark.parametrize(("kind", "words"), [("no_audio", "no audio"), ("empty", "empty")])
def test_convert_failure_is_one_line_and_nonzero(
    tmp_path: Path, make_video: Any, kind: str, words: str
) -> None:
    done = subprocess.run(
        [
            *VID2MP3,
            "convert",
            str(make_video(kind)),
            "-o",
            str(tmp_path / "x.mp3"),
            "--no-progress",
        ],
        env=env_for(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("vid2mp3: error:")
    assert words in done.stderr.lower()
    assert not (tmp_path / "x.mp3").exists()


def test_convert_of_a_missing_file_says_so(tmp_path: Path) -> None:
    done = subprocess.run(
        [*VID2MP3, "convert", str(tmp_path / "nope.mp4")],
        env=env_for(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "no such file" in done.stderr


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """``vid2mp3 up`` on a free port, as a subprocess; yields its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [*VID2MP3, "up", "--port", str(port)],
        env=env_for(tmp_path / "home"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{base}/healthz", process=proc)
        yield base
    finally:
        stop(proc, timeout=10)


def test_http_flow_against_vid2mp3_up(server: str, make_video: Any, tmp_path: Path) -> None:
    fn = f"{server}/function"
    assert (
        requests.post(
            f"{fn}/register", json={"email": "zed@example.com", "password": "correct horse battery"}
        ).status_code
        == 201
    )
    login = requests.post(f"{fn}/login", auth=("zed@example.com", "correct horse battery"))
    assert login.status_code == 200
    auth = {"Authorization": f"Bearer {login.json()['token']}"}
    video = make_video("mp4_moov_end")
    init = requests.post(
        f"{fn}/upload-init",
        json={"filename": "meeting.mp4", "size": video.stat().st_size, "content_type": "video/mp4"},
        headers=auth,
    )
    assert init.status_code == 201, init.text
    job_id, upload = init.json()["job_id"], init.json()["upload"]
    assert upload["url"].startswith(server)
    with video.open("rb") as f:
        put = requests.request(upload["method"], upload["url"], data=f, headers=upload["headers"])
    assert put.status_code == 200, put.text
    assert requests.post(f"{fn}/jobs/{job_id}/complete", headers=auth).status_code == 202
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = requests.get(f"{fn}/jobs/{job_id}", headers=auth).json()
        if job["state"] in ("completed", "failed"):
            break
        time.sleep(0.2)
    assert job["state"] == "completed", job
    download = requests.get(f"{fn}/jobs/{job_id}/download", headers=auth)
    assert download.status_code == 200
    assert "filename*=UTF-8''meeting.mp3" in download.headers["Content-Disposition"]
    mp3 = tmp_path / "got.mp3"
    mp3.write_bytes(download.content)
    assert MP3(mp3).info.length == pytest.approx(media.probe(str(video)).audio_duration, abs=0.1)
    assert requests.get(f"{fn}/jobs", headers=auth).json()["jobs"][0]["id"] == job_id
    missing = requests.get(f"{server}/function/nope")
    assert missing.status_code == 404
    assert "no function" in missing.json()["error"]
