"""Writing a file's first audio track as an MP3, following ffmpeg's progress, and verifying it."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from vid2mp3.errors import MediaTooLong, UnsupportedMedia
from vid2mp3.media import binaries
from vid2mp3.media.diagnosis import failure, our_files, service_fault
from vid2mp3.media.encoding import (
    CUT_SLACK_SECONDS,
    DEFAULT_BITRATE,
    MAX_DURATION_SECONDS,
    check_quality,
    describe_duration,
    output_size_limit,
    parse_bitrate,
    peak_kbps,
    ran_past,
)
from vid2mp3.media.inputs import input_args, locate
from vid2mp3.media.probing import Probe, check_accepted, check_duration, probe
from vid2mp3.media.process import Child

_PROGRESS_INTERVAL = 0.1


@dataclass(frozen=True)
class AudioResult:
    """The MP3 that was written, as measured after writing it.

    Attributes:
        duration: its audio duration in seconds.
        size: its size in bytes.
        bitrate: its bitrate in bit/s (the stream's, else the average over the file).
        copied: whether the source's MP3 frames were copied rather than encoded.
    """

    duration: float
    size: int
    bitrate: int
    copied: bool


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
    default_bitrate: str = DEFAULT_BITRATE,
    headers: Mapping[str, str] | None = None,
    max_duration: float = MAX_DURATION_SECONDS,
) -> AudioResult:
    """Write the first audio track of ``source`` as an MP3 at ``dest`` and verify it.

    ``quality`` (LAME VBR 0-9) wins over ``bitrate``. An MP3 source is copied unchanged unless
    a bitrate or quality was asked for (or ``copy_mp3`` is false). An exception raised by
    ``on_progress`` stops ffmpeg and propagates, which is how a caller cancels. On any failure
    nothing is left at ``dest``.

    Output is bounded whatever the file claims: audio stated longer than ``max_duration`` is
    refused before ffmpeg starts; ffmpeg stops writing just past ``max_duration`` (``-t``) and
    past the size the stated duration can need at the encoding's peak bitrate (``-fs``,
    ``encoding.output_size_limit``); either cut fails the conversion.

    Args:
        source: a local path, or an HTTP(S) URL when ``network`` is true.
        dest: where to write the MP3; its folder must exist.
        title: the ID3 title, the only tag the MP3 gets.
        bitrate: a CBR bitrate accepted by ``parse_bitrate`` ("128k", "128").
        quality: a LAME VBR quality, 0 (best) to 9 (smallest).
        copy_mp3: copy an MP3 source's frames when no bitrate or quality is asked for.
        network: allow reading ``source`` over HTTP(S) (a presigned URL).
        on_progress: called with the fraction done, throttled, and with 1.0 once verified.
        probed: what ``probe`` said about ``source``, to save probing it again.
        ffmpeg: the ffmpeg to use; found when None.
        default_bitrate: the CBR bitrate when neither ``bitrate`` nor ``quality`` is given
            and the source is not copied (the DEFAULT_BITRATE setting).
        headers: HTTP headers every request for ``source`` must carry (``MediaSource``).
        max_duration: the longest audio converted, in seconds (MAX_DURATION_SECONDS).

    Returns:
        What was written, as measured.

    Raises:
        InvalidInput: ``bitrate``, ``quality`` or ``default_bitrate`` is not allowed.
        NotFound: ``source`` does not exist.
        UnsupportedMedia: ``source`` is not an accepted file, or converts to short/no audio.
        MediaTooLong: its audio is, or turns out to be, longer than ``max_duration``, or runs
            far past the duration it states (the subclass of ``PayloadTooLarge``).
        TransientError: storage could not be reached. Its subclasses: ``WorkInterrupted``,
            ffmpeg was stopped (our shutdown or a signal); ``ServiceFault``, the service's own
            trouble (disk full, output folder missing or unwritable, out of memory).
        ConfigError: ffmpeg cannot be found or run.
    """
    # Checked before any ffmpeg work so a bad request fails fast and never reaches argv.
    if quality is not None:
        quality = check_quality(quality)
    if bitrate is not None:
        bitrate = parse_bitrate(bitrate)
    default_bitrate = parse_bitrate(default_bitrate)
    out_path = os.path.abspath(dest)
    with our_files("convert"):
        # Before probing: a missing working folder is ours to report, not ffmpeg's to stumble on.
        if not stat.S_ISDIR(os.stat(os.path.dirname(out_path)).st_mode):
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
    ffmpeg = ffmpeg or binaries.find_ffmpeg()
    location = locate(source, network)
    if probed is None:
        probed = probe(source, network=network, ffmpeg=ffmpeg, headers=headers)
    else:
        check_accepted(probed)
    check_duration(probed, max_duration)
    codec_args, copied, kbps = _codec_args(bitrate, quality, copy_mp3, probed, default_bitrate)
    expected = probed.audio_duration or probed.duration
    size_limit = output_size_limit(expected or max_duration, kbps)

    argv = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-nostats"]
    argv += ["-progress", "pipe:1", *input_args(location, network, headers)]
    argv += ["-map", "0:a:0", "-vn", "-sn", "-dn"]
    # Source tags and chapters can carry personal data (GPS, names); the MP3 gets only our title.
    argv += ["-map_metadata", "-1", "-map_chapters", "-1", *codec_args]
    argv += ["-id3v2_version", "3", "-metadata", f"title={title.replace(chr(0), '')}"]
    # A container may state any duration (or none): these two stop ffmpeg whatever it says.
    argv += ["-t", f"{max_duration + CUT_SLACK_SECONDS:.3f}", "-fs", str(size_limit)]
    argv += ["-f", "mp3", "-y", out_path]

    succeeded = False
    try:
        with Child(argv) as child:
            _follow_progress(child.stdout_lines(), expected, on_progress)
            returncode = child.wait()
        # Whatever the exit code: ffmpeg 5 exits 0 when only writing the trailer failed.
        fault = service_fault(child.tail, what="convert", output=out_path, location=location)
        if fault is not None:
            raise fault
        if returncode != 0:
            raise failure(child.tail, location, what="convert", output=out_path)
        _check_bounds(out_path, size_limit, expected)
        result = _verify(out_path, expected, copied, ffmpeg)
        if ran_past(result.duration, max_duration):
            raise MediaTooLong(
                f"the audio runs past {describe_duration(max_duration)}, the longest converted, "
                f"though the file said {_stated(expected)} (converting stopped at "
                f"{describe_duration(result.duration)}); upload a shorter file"
            )
        succeeded = True
    finally:
        if not succeeded:
            _remove(out_path)
    if on_progress is not None:
        on_progress(1.0)
    return result


def _codec_args(
    bitrate: str | None,
    quality: int | None,
    copy_mp3: bool,
    probed: Probe,
    default_bitrate: str,
) -> tuple[list[str], bool, int]:
    """ffmpeg's codec arguments, whether the frames are copied, and the peak kbit/s."""
    if quality is not None:
        kbps = peak_kbps(bitrate=None, quality=quality)
        return ["-c:a", "libmp3lame", "-q:a", str(quality)], False, kbps
    if bitrate is not None:
        return (
            ["-c:a", "libmp3lame", "-b:a", bitrate],
            False,
            peak_kbps(bitrate=bitrate, quality=None),
        )
    if copy_mp3 and probed.audio_codec == "mp3":
        kbps = peak_kbps(bitrate=None, quality=None, copied_bps=probed.audio_bitrate)
        return ["-c:a", "copy"], True, kbps
    kbps = peak_kbps(bitrate=default_bitrate, quality=None)
    return ["-c:a", "libmp3lame", "-b:a", default_bitrate], False, kbps


def _stated(expected: float | None) -> str:
    return describe_duration(expected) if expected is not None else "no duration"


def _check_bounds(path: str, size_limit: int, expected: float | None) -> None:
    """Fail a conversion that ``-fs`` cut: ffmpeg then ends normally, a little past the limit."""
    with our_files("convert"):
        size = os.path.getsize(path) if os.path.isfile(path) else 0
    if size >= size_limit:
        raise MediaTooLong(
            f"the audio runs far longer than the file says ({_stated(expected)}): the MP3 "
            f"passed {size_limit / 1_000_000:.1f} MB, the most that length needs; the file "
            "may be damaged; save it again and upload the new file"
        )


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
    with our_files("convert"):
        written_any = os.path.isfile(path) and os.path.getsize(path) > 0
    if not written_any:
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
    with our_files("convert"):
        size = os.path.getsize(path)
    bitrate = written.audio_bitrate or round(size * 8 / got)
    return AudioResult(duration=got, size=size, bitrate=bitrate, copied=copied)


def _remove(path: str) -> None:
    # Only a regular file we may have written: dest can be a device (/dev/null, /dev/full) that
    # ffmpeg wrote through, and removing it as root would break the host. Cleanup never masks
    # the error that led here.
    with contextlib.suppress(OSError):
        if stat.S_ISREG(os.lstat(path).st_mode):
            os.remove(path)
