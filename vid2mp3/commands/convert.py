"""``vid2mp3 convert``: one video through the same functions production runs, on this machine."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import mimetypes
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from vid2mp3 import bootstrap, display, jobs, logs, shutdown, users
from vid2mp3.bus.memory import MemoryBus
from vid2mp3.config import Config
from vid2mp3.errors import CommandError, InvalidInput
from vid2mp3.model import FINAL_STATES, JobState
from vid2mp3.runtime import functions
from vid2mp3.speech import formats, languages

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2
#: How long Ctrl-C waits for the delivery thread to unwind (it removes its temp folder).
INTERRUPT_WAIT_SECONDS = 5.0
INTERRUPTED = "interrupted"


def _call(app: Any, method: str, path: str, expected: int, **kwargs: Any) -> Any:
    response = app.test_client().open(path, method=method, **kwargs)
    if response.status_code != expected:
        body = response.get_json(silent=True) or {}
        raise CommandError(body.get("error") or f"{method} {path} answered {response.status_code}")
    return response


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def transcript_formats(setting: str | None) -> tuple[str, ...]:
    """The formats ``--transcript`` names (none for ``None``), each known, in its order."""
    if setting is None:
        return ()
    names = tuple(dict.fromkeys(n.strip().lower() for n in setting.split(",") if n.strip()))
    unknown = [n for n in names if n not in formats.FORMATS]
    if unknown:
        raise CommandError(
            f"--transcript: {', '.join(unknown)} is not a format; use some of "
            f"{', '.join(formats.FORMATS)}"
        )
    return names


def target_path(source: Path, output: str | None) -> Path:
    """Where the MP3 goes: ``-o`` as a file, or inside ``-o`` when it is (or ends like) a folder."""
    if not output:
        return source.with_suffix(".mp3")
    named = Path(output)
    if output.endswith(("/", os.sep)) or named.is_dir():
        return named / source.with_suffix(".mp3").name
    return named


def _check_target(out: Path, source: Path, *, force: bool) -> None:
    # Everything here is cheap and fails before the conversion, so a mistake costs no minutes.
    if out.resolve() == source.resolve():
        raise CommandError(f"the MP3 would overwrite {source}; choose another name with -o")
    if out.is_dir():
        raise CommandError(f"{out} is a folder; name the MP3 with -o FOLDER/NAME.mp3")
    if (out.is_symlink() or out.exists()) and not force:
        raise CommandError(f"{out} exists; pass --force to overwrite it")
    folder = out.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandError(f"could not create the folder {folder}: {_reason(exc)}") from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CommandError(f"could not write {out}: {folder} is not writable")


def run_convert(
    video: str,
    *,
    output: str | None = None,
    bitrate: str | None = None,
    quality: int | None = None,
    progress: bool = True,
    force: bool = False,
    transcript: str | None = "txt,srt",
    language: str | None = None,
) -> int:
    # A previous run in this process (tests, an embedding program) may have asked for a stop.
    shutdown.reset()
    source = Path(video)
    if not source.is_file():
        raise CommandError(f"{video}: no such file")
    if source.stat().st_size == 0:
        raise CommandError(f"{video}: the file is empty")
    out = target_path(source, output)
    _check_target(out, source, force=force)
    wanted = transcript_formats(transcript)
    for fmt in wanted:
        _check_target(out.with_suffix(f".{fmt}"), source, force=force)
    try:
        languages.check(language)
    except InvalidInput as exc:
        raise CommandError(f"--language: {exc.message}") from None

    logs.configure(os.environ.get("VID2MP3_LOG_LEVEL", "ERROR"))
    config = Config.from_env()
    if transcript is None:
        config = dataclasses.replace(config, transcriber="off")
    services = bootstrap.build(config)
    bootstrap.install(services)
    run = _Run(services)
    try:
        return run.convert(
            source,
            out,
            bitrate=bitrate,
            quality=quality,
            show=progress,
            transcripts=wanted,
            language=language,
        )
    except KeyboardInterrupt:
        run.interrupted()
        raise  # cli.main turns it into one line and exit 130
    except BaseException:
        # Whatever ended the command, ffmpeg must not outlive it writing into a temp folder.
        run.stop_work(reason="the command failed")
        raise


class _Run:
    """One conversion, holding what Ctrl-C has to stop and settle wherever it lands."""

    def __init__(self, services: Any) -> None:
        self.services = services
        self.bus: MemoryBus | None = None
        self.worker: threading.Thread | None = None
        self.job_id: str | None = None

    def convert(
        self,
        source: Path,
        out: Path,
        *,
        bitrate: str | None,
        quality: int | None,
        show: bool,
        transcripts: tuple[str, ...] = (),
        language: str | None = None,
    ) -> int:
        services = self.services
        apps = functions.load_all()
        self.bus = bootstrap.deliver_in_process(services, apps)

        user = users.local_user(services)
        token, _ = users.session_token(services, user)
        auth = {"Authorization": f"Bearer {token}"}
        content_type = mimetypes.guess_type(source.name)[0] or "application/octet-stream"
        asked = (("bitrate", bitrate), ("quality", quality), ("language", language))
        options = {k: v for k, v in asked if v is not None}
        created = _call(
            apps["upload-init"],
            "POST",
            "/",
            201,
            json={
                "filename": source.name,
                "size": source.stat().st_size,
                "content_type": content_type,
                "options": options,
            },
            headers=auth,
        ).get_json()
        job_id = self.job_id = created["job_id"]
        job = jobs.owned(services, job_id, user.id)
        # The file is already on this machine: store it as the client's upload would (a hard
        # link when the store is a local folder on the same disk, so a big video costs no copy).
        services.store.put_file(
            job.video_key,
            str(source),
            content_type=content_type,
            metadata={
                "file_type": "video",
                "user_id": user.id,
                "job_id": job_id,
                "status": "uploaded",
            },
        )
        _call(apps["jobs"], "POST", f"/{job_id}/complete", 202, headers=auth)

        if self.bus is not None:
            self.worker = threading.Thread(
                target=self.bus.run_until_idle, name="deliveries", daemon=True
            )
            self.worker.start()
        job = _wait(services, job_id, user.id, source.name, show=show)
        if self.worker is not None:
            self.worker.join()  # notify runs after the job completes; let its email be written
        if job.state is JobState.FAILED:
            raise CommandError(f"{source.name}: {job.error}")

        response = _call(
            apps["jobs"], "GET", f"/{job_id}/download", 200, headers=auth, buffered=False
        )
        try:
            save(_chunks(response.response), out)
        finally:
            response.close()
        kbps = f", {job.mp3_bitrate // 1000} kbps" if job.mp3_bitrate else ""
        print(f"{out}  {display.duration(job.mp3_duration)}  {display.size(job.mp3_size)}{kbps}")
        if job.transcript_status == "done":
            for fmt in transcripts:
                text = _call(
                    apps["jobs"], "GET", f"/{job_id}/transcript?format={fmt}", 200, headers=auth
                ).get_data()
                path = out.with_suffix(f".{fmt}")
                try:
                    path.write_bytes(text)
                except OSError as exc:
                    raise CommandError(f"could not write {path}: {_reason(exc)}") from exc
                print(path)
            print(f"language: {job.language or 'none heard'}")
        elif transcripts and job.transcript_reason:
            print(f"no transcript: {job.transcript_reason}")
        if job.summary_status == "done" and job.summary:
            print(f"summary ({job.category}): {job.summary}")
        return 0

    def interrupted(self) -> None:
        """Ctrl-C: stop ffmpeg now, let the delivery thread unwind, end the job quietly."""
        with _sigint_ignored():
            # Settled first, so whatever the convert step makes of its killed ffmpeg it finds the
            # job already final: it neither overwrites the reason nor announces a failure.
            self._settle()
            self.stop_work(reason=INTERRUPTED)

    def stop_work(self, *, reason: str) -> None:
        """Kill ffmpeg now and give the delivery thread a moment to clean up after it."""
        if self.worker is None or not self.worker.is_alive():
            return
        shutdown.request(0, reason=reason)
        if self.bus is not None:
            self.bus.stop()
        self.worker.join(INTERRUPT_WAIT_SECONDS)

    def _settle(self) -> None:
        if self.job_id is None:
            return
        try:
            # The user stopped it on purpose: no failure email about it.
            jobs.fail(
                self.services,
                self.job_id,
                stage="convert",
                reason=INTERRUPTED,
                announce=False,
            )
        except Exception:
            # Exiting on Ctrl-C matters more than the job row; the reason is in the debug log.
            log.warning("could not mark the job interrupted", exc_info=True)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    # A second Ctrl-C during the few seconds of cleanup would leave ffmpeg or temp files behind.
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: nothing to shield
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _chunks(body: Iterable[bytes]) -> Iterator[bytes]:
    # Reading the stored MP3 and writing the user's file fail for different reasons; say which.
    try:
        yield from body
    except OSError as exc:
        raise CommandError(f"could not download the MP3: {_reason(exc)}") from exc


def _open_partial(out: Path) -> tuple[Path, int]:
    # In the target folder so the final rename never crosses a file system; hidden and random so
    # it collides with nothing and a second run beside it cannot clobber it. 0o666 lets the
    # umask decide the MP3's mode, as for any file the user writes.
    while True:
        partial = out.with_name(f".{out.name}.{secrets.token_hex(4)}.part")
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
            return partial, os.open(partial, flags, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            raise CommandError(f"could not write {out}: {_reason(exc)}") from exc


def save(chunks: Iterable[bytes], out: Path) -> None:
    """Write ``chunks`` to ``out`` all or nothing: a temp file beside it, renamed into place."""
    partial, fd = _open_partial(out)
    try:
        try:
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
            # Some file systems (NFS, quotas) report a full disk only here.
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(partial, out)
    except OSError as exc:
        _remove(partial)
        raise CommandError(f"could not write {out}: {_reason(exc)}") from exc
    except BaseException:
        _remove(partial)
        raise


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _wait(services: Any, job_id: str, user_id: str, name: str, *, show: bool) -> Any:
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    bar = tqdm(
        total=100,
        desc=name if len(name) <= 30 else name[:27] + "...",
        unit="%",
        bar_format="{desc}: {percentage:3.0f}%|{bar}|{postfix} [{elapsed}<{remaining}]",
        disable=not show,
        file=sys.stderr,
        leave=True,
    )
    # The bar is closed (its line ended) however this block is left, so an error or
    # "interrupted" printed after it starts on a line of its own; log lines printed while it is
    # drawn go above it instead of through it.
    redirect = logging_redirect_tqdm([logging.getLogger("vid2mp3")]) if show else None
    with bar, redirect or contextlib.nullcontext():
        while True:
            job = jobs.owned(services, job_id, user_id)
            waiting = job.state is JobState.CONVERTED and job.transcript_status is None
            bar.set_postfix_str("transcribing" if waiting else str(job.state), refresh=False)
            if job.state is JobState.FAILED:
                bar.refresh()  # at the progress it had: a failure is not 100% of anything
                return job
            done = 100 if job.state in (JobState.CONVERTED, *FINAL_STATES) else job.progress
            bar.update(max(0, done - bar.n))
            if job.state in FINAL_STATES:
                return job
            time.sleep(POLL_SECONDS)
