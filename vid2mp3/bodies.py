"""Request bodies taken in safely: never read past their limit, JSON parsed strictly.

A limit is enforced while reading, whatever the transfer encoding: a declared
``Content-Length`` above it is refused before a byte is read, and a body of unknown length
(chunked) is read at most one byte past it, then refused. So a chunked upload cannot go around
the size its job declared, and a JSON body is never held whole before it is checked.
"""

from __future__ import annotations

import json
import math
from typing import Any, BinaryIO

from vid2mp3.errors import InvalidInput, PayloadTooLarge

#: The largest JSON body an HTTP function reads; the biggest we expect is a few hundred bytes.
MAX_JSON_BYTES = 64 * 1024
#: The largest CloudEvent an event function takes (ours are a few hundred bytes; a summary is
#: the longest field).
MAX_EVENT_BYTES = 256 * 1024
#: Deeper than any body we take (options is the deepest, at 2); Python's parser would recurse
#: until it crashed on a body nested 100k deep.
MAX_JSON_DEPTH = 64


class BoundedReader:
    """A binary stream that refuses, with ``PayloadTooLarge(message)``, to go past ``limit``
    bytes. It never asks ``stream`` for more than ``limit + 1`` bytes in all, so what a caller
    stores before the refusal is at most ``limit`` bytes.

    Args:
        stream: the body, read with ``read(size)``.
        limit: the most bytes the body may have.
        message: what the 413 says (name the limit and what to do).
    """

    def __init__(self, stream: BinaryIO, limit: int, message: str) -> None:
        self._stream = stream
        self.limit = limit
        self.message = message
        self.count = 0

    def read(self, size: int | None = -1) -> bytes:
        room = self.limit + 1 - self.count
        if size is None or size < 0:
            parts = []
            while room > 0 and (part := self._stream.read(room)):
                parts.append(part)
                room -= len(part)
            data = b"".join(parts)
        else:
            data = self._stream.read(min(size, room))
        self.count += len(data)
        if self.count > self.limit:
            raise PayloadTooLarge(self.message)
        return data

    def readable(self) -> bool:
        return True


def check_length(content_length: int | None, limit: int, message: str) -> None:
    """Refuse (413) a declared ``Content-Length`` above ``limit`` before anything is read."""
    if content_length is not None and content_length > limit:
        raise PayloadTooLarge(message)


def read_capped(stream: BinaryIO, content_length: int | None, limit: int, what: str) -> bytes:
    """The whole body, at most ``limit`` bytes; raises ``PayloadTooLarge`` naming ``what`` and
    the limit, from the ``Content-Length`` when there is one, else after ``limit + 1`` bytes."""
    message = f"{what} may be at most {limit} bytes"
    check_length(content_length, limit, message)
    return BoundedReader(stream, limit, message).read()


def _constant(name: str) -> Any:
    raise InvalidInput(f"the body is not valid JSON: {name} is not a JSON value")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise InvalidInput(f"the body is not valid JSON: {text[:20]} is out of range")
    return value


def parse_json(raw: bytes) -> Any:
    """``raw`` as strict JSON: UTF-8, no NaN/Infinity, nested at most ``MAX_JSON_DEPTH`` deep,
    every string valid Unicode (a lone surrogate escape such as ``"\\ud800"`` parses in Python
    but no database or encoder takes it). Raises ``InvalidInput`` saying what is wrong."""
    try:
        # Decoded here: json.loads would also guess UTF-16 and UTF-32, which JSON does not allow.
        value = json.loads(raw.decode("utf-8"), parse_constant=_constant, parse_float=_finite)
    except RecursionError:
        raise InvalidInput(
            f"the JSON body is nested too deeply (at most {MAX_JSON_DEPTH} levels)"
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}") from None
    _check_value(value, 0)
    return value


def _check_value(value: Any, depth: int) -> None:
    if isinstance(value, str):
        _check_text(value)
        return
    if not isinstance(value, dict | list):
        return
    if depth >= MAX_JSON_DEPTH:
        raise InvalidInput(f"the JSON body is nested too deeply (at most {MAX_JSON_DEPTH} levels)")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check_value(item, depth + 1)
    else:
        for item in value:
            _check_value(item, depth + 1)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(
            "the JSON body has an invalid \\u escape (a lone surrogate); send valid Unicode"
        ) from None
