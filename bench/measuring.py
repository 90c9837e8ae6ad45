"""What the benchmarks share: running a command and measuring its wall time and peak memory.

Imported by the bench scripts beside it (``python bench/<name>.py`` puts this folder first on
``sys.path``); it measures nothing when run itself.
"""

from __future__ import annotations

import subprocess
import time

import psutil

#: How often a running command's memory is sampled (seconds).
SAMPLE_EVERY = 0.01


def measure(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) summed over the process and its children."""
    start = time.perf_counter()
    proc = psutil.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        try:
            tree = [proc, *proc.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(SAMPLE_EVERY)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {proc.stderr.read().decode()[-2000:]}")
    return wall, peak
