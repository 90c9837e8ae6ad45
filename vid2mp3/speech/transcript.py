"""What a transcription produced: timed segments of text, the language, the model that heard it.

Values only: no I/O, no model. Writers for TXT, SRT, VTT and JSON are in ``formats``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Segment:
    """One stretch of speech, ``start`` and ``end`` in seconds from the start of the audio."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Transcript:
    """Everything that was said in one audio file.

    ``language`` is an ISO 639-1 code as Whisper names it (``en``, ``de``, ...): the one forced,
    or the one detected; ``None`` only when nothing was forced and no speech was heard.
    ``duration`` is the length of the whole audio in seconds, speech or not; ``model`` says
    which model and settings made it, so a stored transcript says where it came from.
    """

    language: str | None
    duration: float
    segments: list[Segment] = field(default_factory=list)
    model: str = ""

    @property
    def text(self) -> str:
        """The words alone, segments joined by a space."""
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())
