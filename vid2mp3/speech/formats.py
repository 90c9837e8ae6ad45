"""A ``Transcript`` written as TXT, SRT (SubRip), VTT (WebVTT) or JSON, and JSON read back.

Subtitle cues are made once (``cues``) for both subtitle formats: whitespace collapsed to one
line, so a blank line in the text can never end a cue early; empty segments dropped; times in
whole milliseconds, clamped to the audio, each cue starting no earlier than the previous one
ended, so players that expect ordered, non-overlapping cues get them. The JSON form is the
stored one: ``from_json(to_json(t)) == t``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vid2mp3.errors import InvalidInput
from vid2mp3.speech.transcript import Segment, Transcript

FORMATS = ("txt", "srt", "vtt", "json")
MEDIA_TYPES = {
    "txt": "text/plain; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "json": "application/json",
}
#: A pause at least this long (seconds) starts a new paragraph in the TXT form.
PARAGRAPH_GAP = 2.0
JSON_KIND = "vid2mp3.transcript"
JSON_VERSION = 1

_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Cue:
    """A subtitle cue: times in whole milliseconds, text on one line."""

    start_ms: int
    end_ms: int
    text: str


def _one_line(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def cues(transcript: Transcript) -> list[Cue]:
    """The transcript's segments as ordered, non-overlapping cues within the audio."""
    ends = [s.end for s in transcript.segments if math.isfinite(s.end)]
    limit = transcript.duration if transcript.duration > 0 else max(ends, default=0.0)
    limit_ms = max(0, round(limit * 1000))
    made: list[Cue] = []
    previous_end = 0
    for segment in transcript.segments:
        text = _one_line(segment.text)
        if not text:
            continue
        start = _clamp_ms(segment.start, limit_ms)
        end = _clamp_ms(segment.end, limit_ms)
        start = max(start, previous_end)
        # A cue needs some time on screen; at the very end of the audio there may be none left.
        end = max(end, min(start + 1, limit_ms), start)
        made.append(Cue(start, end, text))
        previous_end = end
    return made


def _clamp_ms(seconds: float, limit_ms: int) -> int:
    if not math.isfinite(seconds):
        return limit_ms
    return min(max(0, round(seconds * 1000)), limit_ms)


def _timestamp(ms: int, separator: str) -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{separator}{millis:03d}"


def to_srt(transcript: Transcript) -> str:
    blocks = []
    for number, cue in enumerate(cues(transcript), start=1):
        # SubRip has no escapes; "-->" inside the text would read as a timing line to some
        # parsers, so it loses its arrow head.
        text = cue.text.replace("-->", "->")
        times = f"{_timestamp(cue.start_ms, ',')} --> {_timestamp(cue.end_ms, ',')}"
        blocks.append(f"{number}\n{times}\n{text}\n")
    return "\n".join(blocks)


def _vtt_escape(text: str) -> str:
    # WebVTT cue text may not hold "&", "<" or "-->" raw; escaping ">" covers the arrow.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(transcript: Transcript) -> str:
    blocks = ["WEBVTT\n"]
    for cue in cues(transcript):
        times = f"{_timestamp(cue.start_ms, '.')} --> {_timestamp(cue.end_ms, '.')}"
        blocks.append(f"{times}\n{_vtt_escape(cue.text)}\n")
    return "\n".join(blocks)


def to_txt(transcript: Transcript) -> str:
    """The words as plain paragraphs, a new one after each long pause."""
    paragraphs: list[list[str]] = []
    previous_end: float | None = None
    for segment in transcript.segments:
        text = _one_line(segment.text)
        if not text:
            continue
        if previous_end is None or segment.start - previous_end >= PARAGRAPH_GAP:
            paragraphs.append([])
        paragraphs[-1].append(text)
        previous_end = segment.end
    return "".join(" ".join(words) + "\n\n" for words in paragraphs).rstrip("\n") + "\n"


def to_json(transcript: Transcript) -> str:
    return json.dumps(
        {
            "kind": JSON_KIND,
            "version": JSON_VERSION,
            "language": transcript.language,
            "duration": transcript.duration,
            "model": transcript.model,
            "segments": [
                {"start": s.start, "end": s.end, "text": s.text} for s in transcript.segments
            ],
        },
        ensure_ascii=False,
        indent=1,
    )


def from_json(raw: str | bytes) -> Transcript:
    """The transcript ``to_json`` wrote. Raises ``InvalidInput`` for anything else."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"a transcript must be JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("kind") != JSON_KIND:
        raise InvalidInput(f"not a transcript: expected an object with kind {JSON_KIND!r}")
    if doc.get("version") != JSON_VERSION:
        raise InvalidInput(f"transcript version {doc.get('version')!r} is not {JSON_VERSION}")
    language = doc.get("language")
    if language is not None and not isinstance(language, str):
        raise InvalidInput("transcript language must be a string or null")
    segments_raw = doc.get("segments")
    if not isinstance(segments_raw, list):
        raise InvalidInput("transcript segments must be a list")
    segments = [
        Segment(_number(item, "start"), _number(item, "end"), _string(item, "text"))
        for item in segments_raw
    ]
    return Transcript(
        language=language,
        duration=_number(doc, "duration"),
        segments=segments,
        model=_string(doc, "model"),
    )


def _number(doc: Any, key: str) -> float:
    value = doc.get(key) if isinstance(doc, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"transcript field {key!r} must be a number")
    return float(value)


def _string(doc: Any, key: str) -> str:
    value = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(value, str):
        raise InvalidInput(f"transcript field {key!r} must be a string")
    return value


WRITERS: dict[str, Callable[[Transcript], str]] = {
    "txt": to_txt,
    "srt": to_srt,
    "vtt": to_vtt,
    "json": to_json,
}


def render(transcript: Transcript, fmt: str) -> str:
    """The transcript in ``fmt`` (one of ``FORMATS``)."""
    writer = WRITERS.get(fmt)
    if writer is None:
        raise InvalidInput(f"transcript format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    return writer(transcript)
