"""Benchmark: ``vid2mp3 convert`` against a bare ffmpeg call on the same file.

Prints, for a generated 10-minute 720p MP4, our wall time and peak RSS (the whole process tree:
Python plus ffmpeg) beside ``ffmpeg -i IN -vn -c:a libmp3lame -b:a 128k OUT`` with the same ffmpeg
binary, as ratios; and our peak RSS for a 1-minute and a 10-minute input side by side. Targets:
wall ratio <= 1.2 (start-up, database and events included), RSS growth 1 -> 10 min < 30 MB.

    ./run bench              # or: .venv/bin/python bench/convert.py [--minutes 10] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from measuring import measure

from vid2mp3 import media


def make_input(path: Path, minutes: float, ffmpeg: str) -> Path:
    if path.exists():
        return path
    seconds = int(minutes * 60)
    subprocess.run(
        [ffmpeg, "-nostdin", "-v", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=10:duration={seconds}",
         "-f", "lavfi", "-i", f"sine=frequency=220:beep_factor=3:sample_rate=48000:duration={seconds}",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-b:a", "128k", "-ac", "2", "-movflags", "+faststart", str(path)],
        check=True,
    )  # fmt: skip
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "vid2mp3-bench"))
    args = parser.parse_args()

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    ffmpeg = media.find_ffmpeg(os.environ.get("FFMPEG_BINARY", ""))
    vid2mp3 = str(Path(sys.executable).parent / "vid2mp3")
    env = {**os.environ, "FFMPEG_BINARY": ffmpeg, "VID2MP3_HOME": str(work / "home")}
    for key in (
        "DATABASE_URL",
        "STORAGE_URL",
        "EVENTS_URL",
        "K_SINK",
        "SMTP_URL",
        "OPENAI_BASE_URL",
    ):
        env.pop(key, None)
    long_in = make_input(work / f"in-{args.minutes:g}min.mp4", args.minutes, ffmpeg)
    short_in = make_input(work / "in-1min.mp4", 1, ffmpeg)

    def ours(src: Path) -> tuple[float, int]:
        return measure([vid2mp3, "convert", str(src), "-o", str(work / "ours.mp3"),
                        "--bitrate", "128k", "--no-progress", "--force"], env)  # fmt: skip

    def bare(src: Path) -> tuple[float, int]:
        return measure([ffmpeg, "-nostdin", "-v", "error", "-y", "-i", str(src), "-vn",
                        "-c:a", "libmp3lame", "-b:a", "128k", str(work / "bare.mp3")], env)  # fmt: skip

    ours(short_in)  # first run creates the state folder and the local user; not measured
    results: dict[str, list[tuple[float, int]]] = {"ours": [], "bare": [], "ours_1min": []}
    for _ in range(args.runs):  # interleaved so drift in machine load hits both alike
        results["bare"].append(bare(long_in))
        results["ours"].append(ours(long_in))
        results["ours_1min"].append(ours(short_in))

    def med(name: str, i: int) -> float:
        return statistics.median(r[i] for r in results[name])

    mb = 1024 * 1024
    print(f"input: {long_in.name} {long_in.stat().st_size / mb:.1f} MB, {args.runs} runs, medians")
    print(f"bare ffmpeg      wall {med('bare', 0):6.2f} s   peak RSS {med('bare', 1) / mb:6.1f} MB")
    print(f"vid2mp3 convert  wall {med('ours', 0):6.2f} s   peak RSS {med('ours', 1) / mb:6.1f} MB")
    print(f"wall ratio (ours / bare): {med('ours', 0) / med('bare', 0):.3f}   (target <= 1.2)")
    print(f"RSS ratio  (ours / bare): {med('ours', 1) / med('bare', 1):.3f}")
    growth = (med("ours", 1) - med("ours_1min", 1)) / mb
    print(
        f"peak RSS 1 min {med('ours_1min', 1) / mb:.1f} MB vs {args.minutes:g} min "
        f"{med('ours', 1) / mb:.1f} MB: growth {growth:+.1f} MB   (target < 30 MB)"
    )


if __name__ == "__main__":
    main()
