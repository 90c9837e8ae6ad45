"""The one rule for what MP3 encoding may be asked for (CBR bitrates and VBR quality), and
for how much output a conversion may write (``MAX_DURATION_SECONDS``, the size bound).

Requests, settings (``DEFAULT_BITRATE``) and ``extract_audio`` are meant to check with these
functions, so a value accepted in one place is never refused in another.
"""

from __future__ import annotations

import math
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


# --- output bounds ------------------------------------------------------------------------------

#: The default longest audio converted (the MAX_DURATION_SECONDS setting): 12 hours.
MAX_DURATION_SECONDS = 12 * 3600

#: ffmpeg is stopped (``-t``) this long after the duration limit, so audio that runs past the
#: limit, whatever its header said, is seen in the written MP3 (see ``ran_past``).
CUT_SLACK_SECONDS = 1.0
# A file exactly at the limit comes out a frame or two longer (encoder delay and padding).
_PAST_LIMIT_SECONDS = 0.5

# LAME's VBR frames reach 320 kbit/s at every quality (its -B default; ffmpeg cannot lower
# it), so VBR output is bounded by that, never by the quality's average.
_VBR_PEAK_KBPS = 320
# At 32-48 kHz the smallest MPEG-1 frame is 32 kbit/s: LAME raises a lower CBR request to it.
_MPEG1_FLOOR_KBPS = 32
# Copied MP3 frames: 320 kbit/s in the standard tables, up to 640 in free format.
_COPY_PEAK_KBPS = 320
_FREE_FORMAT_PEAK_KBPS = 640
# A stated duration is often an estimate (MPEG-TS, ADTS, an MP3 without a Xing header); this
# much longer audio still converts, far more is a container lying about its length.
_DURATION_ALLOWANCE = 0.10
_DURATION_ALLOWANCE_SECONDS = 2.0
# Our ID3v2 tag (the title only), the Xing/LAME info frame and frame rounding: well below this.
_HEADER_MARGIN_BYTES = 64 * 1024


def peak_kbps(*, bitrate: str | None, quality: int | None, copied_bps: int | None = None) -> int:
    """The highest bitrate (kbit/s) an MP3 written this way can have anywhere in the file.

    Args:
        bitrate: the CBR bitrate given to ffmpeg ("128k"), when encoding CBR.
        quality: the LAME VBR quality, when encoding VBR (wins over ``bitrate``).
        copied_bps: the source's bitrate (bit/s) when its MP3 frames are copied, if known.

    Returns:
        The peak bitrate in kbit/s.
    """
    if quality is not None:
        return _VBR_PEAK_KBPS
    if bitrate is not None:
        return max(int(parse_bitrate(bitrate)[:-1]), _MPEG1_FLOOR_KBPS)
    stated = (copied_bps or 0) // 1000
    return min(max(stated, _COPY_PEAK_KBPS), _FREE_FORMAT_PEAK_KBPS)


def output_size_limit(duration: float, kbps: int) -> int:
    """The most bytes an MP3 of ``duration`` seconds at ``kbps`` (``peak_kbps``) may take; a
    conversion that writes more is reading audio its container did not declare.

    Args:
        duration: the duration the source states (the duration limit when it states none).
        kbps: the peak bitrate of the encoding.

    Returns:
        The bound in bytes, headers and an allowance for estimated durations included.
    """
    seconds = duration * (1 + _DURATION_ALLOWANCE) + _DURATION_ALLOWANCE_SECONDS
    return math.ceil(seconds * kbps * 1000 / 8) + _HEADER_MARGIN_BYTES


def ran_past(written: float, max_duration: float) -> bool:
    """Whether an MP3 of ``written`` seconds holds more audio than ``max_duration`` allows
    (ffmpeg's ``-t`` stops it ``CUT_SLACK_SECONDS`` later, so this is how a cut shows)."""
    return written > max_duration + _PAST_LIMIT_SECONDS


def describe_duration(seconds: float) -> str:
    """``seconds`` as a person reads a length: "42.5 s", "1:02:03"."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"
