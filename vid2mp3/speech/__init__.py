"""What is said in the audio: the ``Transcriber`` port, the ``Transcript`` value, its file
formats, and the local faster-whisper adapter.

- ``transcript``: ``Transcript`` and ``Segment``.
- ``port``: the ``Transcriber`` protocol and the ``Progress`` callback.
- ``formats``: TXT, SRT, VTT and JSON writers; the JSON reader.
- ``models``: model sizes and folders; the bundled ``base`` model and its pinned checksums.
- ``cues``: a transcribed window cut into subtitle-sized segments.
- ``whisper_local``: ``WhisperLocal``, needs the ``speech`` extra (``vid2mp3[speech]``).
"""

from __future__ import annotations

import importlib.util

from vid2mp3.speech.port import Progress, Transcriber
from vid2mp3.speech.transcript import Segment, Transcript


def local_available() -> bool:
    """Whether the local adapter can run here: the ``speech`` extra is installed."""
    return importlib.util.find_spec("faster_whisper") is not None


__all__ = ["Progress", "Segment", "Transcriber", "Transcript", "local_available"]
