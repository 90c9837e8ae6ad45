"""Finding the ffmpeg and ffprobe to run."""

from __future__ import annotations

import os
import shutil

from vid2mp3.errors import ConfigError


def find_ffmpeg(configured: str = "") -> str:
    """The ffmpeg to run: the FFMPEG_BINARY setting, else PATH, else imageio-ffmpeg's binary.

    Args:
        configured: the FFMPEG_BINARY setting ("" when unset): a path or a name on PATH.

    Returns:
        An absolute path (or what PATH/imageio-ffmpeg resolved) to an ffmpeg executable.

    Raises:
        ConfigError: the setting names no executable, or no ffmpeg can be found at all.
    """
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
    """An ffprobe next to ``ffmpeg``, else on PATH, else None (imageio-ffmpeg ships none).

    Args:
        ffmpeg: the ffmpeg that will be used, so a matching ffprobe is preferred.

    Returns:
        The ffprobe path, or None when there is none (callers then parse ``ffmpeg -i``).
    """
    resolved = shutil.which(ffmpeg) or ffmpeg
    name = "ffprobe.exe" if os.name == "nt" else "ffprobe"
    sibling = os.path.join(os.path.dirname(resolved), name)
    if os.path.isfile(sibling) and os.access(sibling, os.X_OK):
        return sibling
    return shutil.which("ffprobe")
