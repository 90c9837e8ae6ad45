"""The OpenAI-compatible path (``TRANSCRIBER=openai``: the transcribe step, then the summarize
step) through the real ``openai`` client, over HTTP, against a fake OpenAI-compatible server on
127.0.0.1 (tests/fixtures/fake_openai.py)."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from mutagen.mp3 import MP3

from tests.conftest import Api, binary_event, make_config
from tests.fixtures.fake_archive import RecordingStore
from tests.fixtures.fake_openai import (  # noqa: F401 (fixture)
    CHAT,
    TRANSCRIPTIONS,
    FakeOpenAI,
    Reply,
    fake_openai_fixture,
)
from vid2mp3 import bootstrap, events, media, summaries, users
from vid2mp3.ai import openai as openai_adapter
from vid2mp3.ai import openai_transcriber
from vid2mp3.bus.memory import MemoryBus
from vid2mp3.model import Job, JobState
from vid2mp3.services import Services
from vid2mp3.speech import formats

API_LIMIT = 25 * 1000 * 1000


@pytest.fixture
def services(
    request: pytest.FixtureRequest, tmp_path: Path, fake_openai: FakeOpenAI
) -> Iterator[Services]:
    """Embedded services whose AI is the fake server; a test may parametrize ``services``
    indirectly with more settings (overrides conftest's)."""
    env = {
        "OPENAI_BASE_URL": fake_openai.base_url,
        "OPENAI_API_KEY": "test-key",
        "TRANSCRIBE_MODEL": "test-whisper",
        "SUMMARY_MODEL": "test-summarizer",
        "TRANSCRIBER": "openai",
        "AI_TIMEOUT": "5",
        **getattr(request, "param", {}),
    }
    svc = bootstrap.build(make_config(tmp_path / "home", **env))
    bootstrap.install(svc)
    yield svc
    bootstrap.install(None)
    svc.db.close()


def with_settings(**env: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("services", [env], indirect=True)


def _ffmpeg(*args: str) -> None:
    argv = [media.find_ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args]
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, capture_output=True)


@pytest.fixture(scope="session")
def mp3(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``mp3("short")``: 4 s at 64 kbit/s; ``"chunk"``: 20 s at 320 kbit/s (800 kB);
    ``"long"``: the chunk 34 times over, frames copied (> 25 MB, made in well under a second)."""
    folder = tmp_path_factory.mktemp("mp3")
    made: dict[str, Path] = {}

    def make(kind: str) -> Path:
        if kind in made:
            return made[kind]
        out = folder / f"{kind}.mp3"
        if kind == "long":
            _ffmpeg("-stream_loop", "33", "-i", str(make("chunk")), "-c", "copy", str(out))
        else:
            seconds, rate = {"short": ("4", "64k"), "chunk": ("20", "320k")}[kind]
            tone = f"sine=frequency=440:sample_rate=44100:duration={seconds}"
            _ffmpeg("-f", "lavfi", "-i", tone, "-c:a", "libmp3lame", "-b:a", rate, str(out))
        made[kind] = out
        return out

    return make


def converted_job(services: Services, mp3: Path, email: str = "ada@example.com") -> events.Event:
    """A job whose MP3 is stored and converted, and the ``audio.converted`` event about it."""
    with services.uow() as uow:
        user = uow.users.by_email(email)
    user = user or users.register(services, email, "correct horse")
    job_id = str(uuid.uuid4())
    key = f"audio/{job_id}/talk.mp3"
    size = services.store.put_file(key, str(mp3), content_type="audio/mpeg", metadata={})
    info = MP3(mp3).info
    now = time.time()
    job = Job(
        id=job_id,
        user_id=user.id,
        filename="talk.mp4",
        content_type="video/mp4",
        size=size,
        video_key=f"videos/{job_id}/talk.mp4",
        state=JobState.CONVERTED,
        created_at=now,
        updated_at=now,
        progress=100,
        mp3_key=key,
        mp3_size=size,
        mp3_duration=info.length,
        mp3_bitrate=info.bitrate,
        summary_status="pending",
    )
    with services.uow() as uow:
        uow.jobs.add(job)
        uow.commit()
    data = {
        "job_id": job_id,
        "user_id": user.id,
        "filename": job.filename,
        "mp3_key": key,
        "mp3_size": size,
        "duration": info.length,
        "bitrate": info.bitrate,
    }
    return events.Event(events.AUDIO_CONVERTED, job_id, data, source="/tests")


Summarize = Callable[[], events.Event]


@pytest.fixture
def summarize(mp3: Callable[[str], Path], apps: dict[str, Any], services: Services) -> Summarize:
    """Runs the summarize function once for a new converted job of the short MP3 (answered
    200); returns the ``audio.converted`` event it was given."""

    def run() -> events.Event:
        event = converted_job(services, mp3("short"))
        assert deliver(apps, event) == 200
        return event

    return run


def deliver(apps: dict[str, Any], event: events.Event) -> int:
    """``audio.converted`` to transcribe, then the ``audio.transcribed`` it announced (the
    last one for the job) to summarize, as the bus would; the first answer that is not 200,
    else summarize's."""
    response = apps["transcribe"].test_client().post("/", **binary_event(event))
    if response.status_code != 200:
        return int(response.status_code)
    sink = bootstrap.services().sink
    assert isinstance(sink, MemoryBus)
    transcribed = [
        e
        for e in sink.published
        if e.type == events.AUDIO_TRANSCRIBED and e.subject == event.subject
    ]
    response = apps["summarize"].test_client().post("/", **binary_event(transcribed[-1]))
    return int(response.status_code)


def job_of(services: Services, event: events.Event) -> Job:
    with services.uow() as uow:
        job = uow.jobs.get(event.subject)
    assert job is not None
    return job


def summarized(services: Services) -> list[events.Event]:
    sink = services.sink
    assert isinstance(sink, MemoryBus)
    return [e for e in sink.published if e.type == events.AUDIO_SUMMARIZED]


def stored_transcript(services: Services, event: events.Event) -> str | None:
    key = f"transcripts/{event.subject}.json"  # Job.transcript_key
    if services.store.size(key) is None:
        return None
    with services.store.open(key) as f:
        return formats.from_json(f.read()).text


def test_pipeline_summarizes_stores_and_emails(
    make_video: Any, api: Api, bus: MemoryBus, services: Services, fake_openai: FakeOpenAI
) -> None:
    summary = (
        "Someone says <b>hello</b> & waves. They talk about tones. Then they stop. "
        "A sine plays. It ends. That is all."
    )
    fake_openai.answer = json.dumps({"summary": summary, "category": "Greetings"})
    token = api.token("ada@example.com")
    job_id = api.upload(token, make_video("mp4"))
    bus.run_until_idle()

    job = api.job(token, job_id)
    assert job["state"] == "completed"
    assert job["summary_status"] == "done", job
    assert (job["summary"], job["category"]) == (summary, "Greetings")
    assert job["context_truncated"] is False

    [upload] = fake_openai.received(TRANSCRIPTIONS)
    assert upload.fields["model"] == "test-whisper"
    assert upload.file_name is not None and upload.file_name.endswith(".mp3")
    assert upload.file_size == job["mp3"]["size"]
    assert upload.headers["authorization"] == "Bearer test-key"
    [chat] = fake_openai.received(CHAT)
    assert chat.json["model"] == "test-summarizer"
    assert chat.json["response_format"] == {"type": "json_object"}
    system, user = chat.json["messages"]
    assert system["role"] == "system" and "JSON" in system["content"]
    assert user == {"role": "user", "content": "Part 1 is spoken."}

    with services.uow() as uow:
        row = uow.jobs.get(job_id)
    assert row is not None
    assert (row.transcribe_model, row.summary_model) == ("openai test-whisper", "test-summarizer")
    with services.store.open(row.transcript_key) as f:
        assert formats.from_json(f.read()).text == "Part 1 is spoken."

    [done] = [e for e in bus.published if e.type == events.AUDIO_SUMMARIZED]
    assert done.data["summary_status"] == "done" and done.data["category"] == "Greetings"
    mails = [
        message_from_bytes(p.read_bytes(), policy=policy.default)
        for p in sorted((services.config.home / "outbox").glob("*.eml"))
    ]
    [summary_mail] = [m for m in mails if m["Subject"].startswith("Summary of")]
    page = summary_mail.get_body(("html",)).get_content()
    assert "Someone says &lt;b&gt;hello&lt;/b&gt; &amp; waves." in page
    assert summary in summary_mail.get_body(("plain",)).get_content()
    assert "Greetings" in page


def test_an_mp3_over_25_mb_is_split_and_joined_in_order(
    mp3: Callable[[str], Path],
    apps: dict[str, Any],
    services: Services,
    fake_openai: FakeOpenAI,
) -> None:
    long = mp3("long")
    assert long.stat().st_size > API_LIMIT
    fake_openai.transcript = lambda n, _r: f"piece-{n}."
    event = converted_job(services, long)
    assert deliver(apps, event) == 200

    uploads = fake_openai.received(TRANSCRIPTIONS)
    assert len(uploads) >= 2
    sizes = [u.file_size or 0 for u in uploads]
    assert all(0 < size <= API_LIMIT for size in sizes)
    assert sum(sizes) == pytest.approx(long.stat().st_size, rel=0.02)
    joined = " ".join(f"piece-{n}." for n in range(1, len(uploads) + 1))
    assert fake_openai.received(CHAT)[0].json["messages"][1]["content"] == joined
    assert stored_transcript(services, event) == joined
    assert job_of(services, event).summary_status == "done"


def test_a_lower_limit_gives_more_pieces_each_within_it(
    mp3: Callable[[str], Path],
    apps: dict[str, Any],
    services: Services,
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chunk = mp3("chunk")
    limit = chunk.stat().st_size // 5
    monkeypatch.setattr(openai_transcriber, "UPLOAD_LIMIT", limit)
    event = converted_job(services, chunk)
    assert deliver(apps, event) == 200

    uploads = fake_openai.received(TRANSCRIPTIONS)
    assert len(uploads) >= 5
    assert all(0 < (u.file_size or 0) <= limit for u in uploads)
    # Each piece is an MP3 of its own (ID3 header or an MPEG frame sync), not a byte slice.
    assert all(u.file_head[:3] == b"ID3" or u.file_head[0] == 0xFF for u in uploads)
    assert job_of(services, event).summary_status == "done"


@with_settings(AI_MAX_CHARS="100")
def test_a_long_transcript_is_cut_and_flagged(
    summarize: Summarize,
    services: Services,
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.transcript = lambda _n, _r: "word " * 100
    event = summarize()

    system, user = fake_openai.received(CHAT)[0].json["messages"]
    assert 80 <= len(user["content"]) <= 100
    assert "cut off" in system["content"]
    job = job_of(services, event)
    assert job.summary_status == "done"
    assert job.context_truncated is True
    assert summarized(services)[0].data["context_truncated"] is True
    assert stored_transcript(services, event) == ("word " * 100).strip()


def test_rate_limits_and_server_errors_are_retried(
    summarize: Summarize,
    services: Services,
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.script(TRANSCRIPTIONS, Reply.error(429))
    fake_openai.script(CHAT, Reply.error(500), Reply.error(503))
    event = summarize()

    assert len(fake_openai.received(TRANSCRIPTIONS)) == 2
    assert len(fake_openai.received(CHAT)) == 3
    assert job_of(services, event).summary_status == "done"


@with_settings(AI_TIMEOUT="1")
def test_a_slow_answer_times_out_and_is_asked_again(
    summarize: Summarize,
    services: Services,
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.script(CHAT, Reply.slow(3))
    event = summarize()

    assert len(fake_openai.received(CHAT)) == 2
    assert job_of(services, event).summary_status == "done"


def test_after_the_last_retry_the_summary_fails_and_the_job_completes(
    summarize: Summarize,
    services: Services,
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.script(CHAT, *[Reply.error(500)] * 10)
    event = summarize()

    attempts = openai_adapter.MAX_RETRIES + 1
    assert len(fake_openai.received(CHAT)) == attempts
    job = job_of(services, event)
    assert job.state is JobState.COMPLETED
    assert job.summary_status == "failed"
    assert job.summary_reason is not None
    assert "HTTP 500" in job.summary_reason and f"{attempts} attempts" in job.summary_reason
    assert job.mp3_key and services.store.size(job.mp3_key)  # the MP3 is untouched
    [failed] = summarized(services)
    assert failed.data["summary_status"] == "failed"
    assert failed.data["reason"] == job.summary_reason
    # The transcript was paid for; it is kept.
    assert stored_transcript(services, event) == "Part 1 is spoken."


@pytest.mark.parametrize(
    ("status", "words"),
    [(401, "credentials"), (404, "no model 'test-whisper'"), (400, "refused the request")],
)
def test_errors_that_retrying_cannot_fix_fail_at_once(
    summarize: Summarize,
    status: int,
    words: str,
    services: Services,
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.script(TRANSCRIPTIONS, Reply.error(status))
    event = summarize()

    assert len(fake_openai.received(TRANSCRIPTIONS)) == 1
    assert fake_openai.received(CHAT) == []
    job = job_of(services, event)
    assert (job.state, job.transcript_status) == (JobState.COMPLETED, "failed")
    assert words in (job.transcript_reason or "")
    # No transcript, no summary: said so, with the transcript's reason.
    assert job.summary_status == "skipped"
    assert job.transcript_reason and job.transcript_reason in (job.summary_reason or "")


def test_a_body_that_is_not_json_fails_with_a_reason(
    summarize: Summarize,
    services: Services,
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.script(CHAT, Reply.not_json())
    event = summarize()

    job = job_of(services, event)
    assert job.summary_status == "failed"
    assert "could not be read" in (job.summary_reason or "")


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        ("I would rather not summarize this.", "not JSON"),
        ('{"summary": "Cut', "not JSON"),
        ('{"summary": "Cut", }', "not valid JSON"),
        ('{"summary": "", "category": "Talk"}', "no summary"),
        ('{"summary": "Fine.", "category": 3}', "no category"),
        ('{"summary": "Fine.", "category": "far too many words here"}', "1 to 3 words"),
    ],
)
def test_bad_model_output_fails_with_a_reason(
    summarize: Summarize,
    answer: str,
    words: str,
    services: Services,
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.answer = answer
    event = summarize()

    job = job_of(services, event)
    assert job.state is JobState.COMPLETED
    assert job.summary_status == "failed"
    assert words in (job.summary_reason or ""), job.summary_reason
    assert job.summary is None


def test_json_in_a_code_fence_is_accepted(
    summarize: Summarize,
    services: Services,
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.answer = '```json\n{"summary": "It  hums.\\nOnly that.", "category": "tones."}\n```'
    event = summarize()

    job = job_of(services, event)
    assert (job.summary, job.category) == ("It hums. Only that.", "tones")


@with_settings(OPENAI_BASE_URL="", OPENAI_API_KEY="", TRANSCRIBER="off")
def test_without_an_ai_endpoint_the_summary_is_skipped(
    summarize: Summarize,
    services: Services,
    fake_openai: FakeOpenAI,
) -> None:
    event = summarize()

    job = job_of(services, event)
    assert (job.state, job.summary_status) == (JobState.COMPLETED, "skipped")
    assert job.summary_reason == summaries.NOT_CONFIGURED
    assert fake_openai.requests == []


def test_silence_is_skipped_without_asking_for_a_summary(
    summarize: Summarize,
    services: Services,
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.transcript = lambda _n, _r: "  "
    event = summarize()

    job = job_of(services, event)
    assert (job.summary_status, job.summary_reason) == ("skipped", summaries.NO_SPEECH)
    assert fake_openai.received(CHAT) == []


def test_a_redelivered_event_does_not_transcribe_again(
    summarize: Summarize,
    apps: dict[str, Any],
    services: Services,
    fake_openai: FakeOpenAI,
) -> None:
    event = summarize()
    assert deliver(apps, event) == 200
    copy = events.Event(event.type, event.subject, event.data, event.source)
    assert deliver(apps, copy) == 200

    assert len(fake_openai.received(TRANSCRIPTIONS)) == 1
    assert len(fake_openai.received(CHAT)) == 1
    assert len(summarized(services)) == 1


def test_a_crash_after_transcribing_reuses_the_stored_transcript(
    mp3: Callable[[str], Path],
    apps: dict[str, Any],
    services: Services,
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = openai_adapter.OpenAISummarizer.summarize
    calls: list[str] = []

    def dies_once(self: Any, transcript: str, *, instructions: str) -> str:
        calls.append(transcript)
        if len(calls) == 1:
            raise RuntimeError("the worker died")
        return real(self, transcript, instructions=instructions)

    monkeypatch.setattr(openai_adapter.OpenAISummarizer, "summarize", dies_once)
    event = converted_job(services, mp3("short"))
    assert deliver(apps, event) == 500  # the broker delivers it again
    assert job_of(services, event).summary_status == "pending"
    assert deliver(apps, event) == 200

    assert len(fake_openai.received(TRANSCRIPTIONS)) == 1
    assert calls == ["Part 1 is spoken.", "Part 1 is spoken."]
    assert job_of(services, event).summary_status == "done"


@with_settings(OPENAI_BASE_URL="http://127.0.0.1:9/v1")
def test_an_unreachable_service_fails_the_summary_with_a_reason(
    summarize: Summarize,
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(openai_adapter, "MAX_RETRIES", 1)
    event = summarize()

    job = job_of(services, event)
    assert (job.transcript_status, job.summary_status) == ("failed", "skipped")
    assert "could not be reached (after 2 attempts)" in (job.transcript_reason or "")
    assert "test-key" not in (job.transcript_reason or "")


def test_a_store_with_a_summaries_collection_gets_the_seed_document(
    mp3: Callable[[str], Path],
    apps: dict[str, Any],
    fake_openai: FakeOpenAI,
    tmp_path: Path,
) -> None:
    store = RecordingStore(tmp_path / "blobs")
    config = make_config(
        tmp_path / "home",
        OPENAI_BASE_URL=fake_openai.base_url,
        OPENAI_API_KEY="k",
        TRANSCRIBER="openai",
    )
    svc = bootstrap.build(config, store=store, archive=store)
    bootstrap.install(svc)
    try:
        event = converted_job(svc, mp3("short"))
        assert deliver(apps, event) == 200
        assert deliver(apps, event) == 200
    finally:
        bootstrap.install(None)
        svc.db.close()

    [doc] = store.summaries
    assert doc["job_id"] == event.subject
    assert doc["file_id"] == event.data["mp3_key"]
    assert doc["filename"] == "talk.mp3"
    assert doc["category"] == "Test tones"
    assert doc["summary"].startswith("The recording is a steady test tone.")
    assert doc["context_truncated"] is False
    assert doc["created_at"].tzinfo is not None
