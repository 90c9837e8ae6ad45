"""Benchmark: local transcription (``vid2mp3.speech``) against faster-whisper's defaults and a
bare ffmpeg MP3 conversion of the same audio.

Makes a 5-minute English speech file with espeak-ng from ``SCRIPT`` (in a temp folder, at bench
time), converts it to MP3 with ffmpeg (the conversion's cost, and the input every transcriber
gets, as in the pipeline), then transcribes it with the ``base`` model, int8, one thread per
usable core, each configuration in a fresh process:

- ``defaults``: the library's defaults (``WhisperModel.transcribe``: beam 5, VAD on);
- ``greedy``: the same, sequential, with beam 1;
- ``batched``: the library's ``BatchedInferencePipeline``, batch 8, beam 1, VAD, one worker
  with every core's thread;
- ``ours``: ``WhisperLocal`` as the pipeline runs it (batched, greedy, VAD, one worker of one
  thread per core, each transcribing a part of the audio);
- ``ours+words``: the same with word timestamps for the cues.

For each: realtime factor (audio seconds / wall seconds, model load included, and the whole
process with Python's start and imports), word error rate against the script (jiwer, after
lower-casing and dropping punctuation), peak RSS. Medians over ``--runs``, interleaved so drift
in machine load hits all alike. Targets for ``ours`` on 2 cores: RTF >= 20x, WER <= 10 %,
peak RSS < 1.5 GB.

    ./run bench              # or: .venv/bin/python bench/transcribe.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from measuring import measure

from vid2mp3 import media
from vid2mp3.speech.whisper_local import usable_cores

CONFIGS = ("defaults", "greedy", "batched", "ours", "ours+words")
TARGET_RTF = 20.0
TARGET_WER = 0.10
TARGET_RSS = 1.5 * 1024**3

# Plain prose on everyday topics, no digits or names whose spelling a listener could not know,
# so the error rate measures hearing, not spelling conventions.
SCRIPT = """\
The river that runs through our town is wide and slow in the summer. Children swim near the old
stone bridge, and fishermen sit on the bank from early morning until the evening light turns
gold. In the spring the water rises quickly, and the farmers who live along the valley watch the
sky with care.

Every Saturday there is a market in the main square. People come from the villages in the hills
to sell apples, cheese, honey and fresh bread. The baker opens his shop before sunrise, and the
smell of warm loaves fills the narrow streets. He says that good bread needs only flour, water,
salt and patience.

The library stands at the corner of the square. It was built more than a century ago by a
teacher who believed that every family should have books at home. Today it lends music, films
and games as well as novels and maps. On rainy afternoons the reading room is full of students
preparing for their examinations.

The history of the bicycle is a story of small improvements. The first machines had no pedals at
all, and riders pushed themselves along with their feet. Later designs placed the pedals on a
huge front wheel, which made the bicycle fast but dangerous. The safety bicycle, with two wheels
of equal size and a chain that drives the rear wheel, changed everything. Suddenly ordinary
workers could travel to distant factories, and young people could explore the countryside on
their own.

Weather forecasts have become far more accurate in recent decades. Satellites watch the clouds
from space, and powerful computers calculate how the air will move over the coming days. Even
so, a sudden storm can still surprise a sailor far from the coast. Experienced captains listen
to the radio, but they also trust their eyes and the feeling of the wind on their faces.

Learning a new language takes time and courage. At first every sentence feels like a puzzle, and
simple conversations leave the learner tired. Slowly the words begin to connect, and one morning
the student realises that she understood the news without translating it in her head. Teachers
often say that mistakes are not failures but steps on the way to fluency.

The garden behind the house was planted by my grandmother. She grew tomatoes, beans, potatoes
and a row of tall sunflowers along the fence. In the autumn she dried herbs in the kitchen and
stored the seeds in paper envelopes for the next year. She told us that a garden teaches us to
wait, because nothing grows faster when you shout at it.

Trains connect our town with the capital in about two hours. The station was rebuilt last year
with a glass roof and wide platforms. Commuters read newspapers or sleep with their heads
against the window, while tourists point at the lakes and forests passing outside. The night
train to the mountains is popular with skiers in the winter and with hikers in the summer.

A good meal does not have to be complicated. Fresh vegetables, a little olive oil, garlic and a
handful of herbs can turn a simple plate of pasta into a feast. My friend who works as a cook
says that the secret is to taste the food often and to adjust the salt at the end. He also
insists that friends at the table matter more than the recipe.

Music has always been part of life in the valley. In the summer evenings a small orchestra plays
in the park, and families bring blankets and baskets of food. The conductor is a retired doctor
who learned the violin as a boy. He chooses cheerful pieces that everyone can enjoy, and at the
end of each concert the children are invited to dance in front of the stage.

The museum on the hill keeps tools, clothes and photographs from the old mining days. Visitors
can walk through a short tunnel and see how the miners worked by the light of small lamps. The
guide explains that the work was hard and dangerous, and that the whole town depended on the
mine for many years. When the mine closed, people opened workshops, shops and small hotels
instead.

Sleep is one of the most important habits for health. Doctors recommend going to bed at the same
time every night and keeping the bedroom cool and dark. Bright screens late in the evening can
make it harder to fall asleep. A short walk after dinner, a warm drink and a quiet book are
often better than any medicine.

Photography changed the way families remember their past. Old albums are full of faded pictures
of weddings, holidays and birthdays, each one carefully labelled by hand. Today almost everyone
carries a camera in a pocket, and thousands of images are taken every year. Yet many people
admit that they rarely look at them again. Some have started printing their favourite
photographs once more, because a picture on the wall is seen every day.

The town council meets on the first Monday of every month. Anyone may attend and ask questions
about roads, schools or the new swimming pool. The meetings are sometimes long and occasionally
heated, but most residents agree that it is better to argue in public than to complain in
private. Last winter the council decided to plant young trees along the river path, and
volunteers carried the saplings from the nursery by hand.

At the end of the day the lights come on along the river, and the bridge is reflected in the
dark water. The market traders pack their tables into their vans, the library closes its heavy
doors, and the last train leaves the station. Tomorrow the town will wake again, the baker will
light his oven, and the river will carry on towards the sea.
"""


def make_speech(work: Path, ffmpeg: str) -> tuple[Path, Path]:
    """The script spoken (WAV), and that WAV as the MP3 every transcriber is given."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise SystemExit("espeak-ng is needed: apt-get install espeak-ng")
    text = work / "script.txt"
    text.write_text(SCRIPT)
    wav = work / "speech.wav"
    subprocess.run([espeak, "-v", "en-us", "-f", str(text), "-w", str(wav)], check=True)
    return wav, work / "speech.mp3"


def convert(ffmpeg: str, wav: Path, mp3: Path) -> tuple[float, int]:
    return measure([ffmpeg, "-nostdin", "-v", "error", "-y", "-i", str(wav),
                    "-c:a", "libmp3lame", "-b:a", "128k", str(mp3)])  # fmt: skip


def transcribe(config: str, mp3: Path, models: Path, out: Path) -> dict[str, float | str]:
    """One configuration in a fresh process (so each pays its own model load and has its
    own peak RSS); what the worker measured, plus the whole process's wall time."""
    argv = [sys.executable, __file__, "--worker", config, str(mp3), str(models), str(out)]
    wall, _ = measure(argv)
    result = json.loads(out.read_text())
    result["process_wall"] = wall
    return result


def worker(config: str, mp3: Path, models: Path, out: Path) -> None:
    """Runs in the child: load, transcribe, write the text and the figures."""
    start = time.perf_counter()
    if config in ("ours", "ours+words"):
        from vid2mp3.speech.whisper_local import WhisperLocal

        ours = WhisperLocal("base", models_dir=models, word_timestamps=config == "ours+words")
        transcript = ours.transcribe(mp3)
        text, language, duration = transcript.text, transcript.language, transcript.duration
    else:
        from faster_whisper import WhisperModel

        from vid2mp3.speech import models as speech_models

        path = speech_models.resolve("base", models)
        model = WhisperModel(
            str(path), device="cpu", compute_type="int8", cpu_threads=usable_cores()
        )
        if config == "batched":
            from faster_whisper import BatchedInferencePipeline

            batched = BatchedInferencePipeline(model)
            segments, info = batched.transcribe(str(mp3), beam_size=1, batch_size=8)
        else:
            beam = 5 if config == "defaults" else 1
            segments, info = model.transcribe(str(mp3), beam_size=beam, vad_filter=True)
        text = " ".join(s.text.strip() for s in segments)
        language, duration = info.language, info.duration
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    figures = {
        "text": text,
        "language": language,
        "duration": duration,
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss": usage.ru_maxrss * 1024,  # KiB on Linux
    }
    out.write_text(json.dumps(figures))


def word_error_rate(reference: str, hypothesis: str) -> float:
    import jiwer

    norm = jiwer.Compose([
        jiwer.ToLowerCase(), jiwer.RemoveWhiteSpace(replace_by_space=True),
        jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(),
        jiwer.Strip(), jiwer.ReduceToListOfListOfWords(),
    ])  # fmt: skip
    return jiwer.wer(reference, hypothesis, reference_transform=norm, hypothesis_transform=norm)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        config, mp3, models, out = sys.argv[2:6]
        worker(config, Path(mp3), Path(models), Path(out))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated")
    parser.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "vid2mp3-bench"))
    args = parser.parse_args()
    configs = [c for c in args.configs.split(",") if c]
    unknown = set(configs) - set(CONFIGS)
    if unknown:
        raise SystemExit(f"unknown configs {sorted(unknown)}: choose from {', '.join(CONFIGS)}")

    work = Path(tempfile.mkdtemp(prefix="transcribe-", dir=_made(Path(args.workdir))))
    models = Path(args.workdir) / "models"  # kept between runs: assembling is a first-use cost
    ffmpeg = media.find_ffmpeg(os.environ.get("FFMPEG_BINARY", ""))
    try:
        wav, mp3 = make_speech(work, ffmpeg)
        convert(ffmpeg, wav, mp3)
        transcribe("ours", mp3, models, work / "warm.json")  # assembles the model once; not counted
        results: dict[str, list[dict[str, float | str]]] = {c: [] for c in [*configs, "ffmpeg"]}
        for _ in range(args.runs):
            wall, rss = convert(ffmpeg, wav, mp3)
            results["ffmpeg"].append({"wall": wall, "process_wall": wall, "rss": rss})
            for config in configs:
                results[config].append(transcribe(config, mp3, models, work / f"{config}.json"))
        report(results, configs)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _made(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def report(results: dict[str, list[dict[str, float | str]]], configs: list[str]) -> None:
    def med(name: str, key: str) -> float:
        return statistics.median(float(r[key]) for r in results[name])

    def wer(name: str) -> float:
        return statistics.median(word_error_rate(SCRIPT, str(r["text"])) for r in results[name])

    duration = float(results[configs[0]][0]["duration"]) if configs else 0.0
    mb = 1024 * 1024
    print(
        f"audio: {duration:.1f} s of espeak-ng English; base model, int8, {usable_cores()} "
        f"cores; {len(results['ffmpeg'])} runs, medians; load average now "
        f"{os.getloadavg()[0]:.1f} (CPU s is the process's own: a busy machine shows in wall "
        "time far more than in it)"
    )
    print(
        f"{'':12} {'wall s':>8} {'RTF':>8} {'process RTF':>12} {'CPU s':>7} {'WER':>7} "
        f"{'peak RSS':>10}  language"
    )
    wall = med("ffmpeg", "wall")
    print(
        f"{'ffmpeg mp3':12} {wall:8.2f} {duration / wall:7.1f}x {'':>12} {'':>7} {'':>7} "
        f"{med('ffmpeg', 'rss') / mb:7.0f} MB"
    )
    for config in configs:
        wall = med(config, "wall")
        print(
            f"{config:12} {wall:8.2f} {duration / wall:7.1f}x "
            f"{duration / med(config, 'process_wall'):11.1f}x {med(config, 'cpu'):7.1f} "
            f"{wer(config) * 100:6.1f}% {med(config, 'rss') / mb:7.0f} MB  "
            f"{results[config][-1]['language']}"
        )
    if "ours" not in configs:
        return
    rtf, error, rss = duration / med("ours", "wall"), wer("ours"), med("ours", "rss")
    verdict = [
        f"RTF {rtf:.1f}x {'>=' if rtf >= TARGET_RTF else '<'} {TARGET_RTF:.0f}x",
        f"WER {error * 100:.1f}% {'<=' if error <= TARGET_WER else '>'} {TARGET_WER * 100:.0f}%",
        f"peak RSS {rss / mb:.0f} MB {'<' if rss < TARGET_RSS else '>='} {TARGET_RSS / mb:.0f} MB",
    ]
    print("ours against the targets: " + ", ".join(verdict))
    if "defaults" in configs:
        print(
            f"ours is {med('defaults', 'wall') / med('ours', 'wall'):.1f}x as fast as the "
            f"library's defaults and takes {med('ours', 'wall') / med('ffmpeg', 'wall'):.1f}x "
            "the time of the MP3 conversion"
        )


if __name__ == "__main__":
    main()
