"""The transcribe step in the embedded pipeline: a spoken clip becomes an MP3, a stored
transcript and the job's transcript fields; each step once; failures never cost the MP3."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import srt
import webvtt

from tests.conftest import Api, binary_event, make_config
from tests.fixtures.speech import (
    ENGLISH,
    MakeSpeech,
    requires_speech,
    speech_clip,
)
from vid2mp3 import bootstrap, dead_letters, events, transcription
from vid2mp3.bus.memory import MemoryBus
from vid2mp3.errors import UnsupportedMedia
from vid2mp3.model import Job
from vid2mp3.services import Services
from vid2mp3.speech import Transcript, formats, languages
from vid2mp3.speech.port import Progress, Transcriber

__all__ = ["speech_clip"]  # a fixture, imported for pytest to find
pytestmark = requires_speech


class Counting:
    """A transcriber that counts its calls and passes them on (or fails, when told to)."""

    def __init__(self, inner: Transcriber | None, fail: Exception | None = None) -> None:
        self.inner = inner
        self.fail = fail
        self.calls = 0
        self.languages: list[str | None] = []
        self.lock = threading.Lock()

    def transcribe(
        self,
        audio_path: str | Path,
        *,
        language: str | None = None,
        progress: Progress | None = None,
    ) -> Transcript:
        with self.lock:
            self.calls += 1
            self.languages.append(language)
        if self.fail is not None:
            raise self.fail
        assert self.inner is not None
        return self.inner.transcribe(audio_path, language=language, progress=progress)


def _services(home: Path, transcriber: Counting | None = None, **env: str) -> Services:
    config = make_config(home, **env)
    factory = (lambda: transcriber) if transcriber is not None else None
    if transcriber is not None and transcriber.inner is None and transcriber.fail is None:
        transcriber.inner = bootstrap.make_transcriber(config)
    return bootstrap.build(config, transcriber_factory=factory)


@pytest.fixture
def counting() -> Counting:
    return Counting(None)


@pytest.fixture
def services(tmp_path: Path, counting: Counting) -> Iterator[Services]:
    """Embedded services whose transcriber (the local default) counts its calls."""
    svc = _services(tmp_path / "home", counting)
    bootstrap.install(svc)
    yield svc
    bootstrap.install(None)
    svc.db.close()


def _job(services: Services, job_id: str) -> Job:
    with services.uow() as uow:
        job = uow.jobs.get(job_id)
    assert job is not None
    return job


def _published(bus: MemoryBus, event_type: str, job_id: str) -> list[events.Event]:
    return [e for e in bus.published if e.type == event_type and e.subject == job_id]


def test_a_spoken_clip_becomes_mp3_and_stored_transcript_each_step_once(
    speech_clip: MakeSpeech, api: Api, bus: MemoryBus, services: Services, counting: Counting
) -> None:
    token = api.token("ada@example.com")
    job_id = api.upload(token, speech_clip(ENGLISH, "mp3"))
    bus.run_until_idle()

    public = api.job(token, job_id)
    assert public["state"] == "completed", public
    assert public["transcript_status"] == "done"
    assert public["language"] == "en"
    assert public["mp3"] is not None
    # No AI endpoint here: the summary is skipped as before, the transcript is not.
    assert public["summary_status"] == "skipped"
    job = _job(services, job_id)
    with services.store.open(job.transcript_key) as f:
        stored = formats.from_json(f.read())
    words = stored.text.lower()
    heard = [w for w in ENGLISH.content_words if w in words]
    assert len(heard) >= len(ENGLISH.content_words) * 0.6, (heard, words)
    assert job.transcribe_model and "faster-whisper" in job.transcribe_model
    assert counting.calls == 1
    for event_type in (
        events.AUDIO_CONVERTED,
        events.AUDIO_TRANSCRIBED,
        events.AUDIO_SUMMARIZED,
    ):
        assert len(_published(bus, event_type, job_id)) == 1, event_type
    (transcribed,) = _published(bus, events.AUDIO_TRANSCRIBED, job_id)
    assert transcribed.data["transcript_status"] == "done"
    assert transcribed.data["language"] == "en"
    assert not bus.dead_letters


def test_a_redelivered_audio_converted_does_not_transcribe_twice(
    speech_clip: MakeSpeech,
    api: Api,
    apps: dict[str, Any],
    bus: MemoryBus,
    services: Services,
    counting: Counting,
) -> None:
    token = api.token("ada@example.com")
    job_id = api.upload(token, speech_clip(ENGLISH, "mp3"))
    bus.run_until_idle()
    (converted,) = _published(bus, events.AUDIO_CONVERTED, job_id)
    client = apps["transcribe"].test_client()

    assert client.post("/", **binary_event(converted)).status_code == 200  # same event id
    again = events.Event(converted.type, converted.subject, dict(converted.data), source="/t")
    assert client.post("/", **binary_event(again)).status_code == 200  # a new id, job moved on
    bus.run_until_idle()

    assert counting.calls == 1
    assert len(_published(bus, events.AUDIO_TRANSCRIBED, job_id)) == 1


@pytest.mark.parametrize(
    "failure",
    [UnsupportedMedia("the audio cannot be decoded"), OSError(28, "No space left on device")],
    ids=["bad audio", "disk full"],
)
def test_a_transcription_failure_completes_the_job_with_its_mp3(
    failure: Exception,
    tmp_path: Path,
    make_video: Any,
    apps: dict[str, Any],
) -> None:
    failing = Counting(None, fail=failure)
    svc = _services(tmp_path / "home", failing)
    bootstrap.install(svc)
    try:
        bus = bootstrap.deliver_in_process(svc, apps)
        assert bus is not None
        bus.base_delay = 0.01
        api = Api(apps)
        token = api.token("bob@example.com")
        job_id = api.upload(token, make_video("mp4"))
        bus.run_until_idle()
        public = api.job(token, job_id)
        assert public["state"] == "completed", public
        assert public["mp3"] is not None
        assert public["transcript_status"] == "failed"
        if isinstance(failure, UnsupportedMedia):
            # The file's fault: said at once, never retried.
            assert public["transcript_reason"] == "the audio cannot be decoded"
            assert failing.calls == 1
        else:
            # Our disk: retried, then the dead-letter policy settles the transcript.
            assert public["transcript_reason"] == dead_letters.TRANSCRIPT_GAVE_UP
            assert failing.calls == svc.config.max_attempts
        assert public["summary_status"] == "skipped"
        assert svc.store.size(_job(svc, job_id).transcript_key) is None
        assert len(_published(bus, events.AUDIO_TRANSCRIBED, job_id)) == 1
    finally:
        bootstrap.install(None)
        svc.db.close()


def test_transcriber_off_skips_the_transcript_naming_the_setting(
    tmp_path: Path, make_video: Any, apps: dict[str, Any]
) -> None:
    svc = _services(tmp_path / "home", TRANSCRIBER="off")
    assert svc.transcriber is None
    bootstrap.install(svc)
    try:
        bus = bootstrap.deliver_in_process(svc, apps)
        assert bus is not None
        api = Api(apps)
        token = api.token("eve@example.com")
        job_id = api.upload(token, make_video("mp4"))
        bus.run_until_idle()
        public = api.job(token, job_id)
        assert public["state"] == "completed", public
        assert public["transcript_status"] == "skipped"
        assert "TRANSCRIBER" in public["transcript_reason"]
        assert public["language"] is None
        assert public["transcript_reason"] == transcription.TURNED_OFF
    finally:
        bootstrap.install(None)
        svc.db.close()


def _transcript(api: Api, token: str, job_id: str, fmt: str | None) -> Any:
    query = "" if fmt is None else f"?format={fmt}"
    return api.call(
        "jobs", "GET", f"/{job_id}/transcript{query}", headers={"Authorization": f"Bearer {token}"}
    )


def test_the_transcript_endpoint_serves_four_formats_to_the_owner_only(
    speech_clip: MakeSpeech, api: Api, bus: MemoryBus, services: Services, tmp_path: Path
) -> None:
    token = api.token("ada@example.com")
    clip = speech_clip(ENGLISH, "mp3")
    job_id = api.upload(token, clip)
    bus.run_until_idle()
    stored = transcription.read_transcript(services, _job(services, job_id))
    assert stored is not None and stored.segments

    answers = {fmt: _transcript(api, token, job_id, fmt) for fmt in formats.FORMATS}
    for fmt, response in answers.items():
        assert response.status_code == 200, (fmt, response.get_data())
        assert response.headers["Content-Type"] == formats.MEDIA_TYPES[fmt]
        stem = clip.stem
        assert response.headers["Content-Disposition"].endswith(f"''{stem}.{fmt}")
    assert answers["txt"].get_data(as_text=True) == formats.to_txt(stored)
    assert _transcript(api, token, job_id, None).get_data() == answers["txt"].get_data()
    assert formats.from_json(answers["json"].get_data()) == stored
    assert json.loads(answers["json"].get_data())["language"] == "en"
    cues = list(srt.parse(answers["srt"].get_data(as_text=True)))
    assert [c.content for c in cues] == [c.text for c in formats.cues(stored)]
    vtt = tmp_path / "t.vtt"
    vtt.write_bytes(answers["vtt"].get_data())
    assert len(webvtt.read(str(vtt)).captions) == len(cues)

    unknown = _transcript(api, token, job_id, "docx")
    assert unknown.status_code == 400 and "txt" in unknown.get_json()["error"]
    stranger = api.token("mallory@example.com")
    assert _transcript(api, stranger, job_id, "txt").status_code == 404
    assert api.call("jobs", "GET", f"/{job_id}/transcript").status_code == 401


def test_no_transcript_yet_is_404(tmp_path: Path, make_video: Any, apps: dict[str, Any]) -> None:
    svc = _services(tmp_path / "home", TRANSCRIBER="off")
    bootstrap.install(svc)
    try:
        bus = bootstrap.deliver_in_process(svc, apps)
        assert bus is not None
        api = Api(apps)
        token = api.token("eve@example.com")
        job_id = api.upload(token, make_video("mp4"))  # its deliveries wait for the bus to run
        before = _transcript(api, token, job_id, "srt")
        assert before.status_code == 404 and "not made yet" in before.get_json()["error"]
        bus.run_until_idle()
        skipped = _transcript(api, token, job_id, "srt")
        assert skipped.status_code == 404 and "skipped" in skipped.get_json()["error"]
    finally:
        bootstrap.install(None)
        svc.db.close()


def test_a_language_asked_for_at_upload_is_passed_to_the_transcriber(
    speech_clip: MakeSpeech, api: Api, bus: MemoryBus, services: Services, counting: Counting
) -> None:
    token = api.token("ada@example.com")
    job_id = api.upload(token, speech_clip(ENGLISH, "mp3"), language="DE")
    bus.run_until_idle()

    assert counting.languages == ["de"]
    public = api.job(token, job_id)
    assert (public["transcript_status"], public["language"]) == ("done", "de")
    assert public["options"]["language"] == "de"


@pytest.mark.parametrize("language", ["xx", "english", 7, "e n"])
def test_upload_init_refuses_an_unknown_language(api: Api, language: object) -> None:
    token = api.token("ada@example.com")
    answer = api.call(
        "upload-init",
        "POST",
        json={
            "filename": "talk.mp4",
            "size": 1000,
            "content_type": "video/mp4",
            "options": {"language": language},
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 400
    assert "ISO 639-1" in answer.get_json()["error"]


def test_the_language_list_is_the_models_own() -> None:
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    assert set(_LANGUAGE_CODES) == languages.WHISPER_LANGUAGES


def test_cli_convert_writes_the_transcript_next_to_the_mp3(
    speech_clip: MakeSpeech, tmp_path: Path
) -> None:
    from tests.test_cli import VID2MP3, env_for

    clip = tmp_path / "talk.wav"
    clip.write_bytes(speech_clip(ENGLISH).read_bytes())
    done = subprocess.run(
        [*VID2MP3, "convert", str(clip), "--transcript", "srt,vtt,json"],
        env=env_for(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "language: en" in done.stdout
    assert "transcribing" in done.stderr
    for fmt in ("srt", "vtt", "json"):
        assert str(tmp_path / f"talk.{fmt}") in done.stdout
    assert not (tmp_path / "talk.txt").exists()
    stored = formats.from_json((tmp_path / "talk.json").read_text())
    assert (tmp_path / "talk.srt").read_text() == formats.to_srt(stored)
    assert any(w in stored.text.lower() for w in ENGLISH.content_words)

    again = subprocess.run(
        [*VID2MP3, "convert", str(clip), "--no-transcript", "--force", "-o", str(tmp_path / "b")],
        env=env_for(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr
    assert "language:" not in again.stdout
    assert not list(tmp_path.glob("b.*"))
    bad = subprocess.run(
        [*VID2MP3, "convert", str(clip), "--language", "klingon", "-o", str(tmp_path / "c.mp3")],
        env=env_for(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0 and "--language" in bad.stderr
