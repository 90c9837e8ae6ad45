"""The ``Transcriber`` on an OpenAI-compatible API (``TRANSCRIBE_MODEL``, e.g. ``whisper-1``).

The API takes at most 25 MB per request, so the MP3 is cut with ffmpeg into pieces within that
(``vid2mp3.media.split_for_upload``, frames copied) and transcribed piece by piece, in order.
The plain-text answer has no timestamps: each piece becomes one segment spanning that piece's
share of the audio (by its size: the pieces are frames of one constant-rate MP3), and the
language is the forced one (``None`` when none was forced).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from vid2mp3 import media
from vid2mp3.errors import PermanentError, TransientError, Vid2mp3Error
from vid2mp3.ports import Summarizer
from vid2mp3.speech.port import Progress
from vid2mp3.speech.transcript import Segment, Transcript

#: Largest file the transcription API takes in one request (OpenAI's limit is 25 MB). Read at
#: call time, so tests can lower it instead of making huge files.
UPLOAD_LIMIT = 25 * 1000 * 1000


class TranscriptionFailed(PermanentError):
    """The AI service could not transcribe (after its client's retries); the message is the
    reason the user reads. The job still completes, with ``transcript_status=failed``."""

    status = 502


class OpenAITranscriber:
    """Transcribe through ``client.transcribe`` (``vid2mp3.ai.openai.OpenAISummarizer``)."""

    def __init__(self, client: Summarizer, *, ffmpeg_binary: str = "") -> None:
        self.client = client
        self.ffmpeg_binary = ffmpeg_binary
        self.label = f"openai {client.transcribe_model}"

    def transcribe(
        self,
        audio_path: str | Path,
        *,
        language: str | None = None,
        progress: Progress | None = None,
    ) -> Transcript:
        with tempfile.TemporaryDirectory(prefix="vid2mp3-pieces-") as folder:
            work = Path(folder) / "audio.mp3"
            work.symlink_to(Path(audio_path).resolve())
            ffmpeg = media.find_ffmpeg(self.ffmpeg_binary)
            try:
                duration = media.probe(str(work), ffmpeg=ffmpeg).audio_duration or 0.0
                pieces = media.split_for_upload(
                    work, duration or None, limit=UPLOAD_LIMIT, ffmpeg=ffmpeg
                )
            except TransientError:
                raise
            except Vid2mp3Error as exc:
                raise TranscriptionFailed(
                    f"the MP3 could not be prepared for transcription: {exc}"
                ) from exc
            sizes = [piece.stat().st_size for piece in pieces]
            segments: list[Segment] = []
            start = 0.0
            for done, (piece, size) in enumerate(zip(pieces, sizes, strict=True), start=1):
                length = duration * size / (sum(sizes) or 1)
                text = self._ask(piece, language)
                segments.append(Segment(start, start + length, text.strip()))
                start += length
                if progress is not None:
                    progress(done / len(pieces))
        return Transcript(
            language=language,
            duration=duration,
            segments=[s for s in segments if s.text],
            model=self.label,
        )

    def _ask(self, piece: Path, language: str | None) -> str:
        try:
            return self.client.transcribe(str(piece), language=language)
        except Vid2mp3Error as exc:
            raise TranscriptionFailed(exc.message) from exc
