"""ffmpeg stopped by our shutdown or by a signal is interrupted work, never the file's failure.

Real ffmpeg on a 10-minute input, so a conversion runs long enough to be stopped halfway.
Nothing here asserts timings beyond "it returns"; waits have generous deadlines.
"""

from __future__ import annotations

import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import imageio_ffmpeg
import psutil
import pytest

from tests.fixtures.media import MakeVideo
from vid2mp3 import media, shutdown
from vid2mp3.errors import TransientError, UnsupportedMedia
from vid2mp3.media import binaries, process
from vid2mp3.shutdown import WorkInterrupted

pytestmark = pytest.mark.skipif(
    shutil.which("ffprobe") is None or shutil.which("ffmpeg") is None,
    reason="needs system ffmpeg and ffprobe",
)

LONG = 600.0
DEADLINE = 60.0


@pytest.fixture(autouse=True)
def _forget_stops() -> Iterator[None]:
    shutdown.reset()
    yield
    shutdown.reset()


def children_writing(dest: Path) -> list[psutil.Process]:
    """Our child processes whose command line names ``dest`` (the conversion's ffmpeg)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if str(dest) in child.cmdline():
                found.append(child)
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
    return found


def when_converting(dest: Path, act: Callable[[psutil.Process], None]) -> threading.Thread:
    """A thread that waits for the ffmpeg writing ``dest`` to run a while, then calls ``act``."""

    def watch() -> None:
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            running = children_writing(dest)
            # Some output first: the conversion is under way, not starting up.
            if running and dest.exists() and dest.stat().st_size > 0:
                act(running[0])
                return
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_shutdown_during_extract_hands_the_job_back(make_video: MakeVideo, tmp_path: Path) -> None:
    source = str(make_video("mp4", seconds=LONG))
    dest = tmp_path / "out.mp3"
    requested = threading.Event()

    def stop(_: psutil.Process) -> None:
        requested.set()
        shutdown.request(0)

    watcher = when_converting(dest, stop)
    with pytest.raises(WorkInterrupted) as caught:
        media.extract_audio(source, str(dest), title="t")
    watcher.join(DEADLINE)

    assert requested.is_set(), "the conversion ended before it could be stopped"
    assert caught.value.message == (
        "the worker stopped before ffmpeg finished; the job is handed back"
    )
    assert isinstance(caught.value, TransientError)
    assert children_writing(dest) == []
    assert not dest.exists()


@pytest.mark.parametrize(
    "ffmpeg", [shutil.which("ffmpeg"), imageio_ffmpeg.get_ffmpeg_exe()], ids=["system", "bundled"]
)
@pytest.mark.parametrize(
    ("sent", "said"),
    [
        # ffmpeg catches SIGTERM, finishes a short MP3 and exits 255 without a word at -v error.
        (signal.SIGTERM, "ffmpeg was stopped by a signal; the job is handed back"),
        (signal.SIGKILL, "ffmpeg was stopped by signal SIGKILL; the job is handed back"),
    ],
    ids=["SIGTERM", "SIGKILL"],
)
def test_a_signal_from_outside_is_not_the_files_fault(
    ffmpeg: str, sent: signal.Signals, said: str, make_video: MakeVideo, tmp_path: Path
) -> None:
    source = str(make_video("mp4", seconds=LONG))
    dest = tmp_path / "out.mp3"
    signalled: list[int] = []

    def kill(child: psutil.Process) -> None:
        signalled.append(child.pid)
        child.send_signal(sent)

    watcher = when_converting(dest, kill)
    with pytest.raises(WorkInterrupted) as caught:
        media.extract_audio(source, str(dest), title="t", ffmpeg=ffmpeg)
    watcher.join(DEADLINE)

    assert signalled, "the conversion ended before it could be signalled"
    assert not isinstance(caught.value, UnsupportedMedia)
    assert caught.value.message == said
    assert not shutdown.requested()  # nobody asked this process to stop
    assert children_writing(dest) == []
    assert not dest.exists()


def test_probe_after_cancellation_is_interrupted(make_video: MakeVideo) -> None:
    # A child started after the stop is ended at once (shutdown.tracked), and said so.
    shutdown.request(0)
    with pytest.raises(WorkInterrupted, match="before ffprobe finished"):
        media.probe(str(make_video("mp4")))


def test_ffmpeg_probe_fallback_after_cancellation_is_interrupted(
    make_video: MakeVideo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(binaries, "find_ffprobe", lambda ffmpeg: None)
    shutdown.request(0)
    with pytest.raises(WorkInterrupted, match="before ffmpeg finished"):
        media.probe(str(make_video("mp4")))


def test_split_after_cancellation_is_interrupted(make_video: MakeVideo, tmp_path: Path) -> None:
    mp3 = tmp_path / "talk.mp3"
    media.extract_audio(str(make_video("mp4")), str(mp3), title="t")
    shutdown.request(0)
    with pytest.raises(WorkInterrupted, match="before ffmpeg finished"):
        media.split_for_upload(mp3, 4.0, limit=mp3.stat().st_size // 4)
    assert not (tmp_path / "segments").exists()


def test_children_are_unregistered_when_done(make_video: MakeVideo, tmp_path: Path) -> None:
    media.extract_audio(str(make_video("mp4")), str(tmp_path / "o.mp3"), title="t")
    # Nothing left for a later stop request to terminate (or to mistake a reused pid for).
    assert shutdown._children == set()


# --- the exit rules, on plain Python children --------------------------------------------------


def run(script: str) -> int:
    with process.Child([sys.executable, "-c", script]) as child:
        return child.wait()


def test_killed_by_a_signal_is_named() -> None:
    with pytest.raises(WorkInterrupted, match="stopped by signal SIGTERM"):
        run("import os, signal; os.kill(os.getpid(), signal.SIGTERM)")
    with pytest.raises(WorkInterrupted, match="stopped by signal SIGSEGV"):
        run("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")


def test_ffmpeg_saying_it_received_a_signal_is_named() -> None:
    script = "import sys; print('Exiting normally, received signal 2.', file=sys.stderr); exit(255)"
    with pytest.raises(WorkInterrupted, match="stopped by signal SIGINT"):
        run(script)


def test_exit_255_with_an_error_message_is_an_ordinary_failure() -> None:
    # 255 is also AVERROR(EPERM) in ffmpeg 7+; then ffmpeg says what went wrong.
    assert run("import sys; print('Operation not permitted', file=sys.stderr); exit(255)") == 255
    assert run("exit(1)") == 1
    assert run("pass") == 0


def test_a_forged_signal_line_is_not_believed() -> None:
    # Only a line that starts with ffmpeg's words counts; metadata is echoed indented.
    script = (
        "import sys; print('    title : Exiting normally, received signal 9.', file=sys.stderr);"
        " exit(255)"
    )
    assert run(script) == 255


def test_stopped_by_us_wins_over_the_exit_code() -> None:
    with process.Child([sys.executable, "-c", "import time; time.sleep(60)"]) as child:
        shutdown.cancel_running()
        with pytest.raises(WorkInterrupted, match="the worker stopped before"):
            child.wait(DEADLINE)
    assert child.proc.returncode == -signal.SIGTERM
