"""``vid2mp3 convert`` when things go wrong on this side: the output path, a full disk, Ctrl-C.

The user must get one line and an exit code, never a traceback, and nothing half-written may be
left behind: no ``.part`` beside the MP3, no temp folder, no ffmpeg still running.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mutagen.mp3 import MP3

from tests.test_cli import VID2MP3, env_for
from vid2mp3 import bootstrap, cli, jobs, logs, media, users
from vid2mp3.db.sqlite import SqliteDatabase
from vid2mp3.db.unit_of_work import UnitOfWork
from vid2mp3.model import Job


def convert(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*VID2MP3, "convert", *args],
        env=env_for(home, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def talk(tmp_path: Path, make_video: Any) -> Path:
    """A short video named as a user's would be, so the MP3's name is predictable."""
    video = tmp_path / "talk.mp4"
    shutil.copyfile(make_video("mp4"), video)
    return video


def leftovers(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.part"))


def assert_one_error_line(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("vid2mp3: error:"), done.stderr
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in done.stderr


# --- where the MP3 goes ---------------------------------------------------------------------


def test_output_ending_in_a_slash_is_a_folder_created_for_the_mp3(
    tmp_path: Path, talk: Path
) -> None:
    folder = tmp_path / "new" / "deeper"
    done = convert(tmp_path / "home", str(talk), "-o", f"{folder}/", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert MP3(folder / "talk.mp3").info.length > 3
    assert done.stdout.startswith(str(folder / "talk.mp3"))
    assert leftovers(folder) == []


def test_output_naming_an_existing_folder_puts_the_mp3_inside(tmp_path: Path, talk: Path) -> None:
    folder = tmp_path / "music"
    folder.mkdir()
    done = convert(tmp_path / "home", str(talk), "-o", str(folder), "--no-progress")
    assert done.returncode == 0, done.stderr
    assert MP3(folder / "talk.mp3").info.length > 3
    # The MP3 and the default transcripts beside it; nothing else, no .part.
    assert sorted(p.name for p in folder.iterdir()) == ["talk.mp3", "talk.srt", "talk.txt"]


def test_an_existing_mp3_is_kept_unless_forced(tmp_path: Path, talk: Path) -> None:
    existing = tmp_path / "talk.mp3"
    existing.write_bytes(b"the user's own file")
    home = tmp_path / "home"
    done = convert(home, str(talk), "--no-progress")
    assert_one_error_line(done, f"{existing} exists; pass --force to overwrite it")
    assert existing.read_bytes() == b"the user's own file"
    # Refused before anything started: no database, no job, no email.
    assert not home.exists()

    forced = convert(home, str(talk), "--force", "--no-progress")
    assert forced.returncode == 0, forced.stderr
    assert MP3(existing).info.length > 3
    assert leftovers(tmp_path) == []


def test_output_that_is_a_folder_named_like_the_mp3_is_refused(tmp_path: Path, talk: Path) -> None:
    (tmp_path / "out" / "talk.mp3").mkdir(parents=True)
    home = tmp_path / "home"
    done = convert(home, str(talk), "-o", f"{tmp_path / 'out'}/", "--force", "--no-progress")
    assert_one_error_line(done, "is a folder")
    assert not home.exists()


def test_a_failure_with_the_bar_drawn_ends_the_bar_before_the_error(
    tmp_path: Path, make_video: Any
) -> None:
    done = convert(tmp_path / "home", str(make_video("no_audio")), "-o", str(tmp_path / "x.mp3"))
    assert done.returncode == 1
    lines = done.stderr.split("\n")
    assert lines[-1] == "", done.stderr  # the error line is finished too
    assert lines[-2].startswith("vid2mp3: error:"), done.stderr  # a line of its own
    assert "no audio" in lines[-2].lower()
    assert "100%" not in done.stderr  # a failure is not drawn as done
    assert "Traceback" not in done.stderr


# --- a full disk ----------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: the MP3 of a 4 s video at 192k (about 100 KB) cannot fit."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root?); the in-process test covers ENOSPC")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def test_a_full_disk_is_one_line_and_leaves_no_part_file(
    tmp_path: Path, talk: Path, small_disk: Path
) -> None:
    out = small_disk / "talk.mp3"
    done = convert(tmp_path / "home", str(talk), "-o", str(out), "--no-progress")
    assert_one_error_line(done, f"could not write {out}: No space left on device")
    assert list(small_disk.iterdir()) == []


@pytest.fixture
def in_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Run ``cli.main`` in this process with its own VID2MP3_HOME; yields the home."""
    for key in list(os.environ):
        if key.startswith(("DATABASE_", "STORAGE_", "EVENTS_", "K_SINK", "SMTP_", "OPENAI_")):
            monkeypatch.delenv(key)
    home = tmp_path / "home"
    monkeypatch.setenv("VID2MP3_HOME", str(home))
    # The command adds a stderr log handler once per process; keep this process's logging as is.
    monkeypatch.setattr(logs, "configure", lambda level="INFO": None)
    yield home
    bootstrap.install(None)


def write_failing_for_part_files(
    monkeypatch: pytest.MonkeyPatch, error: Callable[[], BaseException]
) -> None:
    """``os.write`` raises ``error()`` for the CLI's temp file and works for everything else."""
    real = os.write

    def write(fd: int, data: Any) -> int:
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".part"):
            raise error()
        return real(fd, data)

    monkeypatch.setattr(os, "write", write)


def test_enospc_while_writing_in_process(
    in_process: Path,
    talk: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out" / "talk.mp3"
    write_failing_for_part_files(
        monkeypatch, lambda: OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    )
    assert cli.main(["convert", str(talk), "-o", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err == f"vid2mp3: error: could not write {out}: No space left on device\n"
    assert list(out.parent.iterdir()) == []


def test_ctrl_c_while_writing_removes_the_part_file_and_a_second_run_works(
    in_process: Path,
    talk: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out" / "talk.mp3"
    with monkeypatch.context() as patch:
        write_failing_for_part_files(patch, KeyboardInterrupt)
        assert cli.main(["convert", str(talk), "-o", str(out), "--no-progress"]) == 130
    assert capsys.readouterr().err == "vid2mp3: interrupted\n"
    assert list(out.parent.iterdir()) == []
    # The job had completed before the interruption: it stays completed, the MP3 downloadable.
    assert [str(j.state) for j in jobs_of(in_process)] == ["completed"]

    # The same process again: the stop requested by the first run must not refuse this one.
    assert cli.main(["convert", str(talk), "-o", str(out), "--no-progress"]) == 0
    assert MP3(out).info.length > 3
    assert sorted(p.name for p in out.parent.iterdir()) == ["talk.mp3", "talk.srt", "talk.txt"]


# --- Ctrl-C ---------------------------------------------------------------------------------


def jobs_of(home: Path) -> list[Job]:
    db = SqliteDatabase(str(home / "vid2mp3.db"))
    try:
        with UnitOfWork(db) as uow:
            user = uow.users.by_email(users.LOCAL_EMAIL)
            return [] if user is None else uow.jobs.list_for_user(user.id)
    except Exception:  # the CLI has not created the database yet
        return []
    finally:
        db.close()


def ffmpegs(mentioning: str) -> dict[int, list[str]]:
    """Live ffmpeg processes whose command line mentions ``mentioning`` (pid → argv)."""
    found: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if state != "Z" and "ffmpeg" in Path(argv[0]).name and mentioning in " ".join(argv):
                found[int(entry.name)] = argv
    return found


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="reads /proc")
@pytest.mark.parametrize(
    "to_group",
    [
        pytest.param(False, id="cli-only"),  # only our shutdown can stop ffmpeg
        pytest.param(True, id="terminal"),  # as Ctrl-C at a terminal: ffmpeg gets SIGINT too
    ],
)
def test_ctrl_c_stops_ffmpeg_and_leaves_nothing_behind(
    tmp_path: Path, make_video: Any, to_group: bool
) -> None:
    home, temp, out_dir = tmp_path / "home", tmp_path / "tmp", tmp_path / "out"
    temp.mkdir()
    # ffmpeg reads at real-time speed, so the conversion is surely still running when the
    # signal comes, however fast this machine is; the wrapper execs, so ffmpeg keeps its pid.
    wrapper = tmp_path / "slow-ffmpeg"
    wrapper.write_text(f'#!/bin/sh\nexec "{media.find_ffmpeg()}" -re "$@"\n')
    wrapper.chmod(0o755)
    video = make_video("mp4", seconds=120)
    env = env_for(home, TMPDIR=str(temp), FFMPEG_BINARY=str(wrapper))
    with (tmp_path / "stdout").open("w+") as stdout, (tmp_path / "stderr").open("w+") as stderr:
        proc = subprocess.Popen(
            [*VID2MP3, "convert", str(video), "-o", str(out_dir / "long.mp3"), "--no-progress"],
            env=env,
            stdout=stdout,
            stderr=stderr,
            text=True,
            start_new_session=True,  # its own process group, as a terminal's foreground job
        )
        try:

            def converting() -> Job | None:
                if proc.poll() is not None:
                    stderr.seek(0)
                    raise AssertionError(f"the CLI ended early: {stderr.read()}")
                found = jobs_of(home)
                ok = found and str(found[0].state) == "converting" and found[0].progress >= 1
                return found[0] if ok else None

            job = wait_for(converting, 60, "the job to be converting")
            running = ffmpegs(str(temp))
            assert running, "the scan for ffmpeg finds nothing: the test could not see a leak"
            assert proc.pid in {parent_of(pid) for pid in running}  # its child, not the wrapper's

            if to_group:
                os.killpg(proc.pid, signal.SIGINT)
            else:
                proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=15) == 130
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)  # the group this test started, ffmpeg too
                proc.wait()
        stderr.seek(0)
        err = stderr.read()
    assert err.splitlines()[-1] == "vid2mp3: interrupted", err
    assert "Traceback" not in err
    # Reaped by the CLI before it exited; a moment of grace for /proc to catch up.
    with contextlib.suppress(AssertionError):
        wait_for(lambda: not ffmpegs(str(temp)), 5, "ffmpeg to be gone")
    leaked = ffmpegs(str(temp))
    for pid in leaked:  # a leak found is reported, not left running
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    assert not leaked, leaked
    assert all(pid not in ffmpegs("") for pid in running)

    (ended,) = jobs_of(home)
    assert ended.id == job.id
    assert (str(ended.state), ended.error) == ("failed", "interrupted")
    assert not out_dir.exists() or list(out_dir.iterdir()) == []
    assert list(temp.glob("vid2mp3-*")) == []
    assert list((home / "outbox").glob("*.eml")) == []


def test_a_download_broken_midway_is_one_line_and_leaves_no_part_file(
    in_process: Path,
    talk: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def broken(self: Any) -> Iterator[bytes]:
        yield b"\xff\xfb" * 1000  # some of the MP3 reaches the temp file first
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(jobs.Download, "chunks", broken)
    out = tmp_path / "out" / "talk.mp3"
    assert cli.main(["convert", str(talk), "-o", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err == "vid2mp3: error: could not download the MP3: Input/output error\n"
    assert list(out.parent.iterdir()) == []
