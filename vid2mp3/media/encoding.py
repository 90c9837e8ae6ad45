"""The one rule for what MP3 encoding may be asked for: CBR bitrates and VBR quality.

Requests, settings (``DEFAULT_BITRATE``) and ``extract_audio`` are meant to check with these
functions, so a value accepted in one place is never refused in another.
"""

from __future__ import annotations

import re

from vid2mp3.errors import InvalidInput

# The CBR bitrates (kbit/s) of MPEG-1 Layer III (32-48 kHz) and of MPEG-2/2.5 (8-24 kHz).
_MPEG1_KBPS = (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
_MPEG2_KBPS = (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)

#: Every MP3 CBR bitrate (kbit/s), both tables together. LAME moves any other value to one of
#: these. It also moves a rate the sample rate's MPEG version lacks: at 44.1/48 kHz, 8k-24k
#: become 32k and 144k becomes 128k. ``AudioResult.bitrate`` reports the measured rate.
BITRATES: tuple[int, ...] = tuple(sorted(set(_MPEG1_KBPS) | set(_MPEG2_KBPS)))

#: The built-in fallback when neither the job nor the DEFAULT_BITRATE setting says otherwise.
DEFAULT_BITRATE = "192k"

BITRATE_CHOICES = ", ".join(f"{kbps}k" for kbps in BITRATES)

# No leading zeros, no spaces, at most three digits: what reaches ffmpeg's argv is exactly
# what we print back.
_BITRATE_RE = re.compile(r"(?P<kbps>[1-9][0-9]{0,2})[kK]?")


def parse_bitrate(value: object) -> str:
    """The bitrate ``value`` names, in the form ffmpeg is given ("128k").

    Args:
        value: "128k", "128K", "128" or the int 128.

    Returns:
        The normalized bitrate, e.g. "128k".

    Raises:
        InvalidInput: ``value`` is not one of ``BITRATES``; the message lists them.
    """
    kbps: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        kbps = value
    elif isinstance(value, str):
        match = _BITRATE_RE.fullmatch(value)
        kbps = int(match.group("kbps")) if match else None
    if kbps not in BITRATES:
        raise InvalidInput(f"bitrate must be one of {BITRATE_CHOICES}")
    return f"{kbps}k"


def check_quality(value: object) -> int:
    """``value`` as a LAME VBR quality.

    Args:
        value: a whole number from 0 (best) to 9 (smallest); a bool is not one.

    Returns:
        ``value`` unchanged.

    Raises:
        InvalidInput: ``value`` is not a whole number from 0 to 9.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 9:
        raise InvalidInput("quality must be a whole number from 0 (best) to 9 (smallest)")
    return value
