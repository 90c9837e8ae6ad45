"""The ffmpeg layer: inspect a video, write its audio track as an MP3, cut an MP3 for upload.

Everything runs ffmpeg/ffprobe as child processes with argv lists and reads their output line by
line, so memory stays flat whatever the size of the input. Inputs are untrusted uploads, so every
call restricts what libavformat may open: only local files (plus HTTP(S) when the caller reads a
presigned URL) and only the container formats in ``ALLOWED_FORMATS``. That refuses playlists
(HLS, concat) that would make ffmpeg read other local files or reach the network on behalf of a
file someone uploaded.

One module per job:

- ``binaries``: finding ffmpeg and ffprobe.
- ``inputs``: the allow-lists and the ``-i`` arguments every call carries.
- ``process``: the child-process runner (registered with ``vid2mp3.shutdown``; a child stopped
  by us or by a signal raises ``WorkInterrupted``, never a verdict on the file).
- ``diagnosis``: ffmpeg's stderr turned into errors: the file's, storage's or the service's own.
- ``encoding``: the one rule for bitrates and VBR quality, and for output bounds (the duration
  limit, the MP3 size a stated duration allows).
- ``probing``: ``probe`` and ``Probe``.
- ``extract``: ``extract_audio`` and ``AudioResult``.
- ``split``: ``split_for_upload``.
"""

from __future__ import annotations

from vid2mp3.media.binaries import find_ffmpeg, find_ffprobe
from vid2mp3.media.encoding import (
    BITRATE_CHOICES,
    BITRATES,
    DEFAULT_BITRATE,
    check_quality,
    parse_bitrate,
)
from vid2mp3.media.extract import AudioResult, extract_audio
from vid2mp3.media.inputs import ALLOWED_FORMATS
from vid2mp3.media.probing import Probe, probe
from vid2mp3.media.split import split_for_upload

__all__ = [
    "ALLOWED_FORMATS",
    "BITRATES",
    "BITRATE_CHOICES",
    "DEFAULT_BITRATE",
    "AudioResult",
    "Probe",
    "check_quality",
    "extract_audio",
    "find_ffmpeg",
    "find_ffprobe",
    "parse_bitrate",
    "probe",
    "split_for_upload",
]
