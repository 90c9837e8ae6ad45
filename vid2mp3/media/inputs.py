"""What libavformat may open for an input: the protocol and format allow-lists, and ``-i``.

Inputs are untrusted uploads, so every call restricts what libavformat may open: only local
files (plus HTTP(S) when the caller reads a presigned URL) and only the container formats in
``ALLOWED_FORMATS``. That refuses playlists (HLS, concat) that would make ffmpeg read other
local files or reach the network on behalf of a file someone uploaded.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from vid2mp3.errors import NotFound, UnsupportedMedia

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
LOCAL_PROTOCOLS = ("file", "pipe")
_NETWORK_PROTOCOLS = ("http", "https", "tcp", "tls")
# A stalled presigned URL would otherwise hang the function until the platform kills it.
_NETWORK_TIMEOUT_US = 60_000_000


def input_args(location: str, network: bool, headers: Mapping[str, str] | None = None) -> list[str]:
    """The ffmpeg/ffprobe arguments that open ``location`` under the allow-lists.

    Args:
        location: what ``locate`` returned (an absolute path, or a URL when ``network``).
        network: also allow HTTP(S) and give up on a stalled connection.
        headers: HTTP headers every request for ``location`` must carry (a presigned URL's
            signed ``If-Match``); only with ``network``.

    Returns:
        The argument list, ending with ``-i location``.

    Raises:
        ValueError: a header has a line break (it would add headers of its own) or is given
            without ``network``.
    """
    protocols = LOCAL_PROTOCOLS + (_NETWORK_PROTOCOLS if network else ())
    args = ["-protocol_whitelist", ",".join(protocols), "-format_whitelist", _FORMAT_WHITELIST]
    if network:
        args += ["-rw_timeout", str(_NETWORK_TIMEOUT_US)]
    if headers:
        if not network:
            raise ValueError("HTTP headers need a network source")
        args += ["-headers", _header_block(headers)]
    return [*args, "-i", location]


def _header_block(headers: Mapping[str, str]) -> str:
    # ffmpeg's http protocol sends this block verbatim with every request, range requests
    # included, so a CR or LF inside a value would smuggle in a header of its own.
    lines = []
    for name, value in headers.items():
        if any(c in f"{name}{value}" for c in "\r\n\0") or not name or ":" in name:
            raise ValueError(f"invalid HTTP header {name!r}")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines)


def locate(source: str, network: bool) -> str:
    """What to hand ffmpeg as ``-i``; local files are checked here so errors are precise.

    Args:
        source: a local path, or an HTTP(S) URL when ``network`` is true.
        network: whether ``source`` may be a URL.

    Returns:
        The URL unchanged, or the absolute path of the local file.

    Raises:
        NotFound: the local file does not exist (a URL without ``network`` is a file name).
        UnsupportedMedia: the local file is empty.
    """
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
