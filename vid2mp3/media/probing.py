"""Inspecting a file: ffprobe's JSON report, or ``ffmpeg -i``'s text report when there is none.

(Named ``probing`` so that ``vid2mp3.media.probe`` stays the function, never this module.)
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vid2mp3.errors import MediaTooLong, UnsupportedMedia
from vid2mp3.media import binaries
from vid2mp3.media.diagnosis import failure, format_refused
from vid2mp3.media.encoding import describe_duration
from vid2mp3.media.inputs import ALLOWED_FORMATS, input_args, locate
from vid2mp3.media.process import Child

# We ask ffprobe for a handful of fields per stream; more than this means a pathological file.
_MAX_PROBE_JSON = 4 * 1024 * 1024

_PROBE_ENTRIES = (
    "format=format_name,duration:"
    "stream=index,codec_type,codec_name,duration,bit_rate:"
    "stream_disposition=attached_pic"
)


@dataclass(frozen=True)
class Probe:
    """What a file holds, as far as converting it is concerned.

    Attributes:
        format_name: the demuxer's name, possibly a comma list ("mov,mp4,m4a,3gp,3g2,mj2").
        duration: the container's duration in seconds, if known.
        audio_codec: the first audio stream's codec, or None when there is no audio.
        audio_duration: that stream's duration in seconds (the container's when it has none).
        audio_bitrate: that stream's bitrate in bit/s, if known.
        has_video: whether there is a video stream other than a cover picture.
    """

    format_name: str
    duration: float | None
    audio_codec: str | None
    audio_duration: float | None
    audio_bitrate: int | None
    has_video: bool


def probe(
    source: str,
    *,
    network: bool = False,
    ffmpeg: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Probe:
    """Inspect ``source`` and check it is a container we accept with an audio track.

    Args:
        source: a local path, or an HTTP(S) URL when ``network`` is true.
        network: allow reading ``source`` over HTTP(S) (a presigned URL).
        ffmpeg: the ffmpeg to use (its sibling ffprobe is preferred); found when None.
        headers: HTTP headers every request must carry (``MediaSource.headers``).

    Returns:
        What the file holds.

    Raises:
        NotFound: the file (or the object behind the URL) does not exist.
        UnsupportedMedia: the file is not an accepted container with an audio track.
        TransientError: storage could not be reached (``WorkInterrupted``: ffprobe was stopped;
            ``ServiceFault``: the service's own trouble).
        ConfigError: ffmpeg/ffprobe cannot be found or run.
    """
    ffmpeg = ffmpeg or binaries.find_ffmpeg()
    location = locate(source, network)
    ffprobe = binaries.find_ffprobe(ffmpeg)
    if ffprobe is not None:
        found = _probe_with_ffprobe(ffprobe, location, network, headers)
    else:
        found = _probe_with_ffmpeg(ffmpeg, location, network, headers)
    check_accepted(found)
    return found


def check_accepted(found: Probe) -> None:
    """Refuse a probed file whose format is not allowed or that has no audio.

    Raises:
        UnsupportedMedia: saying which of the two it is.
    """
    # Second layer: the whitelist option already refused other demuxers; this guards against an
    # ffmpeg build that ignores it or a future caller that forgets to pass it.
    if not any(part in ALLOWED_FORMATS for part in found.format_name.split(",")):
        raise format_refused(found.format_name)
    if found.audio_codec is None:
        raise UnsupportedMedia("the video has no audio track")


def check_duration(found: Probe, max_seconds: float) -> None:
    """Refuse a probed file whose audio is longer than ``max_seconds``.

    A file that states no duration passes here; ffmpeg's ``-t`` bounds it while converting.

    Raises:
        MediaTooLong: naming the file's duration and the limit.
    """
    stated = found.audio_duration or found.duration
    if stated is not None and stated > max_seconds:
        raise MediaTooLong(
            f"the audio is {describe_duration(stated)} long; files up to "
            f"{describe_duration(max_seconds)} are converted; upload a shorter file"
        )


def _probe_with_ffprobe(
    ffprobe: str, location: str, network: bool, headers: Mapping[str, str] | None
) -> Probe:
    argv = [ffprobe, "-v", "error", "-hide_banner", "-print_format", "json"]
    argv += ["-show_entries", _PROBE_ENTRIES, *input_args(location, network, headers)]
    with Child(argv) as child:
        out = child.read_stdout(_MAX_PROBE_JSON + 1)
        if len(out) > _MAX_PROBE_JSON:
            raise UnsupportedMedia("the file has too many streams to inspect")
        returncode = child.wait()
    if returncode != 0:
        raise failure(child.tail, location, what="read")
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


def _probe_with_ffmpeg(
    ffmpeg: str, location: str, network: bool, headers: Mapping[str, str] | None
) -> Probe:
    """ffprobe is missing (imageio-ffmpeg ships only ffmpeg): parse ``ffmpeg -i``'s report."""
    argv = [ffmpeg, "-nostdin", "-hide_banner", *input_args(location, network, headers)]

    def keep(line: str) -> bool:
        return bool(_INPUT_RE.match(line) or _DURATION_RE.match(line) or _STREAM_RE.match(line))

    with Child(argv, keep=keep) as child:
        # Without an output ffmpeg exits non-zero after printing the input report; success is
        # judged by whether that report is there. ``wait`` still tells a signal apart.
        for _ in child.stdout_lines():
            pass
        child.wait()
    header = next((m for m in map(_INPUT_RE.match, child.kept) if m), None)
    if header is None:
        raise failure(child.tail, location, what="read")
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
