"""The service's own trouble (disk full, unwritable output, out of memory) is a ``ServiceFault``:
retried, worded for a user, never naming a path, never blaming "your file".

Real failures where root can still be made to fail: ``/dev/full`` (ENOSPC), sysfs (EACCES on
create), procfs (ENOENT on create), a read-only tmpfs when ``mount`` works; the stderr rules for
what root cannot provoke (an unreadable input) are checked on ffmpeg's own wording.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import pytest

from tests.fixtures.media import MakeVideo
from vid2mp3 import media
from vid2mp3.errors import ConfigError, ServiceFault, TransientError, UnsupportedMedia
from vid2mp3.media import diagnosis, extract, process

pytestmark = pytest.mark.skipif(
    shutil.which("ffprobe") is None or shutil.which("ffmpeg") is None,
    reason="needs system ffmpeg and ffprobe",
)

# Debian's ffmpeg 5 exits 0 when only its trailer failed to write; imageio-ffmpeg's is newer.
BINARIES = pytest.mark.parametrize(
    "ffmpeg",
    [shutil.which("ffmpeg"), imageio_ffmpeg.get_ffmpeg_exe()],
    ids=["system", "bundled"],
)


def assert_users_may_read(error: ServiceFault, *paths: str) -> None:
    message = error.message
    assert "it will try again" in message
    for word in ("file", "your"):
        assert word not in message.lower(), message
    for path in paths:
        assert path not in message, message
    assert "/" not in message, message


# --- real failures ----------------------------------------------------------------------------


@BINARIES
def test_disk_full_is_the_services_fault(ffmpeg: str, make_video: MakeVideo) -> None:
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)
    with pytest.raises(ServiceFault) as caught:
        media.extract_audio(str(make_video("mp4")), "/dev/full", title="t", ffmpeg=ffmpeg)
    assert "ran out of disk space while converting" in caught.value.message
    assert_users_may_read(caught.value, "/dev/full")
    # Cleanup removes only regular files: the device must survive a failed conversion.
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


@BINARIES
def test_output_permission_denied_is_the_services_fault(ffmpeg: str, make_video: MakeVideo) -> None:
    # sysfs refuses to create files, even for root.
    dest = f"/sys/vid2mp3-test-{uuid.uuid4().hex}.mp3"
    try:
        with open(dest, "wb"):
            pass
    except PermissionError:
        pass
    else:
        os.remove(dest)
        pytest.skip("/sys accepts new files here")
    with pytest.raises(ServiceFault) as caught:
        media.extract_audio(str(make_video("mp4")), dest, title="t", ffmpeg=ffmpeg)
    assert "was not allowed to write its working data" in caught.value.message
    assert_users_may_read(caught.value, dest)
    assert not os.path.exists(dest)


@BINARIES
def test_output_that_cannot_be_created_is_the_services_fault(
    ffmpeg: str, make_video: MakeVideo
) -> None:
    # The folder exists, so only ffmpeg's open fails (ENOENT from procfs): ffmpeg's words about
    # the output, not the input, decide.
    dest = f"/proc/vid2mp3-test-{uuid.uuid4().hex}.mp3"
    with pytest.raises(ServiceFault) as caught:
        media.extract_audio(str(make_video("mp4")), dest, title="t", ffmpeg=ffmpeg)
    assert "lost its working folder while converting" in caught.value.message
    assert_users_may_read(caught.value, dest)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[tuple[Path, Callable[[], None]]]:
    """A small tmpfs and the function that makes it read-only; skipped where mount is refused.

    Root ignores mode bits, not a read-only mount, so this is how root is made to fail.
    """
    folder = tmp_path / "tmpfs"
    folder.mkdir()
    mount = shutil.which("mount")
    if mount is None:
        pytest.skip("no mount command")
    done = subprocess.run(
        [mount, "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode(errors='replace')}")

    def freeze() -> None:
        subprocess.run([mount, "-o", "remount,ro", str(folder)], check=True, capture_output=True)

    try:
        yield folder, freeze
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@BINARIES
def test_read_only_output_folder_is_the_services_fault(
    ffmpeg: str, make_video: MakeVideo, tmpfs: tuple[Path, Callable[[], None]]
) -> None:
    folder, freeze = tmpfs
    freeze()
    dest = folder / "out.mp3"
    with pytest.raises(ServiceFault) as caught:
        media.extract_audio(str(make_video("mp4")), str(dest), title="t", ffmpeg=ffmpeg)
    assert "the disk is read-only" in caught.value.message
    assert_users_may_read(caught.value, str(dest), str(folder))


def test_split_on_a_read_only_disk_is_the_services_fault(
    make_video: MakeVideo, tmpfs: tuple[Path, Callable[[], None]]
) -> None:
    folder, freeze = tmpfs
    mp3 = folder / "talk.mp3"
    media.extract_audio(str(make_video("mp4")), str(mp3), title="t")
    freeze()
    with pytest.raises(ServiceFault, match="Read-only file system") as caught:
        media.split_for_upload(mp3, None, limit=10_000)
    assert "while splitting the audio" in caught.value.message
    assert_users_may_read_strerror(caught.value, str(folder))
    assert not (folder / "segments").exists()


def assert_users_may_read_strerror(error: ServiceFault, *paths: str) -> None:
    # An OSError's strerror may say "file" ("No such file or directory"); paths never appear.
    assert "it will try again" in error.message
    for path in paths:
        assert path not in error.message, error.message
    assert "/" not in error.message, error.message


# --- our own file handling --------------------------------------------------------------------


def test_enospc_while_verifying_is_the_services_fault(
    make_video: MakeVideo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "out.mp3"
    real_getsize = os.path.getsize

    def full(path: Any) -> int:
        if os.fspath(path) == str(dest):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dest))
        return real_getsize(path)

    monkeypatch.setattr(extract.os.path, "getsize", full)
    with pytest.raises(ServiceFault) as caught:
        media.extract_audio(str(make_video("mp4")), str(dest), title="t")
    assert "No space left on device" in caught.value.message
    assert_users_may_read_strerror(caught.value, str(dest), str(tmp_path))
    assert not dest.exists()


def test_destination_folder_that_is_a_file(make_video: MakeVideo, tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("")
    with pytest.raises(ServiceFault, match="Not a directory") as caught:
        media.extract_audio(
            str(make_video("mp4")), str(tmp_path / "not-a-dir" / "o.mp3"), title="t"
        )
    assert_users_may_read_strerror(caught.value, str(tmp_path))


def test_segments_folder_in_the_way_is_the_services_fault(tmp_path: Path) -> None:
    mp3 = tmp_path / "talk.mp3"
    mp3.write_bytes(b"\xff\xfb" * 1000)
    (tmp_path / "segments").write_text("")
    with pytest.raises(ServiceFault, match="File exists") as caught:
        media.split_for_upload(mp3, 10.0, limit=100)
    assert "while splitting the audio" in caught.value.message
    assert_users_may_read_strerror(caught.value, str(tmp_path))


def test_missing_mp3_to_split_is_the_services_fault(tmp_path: Path) -> None:
    with pytest.raises(ServiceFault, match="No such file or directory") as caught:
        media.split_for_upload(tmp_path / "gone.mp3", 10.0, limit=100)
    assert_users_may_read_strerror(caught.value, str(tmp_path))


@pytest.mark.parametrize(
    ("code", "raised"),
    [
        (errno.ENOMEM, ServiceFault),
        (errno.EAGAIN, ServiceFault),
        (errno.EMFILE, ServiceFault),
        (errno.EACCES, ConfigError),
        (errno.ENOENT, ConfigError),
        (errno.ENOEXEC, ConfigError),
    ],
)
def test_a_child_that_cannot_start(
    code: int, raised: type[Exception], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        raise OSError(code, os.strerror(code), argv[0])

    monkeypatch.setattr(process.subprocess, "Popen", refuse)
    with pytest.raises(raised) as caught:
        process.Child(["/usr/bin/ffmpeg", "-version"])
    if raised is ServiceFault:
        assert isinstance(caught.value, TransientError)
        assert os.strerror(code) in str(caught.value)
        assert "/usr/bin" not in str(caught.value)
    else:
        assert "FFMPEG_BINARY" in str(caught.value)


# --- ffmpeg's words, input or output ----------------------------------------------------------

IN = "/tmp/vid2mp3-abc/input.mp4"
OUT = "/tmp/vid2mp3-abc/audio.mp3"


@pytest.mark.parametrize(
    "tail",
    [
        [f"{OUT}: Permission denied"],  # ffmpeg 5
        [
            f"[out#0/mp3 @ 0x55589d3f7600] Error opening output {OUT}: Permission denied",
            f"Error opening output file {OUT}.",
            "Error opening output files: Permission denied",
        ],  # ffmpeg 7+
    ],
)
def test_permission_denied_on_the_output_is_ours(tail: list[str]) -> None:
    error = diagnosis.failure(tail, IN, what="convert", output=OUT)
    assert isinstance(error, ServiceFault)
    assert "was not allowed to write its working data while converting" in error.message
    assert_users_may_read(error, IN, OUT)


@pytest.mark.parametrize(
    "tail",
    [
        [f"{IN}: Permission denied"],
        [
            "[in#0 @ 0x556f20b86040] Error opening input: Permission denied",
            f"Error opening input file {IN}.",
            "Error opening input files: Permission denied",
        ],
        # The input's folder is called "output": its name must not make the trouble ours.
        ["/srv/output/clip.mp4: Permission denied"],
    ],
)
def test_permission_denied_on_the_input_is_not(tail: list[str]) -> None:
    location = "/srv/output/clip.mp4" if "/srv/output" in tail[0] else IN
    error = diagnosis.failure(tail, location, what="convert", output=OUT)
    assert not isinstance(error, ServiceFault)
    assert isinstance(error, UnsupportedMedia)
    assert "Permission denied" in error.message
    assert location not in error.message


@pytest.mark.parametrize(
    ("line", "told"),
    [
        ("Error writing trailer of {out}: No space left on device", "ran out of disk space"),
        ("[out#0/mp3 @ 0x1] Error writing trailer: Disk quota exceeded", "ran out of disk quota"),
        ("{out}: Quota exceeded", "ran out of disk quota"),
        ("{out}: Read-only file system", "the disk is read-only"),
        ("[aac @ 0x1] Error allocating frame: Cannot allocate memory", "ran out of memory"),
        ("av_malloc: Out of memory", "ran out of memory"),
    ],
)
@pytest.mark.parametrize(("what", "doing"), [("read", "reading the video"), ("split", "splitting")])
def test_host_trouble_whatever_the_step(line: str, told: str, what: str, doing: str) -> None:
    tail = [line.format(out=OUT)]
    error = diagnosis.failure(tail, IN, what=what, output=OUT)
    assert isinstance(error, ServiceFault)
    assert told in error.message and doing in error.message
    assert_users_may_read(error, IN, OUT)


def test_unknown_failures_never_show_our_output_path() -> None:
    error = diagnosis.failure([f"{OUT}: Invalid argument"], IN, what="convert", output=OUT)
    assert isinstance(error, UnsupportedMedia)
    assert OUT not in error.message and "<output>: Invalid argument" in error.message
