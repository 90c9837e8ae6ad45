"""How numbers read to a person: durations and sizes in emails, the CLI and the UI."""

from __future__ import annotations


def duration(seconds: float | None) -> str:
    """``m:ss`` or ``h:mm:ss``."""
    if not seconds:
        return "unknown"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def size(n: int | None) -> str:
    """Bytes in the largest unit that keeps the number readable."""
    if not n:
        return "unknown"
    value = float(n)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
