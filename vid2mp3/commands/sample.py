"""``python -m vid2mp3.commands.sample OUT.mp4``: make a short sample video (tone + test card)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from vid2mp3 import media, private_files


def make_sample(out: Path, seconds: int = 30) -> Path:
    """Write an H.264/AAC MP4 of ``seconds`` to ``out`` (kept if it already exists)."""
    if out.exists():
        return out
    # ./run demo writes it into VID2MP3_HOME, which may not exist yet: made private, as the
    # service would make it.
    private_files.make_dirs(out.parent)
    ffmpeg = media.find_ffmpeg()
    subprocess.run(
        [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc=size=640x360:rate=25:duration={seconds}",
         "-f", "lavfi", "-i", f"sine=frequency=330:beep_factor=4:duration={seconds}",
         "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", "-shortest", str(out)],
        check=True,
    )  # fmt: skip
    return out


if __name__ == "__main__":
    path = make_sample(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("sample.mp4"))
    print(f"sample video: {path}", file=sys.stderr)
