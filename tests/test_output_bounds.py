"""Output bounds (issue 10, point 4): MAX_DURATION_SECONDS at probe time, ffmpeg's ``-t`` past
it, and an MP3 size bound from the stated duration times the encoding's peak bitrate (``-fs``).

The media is FLAC of silence from lavfi ``anullsrc`` (the report's case: a 606 KB FLAC of an hour
of silence became a 144 MB MP3), a few seconds long against a limit of a few seconds. A "lying"
FLAC has its STREAMINFO sample count rewritten so ffprobe states less than the frames hold; ffmpeg
decodes the frames regardless, which is what a hostile container does.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.conftest import Api, make_config
from vid2mp3 import bootstrap, media
from vid2mp3.bus.memory import MemoryBus
from vid2mp3.errors import MediaTooLong
from vid2mp3.media import encoding, extract, process
from vid2mp3.media.inputs import input_args
from vid2mp3.services import Services

LIMIT_SECONDS = 3
RATE = 44100


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    """Embedded services with MAX_DURATION_SECONDS=3 (overrides conftest's ``services``)."""
    config = make_config(tmp_path / "home", MAX_DURATION_SECONDS=str(LIMIT_SECONDS))
    svc = bootstrap.build(config)
    bootstrap.install(svc)
    yield svc
    bootstrap.install(None)
    svc.db.close()


def silence_flac(path: Path, seconds: float, *, claims: float | None = None) -> Path:
    """``seconds`` of mono silence as FLAC; with ``claims``, STREAMINFO states that instead."""
    argv = [media.find_ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    argv += ["-f", "lavfi", "-i", f"anullsrc=r={RATE}:cl=mono", "-t", f"{seconds}"]
    subprocess.run([*argv, "-c:a", "flac", str(path)], check=True, capture_output=True)
    if claims is not None:
        data = bytearray(path.read_bytes())
        # "fLaC", a 4-byte block header, then STREAMINFO: its bytes 10-17 pack the sample rate
        # (20 bits), channels (3), bits per sample (5) and the total sample count (36).
        assert data[:4] == b"fLaC" and data[4] & 0x7F == 0, "STREAMINFO must come first"
        packed = int.from_bytes(data[18:26], "big")
        packed = (packed & ~((1 << 36) - 1)) | round(claims * RATE)
        data[18:26] = packed.to_bytes(8, "big")
        path.write_bytes(data)
    return path


def convert(api: Api, bus: MemoryBus, video: Path) -> dict[str, object]:
    token = api.token("ada@example.com")
    job_id = api.upload(token, video)
    bus.run_until_idle()
    return api.job(token, job_id)


def test_silence_longer_than_the_limit_fails_naming_both(
    api: Api, bus: MemoryBus, tmp_path: Path
) -> None:
    video = silence_flac(tmp_path / "silence.flac", 6)
    assert media.probe(str(video)).duration == pytest.approx(6.0)

    job = convert(api, bus, video)

    assert job["state"] == "failed"
    assert job["mp3"] is None
    assert job["error"] == (
        "the audio is 6.0 s long; files up to 3.0 s are converted; upload a shorter file"
    )
    assert not bus.dead_letters  # the file's fault: failed at once, never retried


def test_a_file_just_under_the_limit_converts(api: Api, bus: MemoryBus, tmp_path: Path) -> None:
    video = silence_flac(tmp_path / "silence.flac", 2.9)

    job = convert(api, bus, video)

    assert job["state"] == "completed", job
    assert job["mp3"]["duration"] == pytest.approx(2.9, abs=0.1)  # type: ignore[index]


def test_a_lying_duration_is_cut_by_t_and_fails(api: Api, bus: MemoryBus, tmp_path: Path) -> None:
    # States 2.9 s (under the limit, and an MP3 bound above 4 s of audio), holds 30 s: only
    # ffmpeg's -t stops it, 1 s past the limit, which shows in the written MP3.
    video = silence_flac(tmp_path / "liar.flac", 30, claims=2.9)
    assert media.probe(str(video)).duration == pytest.approx(2.9)

    job = convert(api, bus, video)

    assert job["state"] == "failed"
    assert job["mp3"] is None
    assert job["error"] == (
        "the audio runs past 3.0 s, the longest converted, though the file said 2.9 s "
        "(converting stopped at 4.0 s); upload a shorter file"
    )


class _SizeWhenDone(process.Child):
    """The real child runner, noting how large ffmpeg's output was when it exited (before
    ``extract_audio`` removes a failed MP3)."""

    written: ClassVar[list[int]] = []

    def wait(self, timeout: float | None = None) -> int:
        code = super().wait(timeout)
        output = Path(str(self.proc.args[-1]))  # type: ignore[index]
        if output.suffix == ".mp3":
            self.written.append(output.stat().st_size)
        return code


def test_audio_far_past_the_stated_duration_hits_the_size_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # States 1 s, holds 60 s, under a limit of 120 s, so -t never comes near: ffmpeg itself must
    # stop writing at the bound (-fs), where 60 s at 192k would be 1.44 MB.
    video = silence_flac(tmp_path / "liar.flac", 60, claims=1)
    dest = tmp_path / "out.mp3"
    monkeypatch.setattr(extract, "Child", _SizeWhenDone)
    _SizeWhenDone.written.clear()

    with pytest.raises(MediaTooLong) as caught:
        media.extract_audio(str(video), str(dest), title="t", max_duration=120)

    bound = encoding.output_size_limit(1.0, encoding.peak_kbps(bitrate="192k", quality=None))
    assert len(_SizeWhenDone.written) == 1
    # -fs lets the packet that crosses the limit through, no more.
    assert bound <= _SizeWhenDone.written[0] < bound + 16 * 1024
    assert str(caught.value) == (
        "the audio runs far longer than the file says (1.0 s): the MP3 passed "
        f"{bound / 1_000_000:.1f} MB, the most that length needs; the file may be damaged; "
        "save it again and upload the new file"
    )
    assert not dest.exists()


@pytest.mark.parametrize(
    ("options", "seconds"),
    [
        ({"quality": 0}, 5.0),  # VBR at its best quality: frames near the 320k peak
        ({"bitrate": "320k"}, 5.0),
        ({"bitrate": "8k"}, 5.0),  # LAME raises 8k to 32k at 44.1 kHz
        ({"bitrate": "128k"}, 0.5),  # headers weigh most in a short file
    ],
)
def test_honest_noise_stays_under_its_bound(
    tmp_path: Path, options: dict[str, Any], seconds: float
) -> None:
    # White noise is the hardest audio to compress: if any encoding could outgrow the rule's
    # peak bitrate or margin, this would.
    source = tmp_path / "noise.wav"
    argv = [media.find_ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f"]
    argv += ["lavfi", "-i", f"anoisesrc=r={RATE}:a=1:d={seconds}", "-ac", "2", str(source)]
    subprocess.run(argv, check=True, capture_output=True)
    out = tmp_path / "out.mp3"

    result = media.extract_audio(str(source), str(out), title="n" * 200, **options)

    kbps = encoding.peak_kbps(bitrate=options.get("bitrate"), quality=options.get("quality"))
    assert result.size < encoding.output_size_limit(seconds, kbps)
    # ... and the bound is not loose by more than its allowance: at most ~1.1x plus 2 s.
    assert encoding.output_size_limit(seconds, kbps) < 2 * result.size + 300_000


def test_the_peak_bitrate_rule() -> None:
    assert encoding.peak_kbps(bitrate=None, quality=9) == 320  # VBR frames reach 320 at any -V
    assert encoding.peak_kbps(bitrate="128k", quality=None) == 128
    assert encoding.peak_kbps(bitrate="8k", quality=None) == 32
    # Copied MP3 frames: the standard peak, or a free-format stream's own rate up to 640.
    assert encoding.peak_kbps(bitrate=None, quality=None, copied_bps=None) == 320
    assert encoding.peak_kbps(bitrate=None, quality=None, copied_bps=128_000) == 320
    assert encoding.peak_kbps(bitrate=None, quality=None, copied_bps=480_000) == 480
    assert encoding.peak_kbps(bitrate=None, quality=None, copied_bps=10**9) == 640
    # The report's hour of silence at 192k: 86.4 MB of frames; the bound allows ~95 MB.
    assert 86_400_000 < encoding.output_size_limit(3600, 192) < 96_000_000


def test_the_default_limit_is_twelve_hours(tmp_path: Path) -> None:
    assert make_config(tmp_path).max_duration_seconds == 12 * 3600 == 43200
    assert encoding.MAX_DURATION_SECONDS == 43200


def test_request_headers_cannot_smuggle_lines() -> None:
    args = input_args("http://127.0.0.1:9/v", True, {"If-Match": '"abc"'})
    assert args[args.index("-headers") + 1] == 'If-Match: "abc"\r\n'
    for bad in ({"If-Match": '"a"\r\nX-Evil: 1'}, {"X\nY": "1"}, {"A:B": "1"}):
        with pytest.raises(ValueError):
            input_args("http://127.0.0.1:9/v", True, bad)
    with pytest.raises(ValueError):
        input_args("/tmp/v.mp4", False, {"If-Match": '"abc"'})
