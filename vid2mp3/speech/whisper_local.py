"""The ``Transcriber`` on this machine: faster-whisper (CTranslate2) on the CPU.

Settings chosen by measurement (``bench/transcribe.py``; figures and reasons in
``docs/speech.md``):

- int8 weights; Silero VAD on; ``BatchedInferencePipeline`` with greedy decoding (beam 1): VAD
  cuts the audio into speech windows of up to 30 s and ``batch_size`` windows are encoded and
  decoded at once.
- The usable cores run as ``workers`` model workers of one thread each, not one worker with
  every thread: Whisper's decoder does not get faster with a second thread (it got slower),
  its encoder only 1.5x. So the audio is cut at its quietest moments into one part per worker,
  and the parts are transcribed side by side, each by its own pipeline.
- The language is the first part's (detected on its first 30 s of speech, as the library
  does), and every part is decoded in it.

A window comes back as one segment of up to 30 s; ``cues`` cuts it to subtitle size.

A model is loaded once per process (``load_model``: a cache keyed by folder and settings,
behind a lock) and shared by every ``WhisperLocal`` and every thread.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vid2mp3.errors import InvalidInput, ServiceFault, UnsupportedMedia
from vid2mp3.speech import cues, models
from vid2mp3.speech.port import Progress
from vid2mp3.speech.transcript import Segment, Transcript

if TYPE_CHECKING:
    import numpy as np
    from faster_whisper import WhisperModel

log = logging.getLogger(__name__)

DEFAULT_MODEL = models.BUNDLED_SIZE
DEFAULT_COMPUTE_TYPE = "int8"
DEFAULT_BATCH_SIZE = 4
DEFAULT_BEAM_SIZE = 1
#: More parallel workers than this buy little and cost a batch of activations each.
MAX_WORKERS = 4
SAMPLE_RATE = 16_000
#: Audio shorter than this per worker is not cut: a part needs a few windows to pay its way.
MIN_PART_SECONDS = 60.0
#: A cut between parts goes at the quietest 100 ms within this many seconds of the ideal point.
CUT_SEARCH_SECONDS = 5.0
_CUT_FRAME = SAMPLE_RATE // 10


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask, which containers and taskset narrow),
    not the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class _ModelKey:
    setting: str
    models: str
    compute_type: str
    threads_per_worker: int
    workers: int


_loaded: dict[_ModelKey, WhisperModel] = {}
_loading = threading.Lock()


def load_model(
    setting: str,
    models_dir: Path,
    *,
    compute_type: str = DEFAULT_COMPUTE_TYPE,
    threads_per_worker: int = 1,
    workers: int = 1,
) -> WhisperModel:
    """The model ``setting`` names, loaded at most once per process for these settings."""
    # The bundled model is the same pinned bytes in every models folder, so one load serves
    # every VID2MP3_HOME of the process (tests make many; a second copy would cost ~300 MB).
    where = "<bundled>" if setting.strip() in ("", models.BUNDLED_SIZE) else str(models_dir)
    key = _ModelKey(setting, where, compute_type, threads_per_worker, workers)
    model = _loaded.get(key)
    if model is not None:
        return model
    with _loading:
        model = _loaded.get(key)
        if model is None:
            import faster_whisper

            path = models.resolve(setting, models_dir)
            log.info(
                "loading speech model %s (%s, %d workers x %d threads)",
                path,
                compute_type,
                workers,
                threads_per_worker,
            )
            model = faster_whisper.WhisperModel(
                str(path),
                device="cpu",
                compute_type=compute_type,
                cpu_threads=threads_per_worker,
                num_workers=workers,
                local_files_only=True,
            )
            _loaded[key] = model
    return model


def forget_models() -> None:
    """Drop every loaded model (tests; a process that wants its memory back)."""
    with _loading:
        _loaded.clear()


class WhisperLocal:
    """Transcribe with faster-whisper on this machine's CPU.

    Args:
        model: a size (``tiny``, ``base``, ``small``, ...) or a model folder; see ``models``.
        models_dir: where models are assembled and downloaded (``VID2MP3_HOME/models``).
        compute_type: CTranslate2 weight type; ``int8`` is the fastest on CPU.
        cpu_threads: threads in all; default, the usable cores.
        workers: parts transcribed side by side; default, one per thread (at most 4), each
            worker getting ``cpu_threads // workers`` threads.
        batch_size: speech windows each worker decodes at once; more uses more memory.
        beam_size: 1 is greedy decoding (see the module's docstring for why).
        word_timestamps: place subtitle cues by word times rather than by characters.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        models_dir: Path,
        compute_type: str = DEFAULT_COMPUTE_TYPE,
        cpu_threads: int | None = None,
        workers: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        beam_size: int = DEFAULT_BEAM_SIZE,
        word_timestamps: bool = False,
    ) -> None:
        self.model = model.strip() or DEFAULT_MODEL
        self.models_dir = Path(models_dir)
        self.compute_type = compute_type
        threads = cpu_threads or usable_cores()
        self.workers = max(1, workers or min(threads, MAX_WORKERS))
        self.threads_per_worker = max(1, threads // self.workers)
        self.batch_size = batch_size
        self.beam_size = beam_size
        self.word_timestamps = word_timestamps

    @property
    def label(self) -> str:
        """What made a transcript, as stored beside it."""
        name = Path(self.model).name if models.looks_like_path(self.model) else self.model
        return f"faster-whisper {name} {self.compute_type}"

    def load(self) -> WhisperModel:
        return load_model(
            self.model,
            self.models_dir,
            compute_type=self.compute_type,
            threads_per_worker=self.threads_per_worker,
            workers=self.workers,
        )

    def transcribe(
        self,
        audio_path: str | Path,
        *,
        language: str | None = None,
        progress: Progress | None = None,
    ) -> Transcript:
        model = self.load()
        forced = _check_language(language, model.supported_languages)
        audio = _decode(audio_path)
        duration = len(audio) / SAMPLE_RATE
        count = min(self.workers, max(1, math.ceil(duration / MIN_PART_SECONDS)))
        run = _Run(self, model, split_at_pauses(audio, count), forced, duration, progress)
        segments, heard = run.collect()
        return Transcript(
            language=forced or heard, duration=duration, segments=segments, model=self.label
        )


def _check_language(language: str | None, supported: list[str]) -> str | None:
    if language is None or not language.strip():
        return None
    code = language.strip().lower()
    if code not in supported:
        raise InvalidInput(
            f"language {language!r} is not one the speech model knows: use an ISO 639-1 code "
            f"such as en, de, fr, es (one of {len(supported)}), or none to detect it"
        )
    return code


def _decode(audio_path: str | Path) -> np.ndarray:
    import av
    from faster_whisper import decode_audio

    try:
        return decode_audio(str(audio_path), sampling_rate=SAMPLE_RATE)
    except av.error.FileNotFoundError:
        log.error("audio to transcribe is missing: %s", audio_path)
        raise ServiceFault("the audio to transcribe is missing") from None
    except (av.error.FFmpegError, IndexError, ValueError) as exc:
        # IndexError: PyAV found no audio stream in the file.
        raise UnsupportedMedia(f"the audio cannot be read for transcription: {exc}") from None


def split_at_pauses(audio: np.ndarray, count: int) -> list[tuple[int, np.ndarray]]:
    """``audio`` in ``count`` parts of about equal length, as (first sample, samples), each
    cut at the quietest 100 ms near its ideal point, so no word is cut in two."""
    import numpy as np

    bounds = [0]
    for k in range(1, count):
        ideal = len(audio) * k // count
        lo = max(bounds[-1] + _CUT_FRAME, ideal - int(CUT_SEARCH_SECONDS * SAMPLE_RATE))
        hi = min(len(audio) - _CUT_FRAME, ideal + int(CUT_SEARCH_SECONDS * SAMPLE_RATE))
        frames = (hi - lo) // _CUT_FRAME
        if frames < 1:
            continue
        energy = np.square(audio[lo : lo + frames * _CUT_FRAME].reshape(frames, _CUT_FRAME))
        quietest = int(np.argmin(energy.mean(axis=1)))
        bounds.append(lo + quietest * _CUT_FRAME + _CUT_FRAME // 2)
    bounds.append(len(audio))
    return [(a, audio[a:b]) for a, b in itertools.pairwise(bounds)]


class _Run:
    """One transcription: a thread per part, their windows gathered here in the caller's
    thread, which alone calls ``progress`` (callers need not be thread-safe)."""

    def __init__(
        self,
        settings: WhisperLocal,
        model: WhisperModel,
        parts: list[tuple[int, np.ndarray]],
        forced: str | None,
        duration: float,
        progress: Progress | None,
    ) -> None:
        self.settings = settings
        self.model = model
        self.parts = parts
        self.forced = forced
        self.duration = duration
        self.report = _Reporter(progress)
        self.events: queue.Queue[tuple[str, int, Any]] = queue.Queue()
        self.first_language: str | None = forced
        self.language_known = threading.Event()
        self.stop = threading.Event()

    def collect(self) -> tuple[list[Segment], str | None]:
        threads = [
            threading.Thread(target=self._work, args=(i,), name=f"transcribe-{i}", daemon=True)
            for i in range(len(self.parts))
        ]
        for thread in threads:
            thread.start()
        found: list[list[Segment]] = [[] for _ in self.parts]
        covered = [0.0] * len(self.parts)
        languages: list[str | None] = [None] * len(self.parts)
        try:
            finished = 0
            while finished < len(self.parts):
                kind, index, payload = self.events.get()
                offset, samples = self.parts[index]
                if kind == "error":
                    raise payload
                if kind == "window":
                    window = payload
                    pieces = cues.window_cues(window.start, window.end, window.text, window.words)
                    found[index].extend(cues.shifted(pieces, offset / SAMPLE_RATE))
                    covered[index] = window.end
                else:  # "done"
                    covered[index] = len(samples) / SAMPLE_RATE
                    languages[index] = payload
                    finished += 1
                if self.duration > 0:
                    self.report(sum(covered) / self.duration)
        finally:
            self.stop.set()
            self.language_known.set()
            for thread in threads:
                thread.join()
        self.report(1.0)
        heard = languages[0] or next((lang for lang in languages if lang), None)
        return [segment for part in found for segment in part], heard

    def _work(self, index: int) -> None:
        first = index == 0
        try:
            _, samples = self.parts[index]
            # Every part detects its language at once (on a core that would otherwise wait),
            # but decodes in the first part's; the generator has decoded nothing yet, so
            # asking again in another language costs only the VAD and the features.
            windows, info = self._pipeline(samples, self.forced)
            # No speech in this part: its "detected" language is a guess from silence.
            heard = info.language if info.duration_after_vad > 0 else None
            if first:
                self.first_language = self.forced or heard
                self.language_known.set()
            elif self.forced is None:
                self.language_known.wait()
                if heard and self.first_language and heard != self.first_language:
                    windows, info = self._pipeline(samples, self.first_language)
                    heard = self.first_language
            for window in windows:  # a generator: each batch is decoded as it is asked for
                if self.stop.is_set():
                    return
                self.events.put(("window", index, window))
            self.events.put(("done", index, heard))
        except BaseException as exc:  # handed to the caller's thread, which raises it
            self.events.put(("error", index, exc))
        finally:
            if first:
                self.language_known.set()  # never leave the other parts waiting

    def _pipeline(self, samples: np.ndarray, language: str | None) -> tuple[Any, Any]:
        from faster_whisper import BatchedInferencePipeline

        return BatchedInferencePipeline(self.model).transcribe(
            samples,
            language=language,
            beam_size=self.settings.beam_size,
            batch_size=self.settings.batch_size,
            vad_filter=True,
            word_timestamps=self.settings.word_timestamps,
        )


class _Reporter:
    """Pass fractions on, clamped to [0, 1] and never going back."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.last = -1.0

    def __call__(self, fraction: float) -> None:
        fraction = min(1.0, max(0.0, fraction))
        if self.progress is not None and fraction > self.last:
            self.last = fraction
            self.progress(fraction)
