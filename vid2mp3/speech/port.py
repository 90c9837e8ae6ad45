"""The ``Transcriber`` port: audio file in, ``Transcript`` out.

Adapters: ``whisper_local.WhisperLocal`` (faster-whisper on this machine's CPU) and
``vid2mp3.ai.openai_transcriber.OpenAITranscriber`` (an OpenAI-compatible API); the pipeline
(``vid2mp3.transcription``) depends on this protocol only and gets one from
``bootstrap.make_transcriber`` (``TRANSCRIBER``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from vid2mp3.speech.transcript import Transcript

#: Called with the fraction of the audio transcribed so far, 0.0 to 1.0, never decreasing.
Progress = Callable[[float], None]


class Transcriber(Protocol):
    def transcribe(
        self,
        audio_path: str | Path,
        *,
        language: str | None = None,
        progress: Progress | None = None,
    ) -> Transcript:
        """Transcribe ``audio_path``; ``language`` forces the language (ISO 639-1), ``None``
        detects it. Raises ``InvalidInput`` for a language the model does not know and
        ``UnsupportedMedia`` for audio it cannot read."""
        ...
