"""The ``Summarizer`` on any OpenAI-compatible API: OpenAI itself, or a local Ollama, vLLM or
LocalAI server (``OPENAI_BASE_URL=http://localhost:11434/v1``).

Temporary failures (429, 5xx, timeouts, dropped connections) are retried by the ``openai``
client with exponential backoff, ``max_retries`` times, each attempt bounded by ``AI_TIMEOUT``
seconds; it honours the server's ``Retry-After``. What is left after that becomes a
``Vid2mp3Error`` whose message is shown to the user as the reason the summary failed, so it
names what happened without echoing credentials or internal addresses' secrets.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from vid2mp3.config import Config
from vid2mp3.errors import ConfigError, PermanentError, TransientError

#: Retries after the first attempt, on 429, 5xx, timeouts and connection errors.
MAX_RETRIES = 3
# A server's error text lands in a reason a user reads; a page of HTML helps nobody.
_MAX_DETAIL = 200


def _display_url(url: str) -> str:
    """``url`` without user info or query, fit for a message."""
    if not url:
        return "api.openai.com"
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class OpenAISummarizer:
    """Transcribe with ``TRANSCRIBE_MODEL`` and summarize with ``SUMMARY_MODEL``.

    Args:
        config: ``openai_base_url`` (empty: OpenAI's own), ``openai_api_key`` (empty is fine
            for local servers), the two model names and ``ai_timeout`` (seconds per attempt).
        max_retries: retries after the first attempt of each request (default
            ``MAX_RETRIES``).

    Raises:
        ConfigError: the ``openai`` package is not installed.
    """

    def __init__(self, config: Config, *, max_retries: int | None = None) -> None:
        try:
            import openai
        except ImportError as exc:
            raise ConfigError(
                "OPENAI_BASE_URL/OPENAI_API_KEY is set but the 'openai' package is not "
                "installed; install it with: pip install 'vid2mp3[ai]'"
            ) from exc
        if max_retries is None:
            max_retries = MAX_RETRIES
        self.transcribe_model = config.transcribe_model
        self.summary_model = config.summary_model
        self._openai: Any = openai
        self._timeout = config.ai_timeout
        self._attempts = max_retries + 1
        self._where = _display_url(config.openai_base_url)
        self._client: Any = openai.OpenAI(
            base_url=config.openai_base_url or None,
            # Local servers ignore the key, but the client refuses to start without one.
            api_key=config.openai_api_key or "not-needed",
            timeout=config.ai_timeout,
            max_retries=max_retries,
        )

    def transcribe(self, audio_path: str, *, language: str | None = None) -> str:
        """The text spoken in the audio file at ``audio_path`` (``language``: forced, ISO
        639-1); raises ``Vid2mp3Error``."""
        forced = {"language": language} if language else {}
        with open(audio_path, "rb") as audio, self._errors("transcribing", self.transcribe_model):
            result = self._client.audio.transcriptions.create(
                model=self.transcribe_model, file=audio, **forced
            )
        text = getattr(result, "text", None)
        if not isinstance(text, str):
            raise PermanentError(
                f"transcribing failed: {self.transcribe_model} at {self._where} answered "
                "without a transcript"
            )
        return text

    def summarize(self, transcript: str, *, instructions: str) -> str:
        """The model's answer (asked for as one JSON object); raises ``Vid2mp3Error``."""
        with self._errors("summarizing", self.summary_model):
            completion = self._client.chat.completions.create(
                model=self.summary_model,
                messages=[
                    {"role": "system", "content": instructions},
                    {"role": "user", "content": transcript},
                ],
                response_format={"type": "json_object"},
                temperature=0.2,
            )
        choices = getattr(completion, "choices", None) or []
        content = choices[0].message.content if choices else None
        if not content:
            raise PermanentError(f"summarizing failed: {self.summary_model} gave an empty answer")
        return str(content)

    @contextmanager
    def _errors(self, what: str, model: str) -> Iterator[None]:
        """Turn the client's exceptions (after its own retries) into the library's errors."""
        openai = self._openai
        tries = f"after {self._attempts} attempts" if self._attempts > 1 else "once"
        try:
            yield
        except openai.APITimeoutError as exc:
            raise TransientError(
                f"{what} failed: the AI service at {self._where} did not answer within "
                f"{self._timeout:g} s ({tries})"
            ) from exc
        except openai.APIConnectionError as exc:
            raise TransientError(
                f"{what} failed: the AI service at {self._where} could not be reached ({tries})"
            ) from exc
        except openai.RateLimitError as exc:
            raise TransientError(
                f"{what} failed: the AI service kept answering 429 (rate limited) {tries}"
            ) from exc
        except openai.APIStatusError as exc:
            raise _status_error(what, model, exc.status_code, _detail(exc), tries) from exc
        except (openai.OpenAIError, ValueError) as exc:
            # ValueError: a body that claims to be JSON and is not (a proxy's error page).
            raise PermanentError(
                f"{what} failed: the answer of the AI service at {self._where} could not be "
                f"read ({type(exc).__name__})"
            ) from exc


def _status_error(what: str, model: str, status: int, detail: str, tries: str) -> Exception:
    if status >= 500:
        return TransientError(
            f"{what} failed: the AI service kept failing with HTTP {status} {tries}"
        )
    if status in (401, 403):
        return PermanentError(
            f"{what} failed: the AI service refused our credentials (HTTP {status})"
        )
    if status == 404:
        return PermanentError(
            f"{what} failed: the AI service has no model {model!r} or no such endpoint "
            f"(HTTP 404): {detail}"
        )
    return PermanentError(
        f"{what} failed: the AI service refused the request (HTTP {status}): {detail}"
    )


def _detail(exc: Any) -> str:
    body = getattr(exc, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    text = str(message or getattr(exc, "message", "") or exc)
    return text[:_MAX_DETAIL]
