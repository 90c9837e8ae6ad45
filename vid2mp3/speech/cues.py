"""A transcribed window (up to 30 s of speech, one text) cut into subtitle-sized cues.

Without word times, the window is cut at sentence ends (long sentences at commas, then at
words, into pieces of about equal length) and each cut is placed by the share of characters
before it: close enough for steady speech, off by a second or two where someone pauses
mid-window. With word times (``word_timestamps=True``), cues start and end on words, and a
pause of ``CUE_GAP`` starts a new one.
"""

from __future__ import annotations

import math
import re
from typing import Any

from vid2mp3.speech.transcript import Segment

#: Longest subtitle cue, in characters: two lines of the usual 42.
MAX_CUE_CHARS = 84
#: A pause between words at least this long (seconds) starts a new cue (word timestamps only).
CUE_GAP = 1.0

# Full-width marks (CJK) are written as escapes so no reader takes them for ASCII ones.
_SENTENCE_END = re.compile("(?<=[.!?\u2026\u3002\uff01\uff1f])\\s+")
_CLAUSE_END = re.compile("(?<=[,;:\uff0c\u3001])\\s+")


def window_cues(
    start: float, end: float, text: str, words: list[Any] | None = None
) -> list[Segment]:
    """Cues for the window ``start``..``end`` that says ``text`` (with its words' times, if
    they were asked for)."""
    return by_words(words) if words else by_characters(start, end, text)


def shifted(segments: list[Segment], offset: float) -> list[Segment]:
    """``segments`` moved ``offset`` seconds later."""
    return [Segment(round(s.start + offset, 3), round(s.end + offset, 3), s.text) for s in segments]


def by_words(words: list[Any]) -> list[Segment]:
    """Cues from faster-whisper's ``Word`` values (``word``, ``start``, ``end``)."""
    cues: list[Segment] = []
    text = ""
    start = end = 0.0
    for word in words:
        piece = word.word
        gap = word.start - end
        if text and (len(text) + len(piece) > MAX_CUE_CHARS or gap >= CUE_GAP):
            cues.append(Segment(start, end, text.strip()))
            text = ""
        if not text:
            start = word.start
        text += piece
        end = word.end
        if _SENTENCE_END.search(text + " "):
            cues.append(Segment(start, end, text.strip()))
            text = ""
    if text.strip():
        cues.append(Segment(start, end, text.strip()))
    return [c for c in cues if c.text]


def by_characters(start: float, end: float, text: str) -> list[Segment]:
    pieces = [p for p in _split_text(text.strip()) if p]
    total = sum(len(p) for p in pieces)
    if not total:
        return []
    span = max(0.0, end - start)
    cues = []
    done = 0
    for piece in pieces:
        piece_start = start + span * done / total
        done += len(piece)
        piece_end = start + span * done / total
        cues.append(Segment(round(piece_start, 3), round(piece_end, 3), piece))
    return cues


def _split_text(text: str) -> list[str]:
    """Sentences, each no longer than ``MAX_CUE_CHARS`` (cut at clauses, then at words)."""
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        if len(sentence) <= MAX_CUE_CHARS:
            pieces.append(sentence)
            continue
        for clause in _CLAUSE_END.split(sentence):
            pieces.extend(_wrap_words(clause))
    return _merge_short(pieces)


def _wrap_words(text: str) -> list[str]:
    """``text`` in as few pieces as fit, of about equal length (no lone last word)."""
    if len(text) <= MAX_CUE_CHARS:
        return [text]
    target = len(text) / math.ceil(len(text) / MAX_CUE_CHARS)
    lines: list[str] = []
    line = ""
    for word in text.split():
        if line and (len(line) >= target or len(line) + 1 + len(word) > MAX_CUE_CHARS):
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(line)
    return lines


def _merge_short(pieces: list[str]) -> list[str]:
    """Join pieces that fit together into one cue, so a clause split leaves no one-word
    flashes on screen."""
    merged: list[str] = []
    for piece in pieces:
        if merged and len(merged[-1]) + 1 + len(piece) <= MAX_CUE_CHARS // 2:
            merged[-1] = f"{merged[-1]} {piece}"
        else:
            merged.append(piece)
    return merged
