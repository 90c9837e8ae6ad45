"""Turning ffmpeg's last words (its stderr tail) into an error a user can act on.

Three kinds of trouble must not be confused: the file's (``UnsupportedMedia``, ``NotFound``:
final), storage's (``TransientError``: try again) and the service's own (``ServiceFault``: disk
full, out of memory, working folder unwritable; try again, and never blame the file). Messages
never carry the input's location (an internal path or a presigned URL with credentials) nor
our output path.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator

from vid2mp3.errors import NotFound, ServiceFault, TransientError, UnsupportedMedia, Vid2mp3Error

_NOT_ON_WHITELIST_RE = re.compile(r"^\[(?P<ctx>[^\]@]+?) @ [^\]]*\] Format not on whitelist")
_PROTOCOL_REFUSED_RE = re.compile(r"Protocol '(?P<proto>[^']*)' not on whitelist")
_CTX_PREFIX_RE = re.compile(r"^\[[^\]]* @ 0x[0-9a-fA-F]+\] ")
_NOISE = ("Conversion failed!", "Exiting normally", "Error opening input files:")
_NETWORK_TROUBLE = (
    "Connection refused",
    "Connection reset",
    "timed out",
    "Network is unreachable",
    "Server returned 4",
    "Server returned 5",
    "HTTP error 4",
    "HTTP error 5",
)
_HTTP_NOT_FOUND = ("Server returned 404", "HTTP error 404")
_UNREADABLE = (
    "Invalid data found when processing input",
    "moov atom not found",
    "EBML header parsing failed",
    "could not find codec parameters",
)
_MISSING = "No such file or directory"
_DENIED = "Permission denied"

# The host's trouble, whichever file is open: (strerror texts of glibc and musl builds, what
# a user is told). The words avoid "file" and "your": nothing here is about the upload.
_HOST_TROUBLE: tuple[tuple[tuple[str, ...], str], ...] = (
    (("No space left on device",), "ran out of disk space"),
    (("Disk quota exceeded", "Quota exceeded"), "ran out of disk quota"),
    (("Read-only file system",), "could not write its working data (the disk is read-only)"),
    (("Cannot allocate memory", "Out of memory"), "ran out of memory"),
)
_OUTPUT_DENIED = "was not allowed to write its working data"
_OUTPUT_MISSING = "lost its working folder"

# Only playlist-like demuxers get the hint that they point at other files.
_PLAYLIST_FORMATS = frozenset({"hls", "dash", "concat", "ffconcat"})
ACCEPTED_HINT = "upload a video or audio file such as MP4, MKV, WebM, MOV, AVI or MP3"

# What the service was doing, for ServiceFault messages, by the verb ``failure`` is given.
_DOING = {"read": "reading the video", "convert": "converting", "split": "splitting the audio"}


def _doing(what: str) -> str:
    return _DOING.get(what, f"trying to {what} it")


def service_fault(
    tail: Iterable[str], *, what: str, output: str | None = None, location: str | None = None
) -> ServiceFault | None:
    """The service's own trouble in ffmpeg's stderr, if any, as a ``ServiceFault``.

    Checked whatever the exit code: ffmpeg 5 exits 0 when only its trailer failed to write.

    Args:
        tail: ffmpeg's last stderr lines.
        what: the verb ``failure`` takes ("read", "convert", "split").
        output: the path ffmpeg was writing, so "Permission denied" and "No such file" about it
            are told apart from the same words about the input.
        location: the input as given to ``-i``, so words in its name are not read as ffmpeg's.

    Returns:
        The error to raise, or None when the lines show no trouble of ours.
    """
    lines = list(tail)
    for markers, told in _HOST_TROUBLE:
        if any(marker in line for line in lines for marker in markers):
            return _fault(told, what)
    for line in lines:
        if not _about_output(line, output, location):
            continue
        if _DENIED in line:
            return _fault(_OUTPUT_DENIED, what)
        if _MISSING in line:
            return _fault(_OUTPUT_MISSING, what)
    return None


def _about_output(line: str, output: str | None, location: str | None) -> bool:
    if output is None:
        return False
    if output in line:
        return True  # ffmpeg 5: "/tmp/x/out.mp3: Permission denied"
    # ffmpeg 7+: "Error opening output files: ...". The paths go first: a folder named "output"
    # must not make an input's trouble ours.
    words = line.replace(location, "") if location else line
    lowered = words.replace(output, "").lower()
    return "output" in lowered and "input" not in lowered


def _fault(told: str, what: str) -> ServiceFault:
    return ServiceFault(f"the service {told} while {_doing(what)}; it will try again")


@contextlib.contextmanager
def our_files(what: str) -> Iterator[None]:
    """Turn an ``OSError`` from our own file handling into a ``ServiceFault`` without a path.

    Args:
        what: the verb ``failure`` takes ("convert", "split"), for the message.

    Raises:
        ServiceFault: the block raised an ``OSError``; the message keeps only its strerror.
    """
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ServiceFault(
            f"the service could not handle its working data while {_doing(what)} ({reason}); "
            "it will try again"
        ) from None


def _redact(line: str, location: str, output: str | None) -> str:
    # The location is an internal temp path or a presigned URL carrying credentials; neither
    # belongs in a message shown to a user or written to logs. Nor does our output path.
    line = line.replace(location, "<input>")
    if output:
        line = line.replace(output, "<output>")
    return _CTX_PREFIX_RE.sub("", line).strip()


def failure(
    tail: Iterable[str], location: str, *, what: str, output: str | None = None
) -> Vid2mp3Error:
    """Turn ffmpeg's last words into an error a user can act on.

    Args:
        tail: ffmpeg's last stderr lines.
        location: the input as given to ``-i`` (redacted from messages).
        what: the verb for the message: "ffmpeg could not <what> the file".
        output: the path ffmpeg was writing, if any (redacted; tells output trouble apart).

    Returns:
        The error to raise (never raises itself).
    """
    lines = list(tail)
    fault = service_fault(lines, what=what, output=output, location=location)
    if fault is not None:
        return fault
    for line in lines:
        refused = _NOT_ON_WHITELIST_RE.match(line)
        if refused:
            name = refused.group("ctx").strip()
            # ffmpeg >= 7 logs "[in#0 @ ...]" instead of the demuxer name.
            return format_refused(None if name.startswith("in#") else name)
        if "Format not on whitelist" in line:
            return format_refused(None)
        protocol = _PROTOCOL_REFUSED_RE.search(line)
        if protocol:
            return UnsupportedMedia(
                f"the file refers to another resource ({protocol.group('proto')}), which is not "
                f"allowed; {ACCEPTED_HINT}"
            )
    if any(marker in line for line in lines for marker in _HTTP_NOT_FOUND):
        return NotFound("the video file was not found in storage")
    # Storage being unreachable (or a presigned URL having expired) says nothing about the file;
    # the broker should try again.
    if any(marker in line for line in lines for marker in _NETWORK_TROUBLE):
        return TransientError(
            f"could not read the video from storage: {_detail(lines, location, output)}"
        )
    # Only when it is the input that vanished (between our check and ffmpeg's open); a missing
    # output directory is our fault, not the file's (``service_fault`` above).
    if any(_MISSING in line and (location in line or "opening input" in line) for line in lines):
        return NotFound("the video file was not found")
    if any(marker in line for line in lines for marker in _UNREADABLE):
        return UnsupportedMedia(f"this is not a video or audio file we can read; {ACCEPTED_HINT}")
    return UnsupportedMedia(f"ffmpeg could not {what} the file: {_detail(lines, location, output)}")


def _detail(lines: list[str], location: str, output: str | None) -> str:
    meaningful = [
        _redact(line, location, output)
        for line in lines
        if not any(line.startswith(noise) for noise in _NOISE)
    ]
    return "; ".join(meaningful[-3:])[-400:] or "no error message"


def format_refused(name: str | None) -> UnsupportedMedia:
    """The refusal of a container format, naming it (and saying so when it is a playlist).

    Args:
        name: the demuxer name ffmpeg reported, or None when it did not say.

    Returns:
        The error to raise.
    """
    if name and any(part in _PLAYLIST_FORMATS for part in name.split(",")):
        return UnsupportedMedia(
            f"this file is a playlist ({name}) that points at other files, not a video; "
            f"{ACCEPTED_HINT}"
        )
    named = f" ({name})" if name else ""
    return UnsupportedMedia(f"this file's format{named} is not accepted; {ACCEPTED_HINT}")
