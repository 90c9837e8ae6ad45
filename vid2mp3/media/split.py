"""Cutting an MP3 into pieces no larger than an upload limit (the transcription API's)."""

from __future__ import annotations

import shutil
from pathlib import Path

from vid2mp3.errors import UnsupportedMedia
from vid2mp3.media import binaries
from vid2mp3.media.diagnosis import failure, our_files, service_fault
from vid2mp3.media.inputs import LOCAL_PROTOCOLS
from vid2mp3.media.probing import probe
from vid2mp3.media.process import Child

# Pieces are cut by time from the average byte rate; VBR parts can run above average.
_SEGMENT_FILL = 0.9
# Read at call time, so a test can shorten it.
_SPLIT_TIMEOUT = 600.0


def split_for_upload(
    mp3: Path, duration: float | None, *, limit: int, ffmpeg: str | None = None
) -> list[Path]:
    """``mp3`` itself when it fits ``limit``, else its pieces in order.

    The pieces are cut with ffmpeg's segment muxer, copying frames (no re-encoding), into a
    ``segments`` folder next to ``mp3``, which must not exist yet.

    Args:
        mp3: our own MP3 (a working copy, not an upload).
        duration: its duration in seconds, when known; probed otherwise.
        limit: the largest size in bytes a piece may have.
        ffmpeg: the ffmpeg to use; found when None.

    Returns:
        ``[mp3]``, or the paths of the pieces (``segments/part00000.mp3`` ...), in order.

    Raises:
        ValueError: ``limit`` is not positive.
        UnsupportedMedia: the MP3 cannot be read, or not cut into pieces within ``limit``.
        NotFound: the MP3 vanished before ffmpeg opened it.
        TransientError: ffmpeg took too long. Its subclasses: ``WorkInterrupted``, ffmpeg was
            stopped (our shutdown or a signal); ``ServiceFault``, the service's own trouble
            (disk full, the folder unwritable or already there).
        ConfigError: ffmpeg cannot be found or run.
    """
    if limit <= 0:
        raise ValueError(f"limit must be a positive number of bytes, not {limit}")
    with our_files("split"):
        size = mp3.stat().st_size
    if size <= limit:
        return [mp3]
    ffmpeg = ffmpeg or binaries.find_ffmpeg()
    if not duration:
        duration = probe(str(mp3), ffmpeg=ffmpeg).audio_duration
    seconds = max(1, int((duration or 0) * limit * _SEGMENT_FILL / size))
    location = str(mp3.absolute())
    folder = mp3.absolute().parent / "segments"
    with our_files("split"):
        folder.mkdir()
    argv = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error"]
    # Our own MP3, but still read only as a local MP3 file: nothing else is opened.
    argv += ["-protocol_whitelist", ",".join(LOCAL_PROTOCOLS), "-f", "mp3", "-i", location]
    argv += ["-map", "0:a:0", "-c", "copy", "-map_metadata", "-1"]
    argv += ["-f", "segment", "-segment_time", str(seconds), "-segment_format", "mp3"]
    pattern = str(folder / "part%05d.mp3")
    argv += ["-reset_timestamps", "1", pattern]
    done = False
    try:
        with Child(argv, capture_stdout=False) as child:
            returncode = child.wait(_SPLIT_TIMEOUT)
        # Whatever the exit code: ffmpeg 5 exits 0 when only writing a trailer failed.
        fault = service_fault(child.tail, what="split", output=str(folder), location=location)
        if fault is not None:
            raise fault
        if returncode != 0:
            raise failure(child.tail, location, what="split", output=str(folder))
        with our_files("split"):
            pieces = sorted(folder.glob("part*.mp3"))
            too_big = any(piece.stat().st_size > limit for piece in pieces)
        if not pieces or too_big:
            raise UnsupportedMedia(
                f"the MP3 could not be split into pieces of at most {limit} bytes"
            )
        done = True
    finally:
        if not done:
            # Half-written pieces must not be mistaken for a result by a caller that retries.
            shutil.rmtree(folder, ignore_errors=True)
    return pieces
