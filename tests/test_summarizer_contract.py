"""One contract for every ``Summarizer``: the OpenAI adapter, through the real ``openai`` client
over HTTP against the fake OpenAI-compatible server (tests/fixtures/fake_openai.py). No test
uses a fake summarizer (they fake the server instead); one added here must pass the same tests.

What each must do: name its two models; ``transcribe`` returns the words the service heard in an
audio file; ``summarize`` returns the service's answer as it came; a service that keeps failing
makes either call raise a ``Vid2mp3Error`` whose message a user can read, never the client
library's exception, the API key or a traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_config
from tests.fixtures.fake_openai import (  # noqa: F401 (fixture)
    CHAT,
    TRANSCRIPTIONS,
    FakeOpenAI,
    Reply,
    fake_openai_fixture,
)
from vid2mp3 import media
from vid2mp3.ai.openai import OpenAISummarizer
from vid2mp3.errors import Vid2mp3Error
from vid2mp3.ports import Summarizer

SUMMARIZERS = ("openai",)
API_KEY = "contract-key"
# More than any summarizer's retries: the service is down for the whole test.
OUTAGE = 10


@pytest.fixture(params=SUMMARIZERS)
def summarizer(
    request: pytest.FixtureRequest, tmp_path: Path, fake_openai: FakeOpenAI
) -> Summarizer:
    config = make_config(
        tmp_path / "home",
        OPENAI_BASE_URL=fake_openai.base_url,
        OPENAI_API_KEY=API_KEY,
        TRANSCRIBE_MODEL="contract-whisper",
        SUMMARY_MODEL="contract-summarizer",
        AI_TIMEOUT="5",
    )
    return OpenAISummarizer(config)


@pytest.fixture
def audio(make_video: Callable[..., Path], tmp_path: Path) -> Path:
    """A short MP3 made by the library's own conversion."""
    out = tmp_path / "talk.mp3"
    media.extract_audio(str(make_video("mp4", seconds=1.0)), str(out), title="talk")
    return out


def test_models_are_named(summarizer: Summarizer) -> None:
    assert summarizer.transcribe_model == "contract-whisper"
    assert summarizer.summary_model == "contract-summarizer"


def test_transcribe_returns_the_words_heard(
    summarizer: Summarizer, fake_openai: FakeOpenAI, audio: Path
) -> None:
    fake_openai.transcript = lambda _n, _request: "Bonjour, ça va ? Très bien."
    assert summarizer.transcribe(str(audio)) == "Bonjour, ça va ? Très bien."


def test_summarize_returns_the_raw_answer(summarizer: Summarizer, fake_openai: FakeOpenAI) -> None:
    # Not what vid2mp3.summaries asks for: checking the answer is the caller's business.
    fake_openai.answer = '{"summary": "Ünïcode.", "extra": [1, 2]}  '
    answer = summarizer.summarize("Part 1 is spoken.", instructions="Answer in JSON.")
    assert answer == '{"summary": "Ünïcode.", "extra": [1, 2]}  '


def _transcribe(summarizer: Summarizer, audio: Path) -> Any:
    return summarizer.transcribe(str(audio))


def _summarize(summarizer: Summarizer, audio: Path) -> Any:
    return summarizer.summarize("Part 1 is spoken.", instructions="Answer in JSON.")


@pytest.mark.parametrize(
    ("endpoint", "call"),
    [(TRANSCRIPTIONS, _transcribe), (CHAT, _summarize)],
    ids=["transcribe", "summarize"],
)
def test_a_service_failing_with_500_gives_a_readable_error(
    summarizer: Summarizer,
    fake_openai: FakeOpenAI,
    audio: Path,
    endpoint: str,
    call: Callable[[Summarizer, Path], Any],
) -> None:
    fake_openai.script(endpoint, *[Reply.error(500)] * OUTAGE)
    with pytest.raises(Vid2mp3Error) as caught:
        call(summarizer, audio)
    message = caught.value.message
    assert "500" in message
    assert API_KEY not in message
    assert "Traceback" not in message and "\n" not in message
    # It gave up after retrying rather than at the first 500.
    assert 1 < len(fake_openai.received(endpoint)) < OUTAGE
