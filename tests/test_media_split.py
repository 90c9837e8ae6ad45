"""media.split_for_upload against the real ffmpeg: pieces within a size limit, each a valid MP3.

Reference durations come from mutagen and ffprobe, not from the module under test.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from mutagen.mp3 import MP3

from vid2mp3 import media
from vid2mp3.errors import TransientError, UnsupportedMedia
from vid2mp3.media import process, split
from vid2mp3.media.process import Child

FFMPEG = shutil.which("ffmpeg")
FFPROBE = shutil.which("ffprobe")
pytestmark = pytest.mark.skipif(
    FFPROBE is None or FFMPEG is None, reason="needs system ffmpeg and ffprobe"
)


@pytest.fixture(scope="session")
def tone_mp3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 s of a 440 Hz tone as a 128 kbit/s CBR MP3 (about 960 kB); shared, do not modify."""
    assert FFMPEG is not None
    out = tmp_path_factory.mktemp("split-source") / "tone.mp3"
    tone = "sine=frequency=440:sample_rate=44100:duration=60"
    subprocess.run(
        [
            *(FFMPEG, "-nostdin", "-v", "error", "-f", "lavfi", "-i", tone),
            *("-c:a", "libmp3lame", "-b:a", "128k", str(out)),
        ],
        check=True,
        capture_output=True,
    )
    return out


@pytest.fixture
def fresh_mp3(tone_mp3: Path, tmp_path: Path) -> Path:
    """A private copy, since pieces are written into a folder next to the MP3."""
    copy = tmp_path / "talk.mp3"
    shutil.copyfile(tone_mp3, copy)
    return copy


def ffprobe_format(path: Path) -> dict[str, Any]:
    assert FFPROBE is not None
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-print_format", "json", "-show_format", "-show_streams", path],
        capture_output=True,
        check=True,
    ).stdout
    return json.loads(out)


def test_a_file_that_fits_is_returned_as_is(fresh_mp3: Path) -> None:
    size = fresh_mp3.stat().st_size
    assert media.split_for_upload(fresh_mp3, None, limit=size) == [fresh_mp3]
    assert media.split_for_upload(fresh_mp3, 60.0, limit=size + 1) == [fresh_mp3]
    assert not (fresh_mp3.parent / "segments").exists()


@pytest.mark.parametrize("duration", [60.0, None], ids=["known", "probed"])
def test_splits_into_valid_pieces_within_the_limit(fresh_mp3: Path, duration: float | None) -> None:
    limit = 300_000
    total = MP3(fresh_mp3).info.length

    pieces = media.split_for_upload(fresh_mp3, duration, limit=limit)

    assert len(pieces) >= 3, pieces
    assert pieces == sorted(pieces)
    assert [p.parent for p in pieces] == [fresh_mp3.parent / "segments"] * len(pieces)
    lengths = []
    for piece in pieces:
        assert 0 < piece.stat().st_size <= limit
        report = ffprobe_format(piece)
        assert report["format"]["format_name"] == "mp3"
        assert [s["codec_name"] for s in report["streams"]] == ["mp3"]
        info = MP3(piece).info
        assert info.bitrate == 128_000  # frames copied, not re-encoded
        lengths.append(info.length)
    assert all(length > 1.0 for length in lengths)
    assert sum(lengths) == pytest.approx(total, abs=0.2)


def test_the_split_is_locked_down(fresh_mp3: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[list[str], dict[str, Any]]] = []
    real_popen = subprocess.Popen

    def spy(argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        seen.append((list(argv), kwargs))
        return real_popen(argv, **kwargs)

    monkeypatch.setattr(process.subprocess, "Popen", spy)
    media.split_for_upload(fresh_mp3, 60.0, limit=300_000)

    ((argv, kwargs),) = seen  # the duration was given: no probe, one ffmpeg
    assert not kwargs.get("shell") and kwargs.get("stdin") == subprocess.DEVNULL
    assert "-nostdin" in argv
    i = argv.index("-i")
    assert argv[argv.index("-protocol_whitelist") + 1] == "file,pipe"
    assert argv.index("-protocol_whitelist") < i and argv[i - 2 : i] == ["-f", "mp3"]
    assert argv[i + 1] == str(fresh_mp3.absolute())
    assert argv[argv.index("-c") + 1] == "copy"


def test_something_that_is_not_an_mp3_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"this is no audio\n" * 2000)
    with pytest.raises(UnsupportedMedia):
        media.split_for_upload(junk, None, limit=1000)
    with pytest.raises(UnsupportedMedia) as caught:
        media.split_for_upload(junk, 60.0, limit=1000)
    assert str(tmp_path) not in caught.value.message
    assert not (tmp_path / "segments").exists()


def test_pieces_over_the_limit_are_refused(fresh_mp3: Path) -> None:
    # A wildly wrong duration makes one-second pieces of ~16 kB: over a 10 kB limit.
    with pytest.raises(UnsupportedMedia, match="at most 10000 bytes"):
        media.split_for_upload(fresh_mp3, 0.001, limit=10_000)
    assert not (fresh_mp3.parent / "segments").exists()


def test_a_split_that_takes_too_long_is_transient(
    fresh_mp3: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    children: list[Child] = []
    real_child = split.Child

    def recording(*args: Any, **kwargs: Any) -> Child:
        child = real_child(*args, **kwargs)
        children.append(child)
        return child

    monkeypatch.setattr(split, "Child", recording)
    monkeypatch.setattr(split, "_SPLIT_TIMEOUT", 1e-6)
    with pytest.raises(TransientError, match="did not finish within") as caught:
        media.split_for_upload(fresh_mp3, 60.0, limit=300_000)
    assert type(caught.value) is TransientError  # not WorkInterrupted: nobody stopped it
    assert not (fresh_mp3.parent / "segments").exists()
    (child,) = children
    assert child.proc.returncode is not None  # killed and reaped, not left running


@pytest.mark.parametrize("limit", [0, -1])
def test_limit_must_be_positive(fresh_mp3: Path, limit: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        media.split_for_upload(fresh_mp3, 60.0, limit=limit)


def test_mp3_named_like_an_option(fresh_mp3: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    odd = fresh_mp3.rename(fresh_mp3.with_name("-i.mp3"))
    monkeypatch.chdir(odd.parent)
    pieces = media.split_for_upload(Path("-i.mp3"), 60.0, limit=300_000)
    assert len(pieces) >= 3
    assert all(p.is_absolute() and p.stat().st_size <= 300_000 for p in pieces)
