"""The ffmpeg layer: inspect a video and write its audio track as an MP3.

Everything runs ffmpeg/ffprobe as child processes with argv lists and reads their output line by
line, so memory stays flat whatever the size of the input. Inputs are untrusted uploads, so every
call restricts what libavformat may open: only local files (plus HTTP(S) when the caller reads a
presigned URL) and only the container formats in ``ALLOWED_FORMATS``. That refuses playlists
(HLS, concat) that would make ffmpeg read other local files or reach the network on behalf of a
file someone uploaded.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import urlsplit

from vid2mp3.errors import (
    ConfigError,
    InvalidInput,
    NotFound,
    TransientError,
    UnsupportedMedia,
    Vid2mp3Error,
)

__all__ = [
    "ALLOWED_FORMATS",
    "AudioResult",
    "Probe",
    "extract_audio",
    "find_ffmpeg",
    "find_ffprobe",
    "probe",
]

# libavformat demuxer names. A demuxer whose name is a comma list ("mov,mp4,m4a,3gp,3g2,mj2",
# "matroska,webm") is allowed when any element is listed here. Deliberately absent: hls, dash,
# concat, image2*, tty, lavfi, and anything else that opens further URLs or files.
ALLOWED_FORMATS: frozenset[str] = frozenset(
    {
        "mov",
        "mp4",
        "m4a",
        "3gp",
        "3g2",
        "matroska",
        "webm",
        "avi",
        "flv",
        "mpegts",
        "asf",
        "ogg",
        "mpeg",
        "wav",
        "w64",
        "mp3",
        "aac",
        "flac",
        "aiff",
        "caf",
        "ac3",
        "eac3",
        "amr",
        "wv",
    }
)

# Read at call time (not baked into argv builders) so a test can widen the first layer and show
# the second one, the check on the probed format name, still refuses.
_FORMAT_WHITELIST = ",".join(sorted(ALLOWED_FORMATS))
_LOCAL_PROTOCOLS = ("file", "pipe")
_NETWORK_PROTOCOLS = ("http", "https", "tcp", "tls")
# A stalled presigned URL would otherwise hang the function until the platform kills it.
_NETWORK_TIMEOUT_US = 60_000_000

_DEFAULT_BITRATE = "192k"
_BITRATE_RE = re.compile(r"^(\d{1,3})k$")
_MIN_KBPS, _MAX_KBPS = 8, 320

_STDERR_TAIL = 50
# ffmpeg's own lines are short; the cap only matters for hostile metadata echoed back.
_MAX_LINE = 4096
# We ask ffprobe for a handful of fields per stream; more than this means a pathological file.
_MAX_PROBE_JSON = 4 * 1024 * 1024
_MAX_KEPT_LINES = 256
_PROGRESS_INTERVAL = 0.1

_PROBE_ENTRIES = (
    "format=format_name,duration:"
    "stream=index,codec_type,codec_name,duration,bit_rate:"
    "stream_disposition=attached_pic"
)

# Only playlist-like demuxers get the hint that they point at other files.
_PLAYLIST_FORMATS = frozenset({"hls", "dash", "concat", "ffconcat"})
_ACCEPTED_HINT = "upload a video or audio file such as MP4, MKV, WebM, MOV, AVI or MP3"


@dataclass(frozen=True)
class Probe:
    format_name: str
    duration: float | None
    audio_codec: str | None
    audio_duration: float | None
    audio_bitrate: int | None
    has_video: bool


@dataclass(frozen=True)
class AudioResult:
    duration: float
    size: int
    bitrate: int
    copied: bool


# --- binaries ---------------------------------------------------------------------------------


def find_ffmpeg(configured: str = "") -> str:
    """The ffmpeg to run: the FFMPEG_BINARY setting, else PATH, else imageio-ffmpeg's binary."""
    if configured:
        resolved = shutil.which(configured)
        if resolved is None:
            raise ConfigError(f"FFMPEG_BINARY={configured!r} is not an executable file")
        return os.path.abspath(resolved)
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        # Lazy: importing it is only needed on hosts without a system ffmpeg.
        import imageio_ffmpeg

        bundled = imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as exc:
        raise ConfigError(
            "no ffmpeg found: set FFMPEG_BINARY, put ffmpeg on PATH or install imageio-ffmpeg"
        ) from exc
    return bundled


def find_ffprobe(ffmpeg: str) -> str | None:
    """An ffprobe next to ``ffmpeg``, else on PATH, else None (imageio-ffmpeg ships none)."""
    resolved = shutil.which(ffmpeg) or ffmpeg
    name = "ffprobe.exe" if os.name == "nt" else "ffprobe"
    sibling = os.path.join(os.path.dirname(resolved), name)
    if os.path.isfile(sibling) and os.access(sibling, os.X_OK):
        return sibling
    return shutil.which("ffprobe")


# --- process plumbing -------------------------------------------------------------------------


class _Child:
    """A child process whose stderr is drained by a thread into a bounded tail.

    Draining in a thread means neither pipe can fill up and block ffmpeg while we read the other.
    """

    def __init__(self, argv: list[str], *, keep: Callable[[str], bool] | None = None) -> None:
        self.tail: deque[str] = deque(maxlen=_STDERR_TAIL)
        self.kept: list[str] = []
        self._keep = keep
        try:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        except OSError as exc:
            raise ConfigError(f"cannot run {argv[0]!r} (check FFMPEG_BINARY): {exc}") from exc
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in _lines(self.proc.stderr):
            if not line.strip():
                continue
            self.tail.append(line)
            if self._keep is not None and len(self.kept) < _MAX_KEPT_LINES and self._keep(line):
                self.kept.append(line)

    def stdout_lines(self) -> Iterator[str]:
        assert self.proc.stdout is not None
        return _lines(self.proc.stdout)

    def read_stdout(self, limit: int) -> bytes:
        assert self.proc.stdout is not None
        return self.proc.stdout.read(limit)

    def wait(self) -> int:
        returncode = self.proc.wait()
        self._reader.join()
        return returncode

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


def _lines(pipe: IO[bytes]) -> Iterator[str]:
    # Split on b"\n" only: str.splitlines() would also split on U+2028, U+0085 ... which a file's
    # metadata can carry (ffmpeg masks only C0 controls), letting it forge lines in the report.
    while True:
        raw = pipe.readline(_MAX_LINE)
        if not raw:
            return
        yield raw.decode("utf-8", errors="replace").rstrip("\r\n")


def _input_args(location: str, network: bool) -> list[str]:
    protocols = _LOCAL_PROTOCOLS + (_NETWORK_PROTOCOLS if network else ())
    args = ["-protocol_whitelist", ",".join(protocols), "-format_whitelist", _FORMAT_WHITELIST]
    if network:
        args += ["-rw_timeout", str(_NETWORK_TIMEOUT_US)]
    return [*args, "-i", location]


def _locate(source: str, network: bool) -> str:
    """What to hand ffmpeg as ``-i``; local files are checked here so errors are precise."""
    if network and urlsplit(source).scheme.lower() in ("http", "https"):
        return source
    # An absolute path can neither be read as an option ("-x.mp4") nor as a protocol
    # ("concat:a|b", "http:..."), whatever the caller passed.
    path = os.path.abspath(source)
    if not os.path.isfile(path):
        raise NotFound("the video file was not found")
    if os.path.getsize(path) == 0:
        raise UnsupportedMedia("the file is empty")
    return path


# --- errors -----------------------------------------------------------------------------------

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


def _redact(line: str, location: str) -> str:
    # The location is an internal temp path or a presigned URL carrying credentials; neither
    # belongs in a message shown to a user or written to logs.
    return _CTX_PREFIX_RE.sub("", line.replace(location, "<input>")).strip()


def _failure(tail: deque[str] | list[str], location: str, *, what: str) -> Vid2mp3Error:
    """Turn ffmpeg's last words into an error a user can act on."""
    lines = list(tail)
    for line in lines:
        refused = _NOT_ON_WHITELIST_RE.match(line)
        if refused:
            name = refused.group("ctx").strip()
            # ffmpeg >= 7 logs "[in#0 @ ...]" instead of the demuxer name.
            return _format_refused(None if name.startswith("in#") else name)
        if "Format not on whitelist" in line:
            return _format_refused(None)
        protocol = _PROTOCOL_REFUSED_RE.search(line)
        if protocol:
            return UnsupportedMedia(
                f"the file refers to another resource ({protocol.group('proto')}), which is not "
                f"allowed; {_ACCEPTED_HINT}"
            )
    if any(marker in line for line in lines for marker in _HTTP_NOT_FOUND):
        return NotFound("the video file was not found in storage")
    # Storage being unreachable (or a presigned URL having expired) says nothing about the file;
    # the broker should try again.
    if any(marker in line for line in lines for marker in _NETWORK_TROUBLE):
        return TransientError(f"could not read the video from storage: {_detail(lines, location)}")
    # Only when it is the input that vanished (between our check and ffmpeg's open); a missing
    # output directory is our fault, not the file's.
    if any(
        "No such file or directory" in line and (location in line or "opening input" in line)
        for line in lines
    ):
        return NotFound("the video file was not found")
    if any(marker in line for line in lines for marker in _UNREADABLE):
        return UnsupportedMedia(f"this is not a video or audio file we can read; {_ACCEPTED_HINT}")
    return UnsupportedMedia(f"ffmpeg could not {what} the file: {_detail(lines, location)}")


def _detail(lines: list[str], location: str) -> str:
    meaningful = [
        _redact(line, location)
        for line in lines
        if not any(line.startswith(noise) for noise in _NOISE)
    ]
    return "; ".join(meaningful[-3:])[-400:] or "no error message"


def _format_refused(name: str | None) -> UnsupportedMedia:
    if name and any(part in _PLAYLIST_FORMATS for part in name.split(",")):
        return UnsupportedMedia(
            f"this file is a playlist ({name}) that points at other files, not a video; "
            f"{_ACCEPTED_HINT}"
        )
    named = f" ({name})" if name else ""
    return UnsupportedMedia(f"this file's format{named} is not accepted; {_ACCEPTED_HINT}")


# --- probe ------------------------------------------------------------------------------------


def probe(source: str, *, network: bool = False, ffmpeg: str | None = None) -> Probe:
    """Inspect ``source`` and check it is a container we accept with an audio track."""
    ffmpeg = ffmpeg or find_ffmpeg()
    location = _locate(source, network)
    ffprobe = find_ffprobe(ffmpeg)
    if ffprobe is not None:
        found = _probe_with_ffprobe(ffprobe, location, network)
    else:
        found = _probe_with_ffmpeg(ffmpeg, location, network)
    _check(found)
    return found


def _check(found: Probe) -> None:
    # Second layer: the whitelist option already refused other demuxers; this guards against an
    # ffmpeg build that ignores it or a future caller that forgets to pass it.
    if not any(part in ALLOWED_FORMATS for part in found.format_name.split(",")):
        raise _format_refused(found.format_name)
    if found.audio_codec is None:
        raise UnsupportedMedia("the video has no audio track")


def _probe_with_ffprobe(ffprobe: str, location: str, network: bool) -> Probe:
    argv = [ffprobe, "-v", "error", "-hide_banner", "-print_format", "json"]
    argv += ["-show_entries", _PROBE_ENTRIES, *_input_args(location, network)]
    child = _Child(argv)
    try:
        out = child.read_stdout(_MAX_PROBE_JSON + 1)
        if len(out) > _MAX_PROBE_JSON:
            raise UnsupportedMedia("the file has too many streams to inspect")
        returncode = child.wait()
    finally:
        child.close()
    if returncode != 0:
        raise _failure(child.tail, location, what="read")
    try:
        report = json.loads(out)
    except ValueError as exc:
        raise UnsupportedMedia("this is not a video or audio file we can read") from exc
    fmt = report.get("format") or {}
    streams = report.get("streams") or []
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    has_video = any(
        s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
        for s in streams
    )
    duration = _seconds(fmt.get("duration"))
    return Probe(
        format_name=str(fmt.get("format_name") or ""),
        duration=duration,
        audio_codec=str(audio.get("codec_name") or "unknown") if audio else None,
        audio_duration=(_seconds(audio.get("duration")) or duration) if audio else None,
        audio_bitrate=_int(audio.get("bit_rate")) if audio else None,
        has_video=has_video,
    )


_INPUT_RE = re.compile(r"^Input #0, (?P<format>.+?), from '")
_DURATION_RE = re.compile(r"^ +Duration: (?:(?P<h>\d+):(?P<m>\d\d):(?P<s>\d\d(?:\.\d+)?)|N/A)")
# Anchored at the start of the line: metadata values are echoed after "key : ", so a hostile
# title cannot produce a line that starts with "Stream #0:".
_STREAM_RE = re.compile(
    r"^ +Stream #0:\d+\S*: (?P<type>Audio|Video|Subtitle|Data|Attachment): (?P<codec>[^\s,]+)"
    r"(?P<rest>.*)$"
)
_KBPS_RE = re.compile(r"(\d+) kb/s")


def _probe_with_ffmpeg(ffmpeg: str, location: str, network: bool) -> Probe:
    """ffprobe is missing (imageio-ffmpeg ships only ffmpeg): parse ``ffmpeg -i``'s report."""
    argv = [ffmpeg, "-nostdin", "-hide_banner", *_input_args(location, network)]

    def keep(line: str) -> bool:
        return bool(_INPUT_RE.match(line) or _DURATION_RE.match(line) or _STREAM_RE.match(line))

    child = _Child(argv, keep=keep)
    try:
        # Without an output ffmpeg exits non-zero after printing the input report; success is
        # judged by whether that report is there.
        for _ in child.stdout_lines():
            pass
        child.wait()
    finally:
        child.close()
    header = next((m for m in map(_INPUT_RE.match, child.kept) if m), None)
    if header is None:
        raise _failure(child.tail, location, what="read")
    duration: float | None = None
    audio: re.Match[str] | None = None
    has_video = False
    for line in child.kept:
        found_duration = _DURATION_RE.match(line)
        if found_duration and found_duration.group("h") is not None:
            duration = (
                int(found_duration.group("h")) * 3600
                + int(found_duration.group("m")) * 60
                + float(found_duration.group("s"))
            )
        stream = _STREAM_RE.match(line)
        if stream and stream.group("type") == "Audio" and audio is None:
            audio = stream
        elif stream and stream.group("type") == "Video" and "(attached pic)" not in line:
            has_video = True
    kbps = _KBPS_RE.search(audio.group("rest")) if audio else None
    return Probe(
        format_name=header.group("format"),
        duration=duration,
        audio_codec=audio.group("codec") if audio else None,
        audio_duration=duration if audio else None,
        audio_bitrate=int(kbps.group(1)) * 1000 if kbps else None,
        has_video=has_video,
    )


def _seconds(value: Any) -> float | None:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# --- extract ----------------------------------------------------------------------------------


def extract_audio(
    source: str,
    dest: str,
    *,
    title: str,
    bitrate: str | None = None,
    quality: int | None = None,
    copy_mp3: bool = True,
    network: bool = False,
    on_progress: Callable[[float], None] | None = None,
    probed: Probe | None = None,
    ffmpeg: str | None = None,
) -> AudioResult:
    """Write the first audio track of ``source`` as an MP3 at ``dest`` and verify it.

    ``quality`` (LAME VBR 0-9) wins over ``bitrate``. An MP3 source is copied unchanged unless
    a bitrate or quality was asked for. An exception raised by ``on_progress`` stops ffmpeg and
    propagates, which is how a caller cancels.
    """
    _check_encoding(bitrate, quality)
    ffmpeg = ffmpeg or find_ffmpeg()
    location = _locate(source, network)
    if probed is None:
        probed = probe(source, network=network, ffmpeg=ffmpeg)
    else:
        _check(probed)
    codec_args, copied = _codec_args(bitrate, quality, copy_mp3, probed)
    expected = probed.audio_duration or probed.duration
    out_path = os.path.abspath(dest)

    argv = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-nostats"]
    argv += ["-progress", "pipe:1", *_input_args(location, network)]
    argv += ["-map", "0:a:0", "-vn", "-sn", "-dn"]
    # Source tags and chapters can carry personal data (GPS, names); the MP3 gets only our title.
    argv += ["-map_metadata", "-1", "-map_chapters", "-1", *codec_args]
    argv += ["-id3v2_version", "3", "-metadata", f"title={title.replace(chr(0), '')}"]
    argv += ["-f", "mp3", "-y", out_path]

    succeeded = False
    try:
        child = _Child(argv)
        try:
            _follow_progress(child.stdout_lines(), expected, on_progress)
            returncode = child.wait()
        finally:
            child.close()
        if returncode != 0:
            raise _failure(child.tail, location, what="convert")
        result = _verify(out_path, expected, copied, ffmpeg)
        succeeded = True
    finally:
        if not succeeded:
            _remove(out_path)
    if on_progress is not None:
        on_progress(1.0)
    return result


def _check_encoding(bitrate: str | None, quality: int | None) -> None:
    # Checked before any ffmpeg work so a bad request fails fast and never reaches argv.
    if quality is not None and (
        isinstance(quality, bool) or not isinstance(quality, int) or not 0 <= quality <= 9
    ):
        raise InvalidInput("quality must be a whole number from 0 (best) to 9")
    if bitrate is not None:
        match = _BITRATE_RE.match(bitrate) if isinstance(bitrate, str) else None
        if not match or not _MIN_KBPS <= int(match.group(1)) <= _MAX_KBPS:
            raise InvalidInput(
                f"bitrate must look like '192k', between {_MIN_KBPS}k and {_MAX_KBPS}k"
            )


def _codec_args(
    bitrate: str | None, quality: int | None, copy_mp3: bool, probed: Probe
) -> tuple[list[str], bool]:
    if quality is not None:
        return ["-c:a", "libmp3lame", "-q:a", str(quality)], False
    if bitrate is not None:
        return ["-c:a", "libmp3lame", "-b:a", bitrate], False
    if copy_mp3 and probed.audio_codec == "mp3":
        return ["-c:a", "copy"], True
    return ["-c:a", "libmp3lame", "-b:a", _DEFAULT_BITRATE], False


def _follow_progress(
    lines: Iterator[str], expected: float | None, on_progress: Callable[[float], None] | None
) -> None:
    """Consume ``-progress`` output, reporting at most every ``_PROGRESS_INTERVAL`` seconds."""
    total_us = expected * 1_000_000 if expected else None
    last_fraction = 0.0
    last_call = 0.0
    for line in lines:
        if on_progress is None or total_us is None:
            continue  # still drain stdout so ffmpeg never blocks on it
        key, _, value = line.partition("=")
        # out_time_ms is microseconds too (a long-standing ffmpeg misnomer); older builds lack _us.
        if key not in ("out_time_us", "out_time_ms"):
            continue
        try:
            fraction = min(int(value) / total_us, 1.0)
        except ValueError:
            continue  # "N/A" before the first packet
        now = time.monotonic()
        # 1.0 is reserved for the end, after the output has been verified.
        if last_fraction < fraction < 1.0 and now - last_call >= _PROGRESS_INTERVAL:
            on_progress(fraction)
            last_fraction, last_call = fraction, now


def _verify(path: str, expected: float | None, copied: bool, ffmpeg: str) -> AudioResult:
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        raise UnsupportedMedia("the conversion produced no audio; the file may be damaged")
    try:
        written: Probe | None = probe(path, ffmpeg=ffmpeg)
    except UnsupportedMedia:
        # A few hundred bytes of headers with no frames: the same failure as a short file.
        written = None
    got = (written.audio_duration or written.duration or 0.0) if written else 0.0
    # A truncated MP4, or a moov-at-end MP4 read through a pipe, can make ffmpeg exit 0 having
    # written only part of the audio; that must not pass as a finished conversion.
    if expected is not None and expected - got > max(0.5, 0.02 * expected):
        raise UnsupportedMedia(
            f"the file looks truncated or damaged: audio ends at {got:.1f} s of {expected:.1f} s"
        )
    if written is None or got <= 0:
        raise UnsupportedMedia("the conversion produced no audio; the file may be damaged")
    size = os.path.getsize(path)
    bitrate = written.audio_bitrate or round(size * 8 / got)
    return AudioResult(duration=got, size=size, bitrate=bitrate, copied=copied)


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
