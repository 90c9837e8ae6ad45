"""The whole embedded pipeline through the real functions: upload → MP3 → email."""

from __future__ import annotations

from email import message_from_bytes
from typing import Any

import pytest
from mutagen.id3 import ID3
from mutagen.mp3 import MP3

from tests.conftest import Api
from vid2mp3 import media
from vid2mp3.bus.memory import MemoryBus
from vid2mp3.services import Services


def outbox(services: Services) -> list[Any]:
    folder = services.config.home / "outbox"
    return [message_from_bytes(p.read_bytes()) for p in sorted(folder.glob("*.eml"))]


@pytest.mark.parametrize("kind", ["mp4", "mp4_moov_end", "mkv_opus", "webm", "mov", "avi_mp3"])
def test_video_becomes_mp3_and_email(
    kind: str, make_video: Any, api: Api, bus: MemoryBus, services: Services
) -> None:
    video = make_video(kind)
    token = api.token("ada@example.com")
    job_id = api.upload(token, video)
    bus.run_until_idle()

    job = api.job(token, job_id)
    assert job["state"] == "completed", job
    assert job["progress"] == 100
    assert job["summary_status"] == "skipped"
    assert "OPENAI" in job["summary_reason"]
    download = api.call(
        "jobs", "GET", f"/{job_id}/download", headers={"Authorization": f"Bearer {token}"}
    )
    assert download.status_code == 200
    assert download.headers["Content-Type"] == "audio/mpeg"
    mp3 = services.config.home / "out.mp3"
    mp3.write_bytes(download.get_data())
    source = media.probe(str(video))
    assert MP3(mp3).info.length == pytest.approx(source.audio_duration, abs=0.1)
    assert str(ID3(mp3)["TIT2"]) == video.stem
    assert job["mp3"]["size"] == mp3.stat().st_size

    mails = outbox(services)
    assert [m["Subject"] for m in mails] == [f"Your MP3 is ready: {video.name}"]
    assert mails[0]["To"] == "ada@example.com"


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("no_audio", "no audio"),
        ("text_as_mp4", "not"),
        ("truncated_mp4", "truncated"),
        ("hls_local", "not"),
        ("hls_http", "not"),
    ],
)
def test_bad_input_fails_job_with_reason_and_email(
    kind: str, words: str, make_video: Any, api: Api, bus: MemoryBus, services: Services
) -> None:
    token = api.token("bob@example.com")
    video = make_video(kind)
    # A playlist disguised as .mp4 is what a hostile upload would look like.
    job_id = api.upload(token, video.with_suffix(".mp4") if kind.startswith("hls") else video)
    bus.run_until_idle()

    job = api.job(token, job_id)
    assert job["state"] == "failed"
    assert words in job["error"].lower()
    assert job["mp3"] is None
    mails = outbox(services)
    assert len(mails) == 1
    assert mails[0]["Subject"].startswith("We could not convert")
    assert not bus.dead_letters
