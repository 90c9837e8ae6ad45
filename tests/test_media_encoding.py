"""The one bitrate/quality rule (vid2mp3.media.encoding), DEFAULT_BITRATE, and their use."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from mutagen.mp3 import MP3, BitrateMode

from tests.fixtures.media import MakeVideo
from vid2mp3 import media
from vid2mp3.config import Config
from vid2mp3.errors import ConfigError, InvalidInput

needs_ffmpeg = pytest.mark.skipif(
    shutil.which("ffprobe") is None or shutil.which("ffmpeg") is None,
    reason="needs system ffmpeg and ffprobe",
)

STANDARD = "8k, 16k, 24k, 32k, 40k, 48k, 56k, 64k, 80k, 96k, 112k, 128k, 144k, 160k, 192k, 224k, 256k, 320k"


def test_the_bitrate_table() -> None:
    # Written out, not derived: the table is the contract with requests and settings.
    table = (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 192, 224, 256, 320)
    assert table == media.BITRATES
    assert media.BITRATE_CHOICES == STANDARD
    assert media.DEFAULT_BITRATE == "192k"
    assert media.parse_bitrate(media.DEFAULT_BITRATE) == media.DEFAULT_BITRATE


@pytest.mark.parametrize(
    ("given", "normalized"),
    [
        ("128k", "128k"),
        ("128K", "128k"),
        ("128", "128k"),
        (128, "128k"),
        ("8k", "8k"),
        ("144", "144k"),
        ("320k", "320k"),
        ("192", "192k"),
    ],
)
def test_parse_bitrate_accepts(given: object, normalized: str) -> None:
    assert media.parse_bitrate(given) == normalized


@pytest.mark.parametrize(
    "given",
    [
        "100k",  # between standard rates: LAME would quietly write another
        "999k",
        "1000k",
        "0k",
        "0128k",
        "4k",
        "128kbps",
        "128 k",
        " 128k",
        "128k\n",
        "k",
        "",
        "64k; rm",
        "-128k",
        "128.0",
        "1\uff12\uff18k",  # fullwidth digits, which a bare \d would match
        True,
        128.0,
        None,
        b"128k",
        ["128k"],
        100,
    ],
)
def test_parse_bitrate_refuses_and_lists_the_values(given: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        media.parse_bitrate(given)
    assert caught.value.message == f"bitrate must be one of {STANDARD}"


@pytest.mark.parametrize("good", [0, 5, 9])
def test_check_quality_accepts(good: int) -> None:
    assert media.check_quality(good) == good


@pytest.mark.parametrize("bad", [-1, 10, True, False, 5.0, "5", None])
def test_check_quality_refuses(bad: object) -> None:
    with pytest.raises(InvalidInput, match=r"0 \(best\) to 9"):
        media.check_quality(bad)


# --- DEFAULT_BITRATE --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalized"), [("128", "128k"), ("128K", "128k"), (" 96k ", "96k"), ("", "192k")]
)
def test_config_normalizes_default_bitrate(tmp_path: Path, raw: str, normalized: str) -> None:
    cfg = Config.from_env({"VID2MP3_HOME": str(tmp_path), "DEFAULT_BITRATE": raw})
    assert cfg.default_bitrate == normalized
    assert Config.from_env({"VID2MP3_HOME": str(tmp_path)}).default_bitrate == "192k"


@pytest.mark.parametrize("raw", ["999k", "100k", "loud", "128kbps"])
def test_config_refuses_a_bad_default_bitrate(tmp_path: Path, raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Config.from_env({"VID2MP3_HOME": str(tmp_path), "DEFAULT_BITRATE": raw})
    assert caught.value.message == (
        f"DEFAULT_BITRATE={raw!r} is not an MP3 bitrate; use one of {STANDARD}"
    )


# --- extract_audio honours it -----------------------------------------------------------------


@needs_ffmpeg
def test_default_bitrate_is_honoured(make_video: MakeVideo, tmp_path: Path) -> None:
    dest = tmp_path / "default.mp3"
    result = media.extract_audio(
        str(make_video("mp4")), str(dest), title="t", default_bitrate="128k"
    )
    assert not result.copied
    assert result.bitrate == 128_000
    info = MP3(dest).info
    assert info.bitrate == pytest.approx(128_000, abs=10)
    assert info.bitrate_mode is not BitrateMode.VBR


@needs_ffmpeg
def test_asked_for_encoding_wins_over_the_default(make_video: MakeVideo, tmp_path: Path) -> None:
    source = str(make_video("mp4"))
    asked = media.extract_audio(
        source, str(tmp_path / "a.mp3"), title="t", bitrate="96", default_bitrate="128k"
    )
    vbr = media.extract_audio(
        source, str(tmp_path / "v.mp3"), title="t", quality=6, default_bitrate="320k"
    )
    assert asked.bitrate == 96_000  # "96" normalized to the "96k" ffmpeg is given
    assert MP3(tmp_path / "a.mp3").info.bitrate == pytest.approx(96_000, abs=10)
    assert MP3(tmp_path / "v.mp3").info.bitrate_mode is BitrateMode.VBR
    assert vbr.bitrate < 128_000


@needs_ffmpeg
def test_mp3_source_is_still_copied_whatever_the_default(
    make_video: MakeVideo, tmp_path: Path
) -> None:
    source = str(make_video("avi_mp3"))
    copied = media.extract_audio(source, str(tmp_path / "c.mp3"), title="t", default_bitrate="64k")
    encoded = media.extract_audio(
        source, str(tmp_path / "e.mp3"), title="t", copy_mp3=False, default_bitrate="64k"
    )
    assert copied.copied and copied.bitrate == 96_000  # the fixture's own 96k
    assert not encoded.copied and encoded.bitrate == 64_000


@needs_ffmpeg
@pytest.mark.parametrize("bad", ["999k", "100k", "128kbps"])
def test_bad_default_bitrate_never_reaches_ffmpeg(
    bad: str, make_video: MakeVideo, tmp_path: Path
) -> None:
    dest = tmp_path / "x.mp3"
    with pytest.raises(InvalidInput, match="bitrate must be one of"):
        media.extract_audio(str(make_video("mp4")), str(dest), title="t", default_bitrate=bad)
    assert not dest.exists()
