"""``vid2mp3 convert``: one video through the same functions production runs, on this machine."""

from __future__ import annotations

import mimetypes
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from vid2mp3 import bootstrap, display, jobs, logs, users
from vid2mp3.bus.memory import MemoryBus
from vid2mp3.config import Config
from vid2mp3.errors import CommandError
from vid2mp3.local import functions
from vid2mp3.model import FINAL_STATES, JobState

POLL_SECONDS = 0.2


def _call(app: Any, method: str, path: str, expected: int, **kwargs: Any) -> Any:
    response = app.test_client().open(path, method=method, **kwargs)
    if response.status_code != expected:
        body = response.get_json(silent=True) or {}
        raise CommandError(body.get("error") or f"{method} {path} answered {response.status_code}")
    return response


def run_convert(
    video: str,
    *,
    output: str | None = None,
    bitrate: str | None = None,
    quality: int | None = None,
    progress: bool = True,
) -> int:
    source = Path(video)
    if not source.is_file():
        raise CommandError(f"{video}: no such file")
    if source.stat().st_size == 0:
        raise CommandError(f"{video}: the file is empty")
    out = Path(output) if output else source.with_suffix(".mp3")
    if out.resolve() == source.resolve():
        raise CommandError(f"the MP3 would overwrite {video}; choose another name with -o")

    logs.configure(os.environ.get("VID2MP3_LOG_LEVEL", "ERROR"))
    services = bootstrap.build(Config.from_env())
    bootstrap.install(services)
    apps = functions.load_all()
    bus = services.sink if isinstance(services.sink, MemoryBus) else None
    if bus is not None:
        bus.attach(functions.InProcessDelivery(apps))

    user = users.local_user(services)
    token, _ = users.session_token(services, user)
    auth = {"Authorization": f"Bearer {token}"}
    content_type = mimetypes.guess_type(source.name)[0] or "application/octet-stream"
    options = {k: v for k, v in (("bitrate", bitrate), ("quality", quality)) if v is not None}
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
    job_id = created["job_id"]
    job = jobs.owned(services, job_id, user.id)
    # The file is already on this machine: store it as the client's upload would (a hard link
    # when the store is a local folder on the same disk, so a big video costs no copy).
    services.store.put_file(
        job.video_key,
        str(source),
        content_type=content_type,
        metadata={"file_type": "video", "user_id": user.id, "job_id": job_id, "status": "uploaded"},
    )
    _call(apps["jobs"], "POST", f"/{job_id}/complete", 202, headers=auth)

    worker = None
    if bus is not None:
        worker = threading.Thread(target=bus.run_until_idle, name="deliveries", daemon=True)
        worker.start()
    job = _wait(services, job_id, user.id, source.name, show=progress)
    if worker is not None:
        worker.join()  # notify runs after the job completes; let its email be written
    if job.state is JobState.FAILED:
        raise CommandError(f"{source.name}: {job.error}")

    response = _call(apps["jobs"], "GET", f"/{job_id}/download", 200, headers=auth, buffered=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.part")
    with partial.open("wb") as f:
        for chunk in response.response:
            f.write(chunk)
    response.close()
    os.replace(partial, out)
    kbps = f", {job.mp3_bitrate // 1000} kbps" if job.mp3_bitrate else ""
    print(f"{out}  {display.duration(job.mp3_duration)}  {display.size(job.mp3_size)}{kbps}")
    if job.summary_status == "done" and job.summary:
        print(f"summary ({job.category}): {job.summary}")
    return 0


def _wait(services: Any, job_id: str, user_id: str, name: str, *, show: bool) -> Any:
    from tqdm import tqdm

    bar = tqdm(
        total=100,
        desc=name if len(name) <= 30 else name[:27] + "...",
        unit="%",
        bar_format="{desc}: {percentage:3.0f}%|{bar}|{postfix} [{elapsed}<{remaining}]",
        disable=not show,
        file=sys.stderr,
        leave=True,
    )
    with bar:
        while True:
            job = jobs.owned(services, job_id, user_id)
            bar.set_postfix_str(str(job.state), refresh=False)
            done = 100 if job.state in (JobState.CONVERTED, *FINAL_STATES) else job.progress
            bar.update(max(0, done - bar.n))
            if job.state in FINAL_STATES:
                return job
            time.sleep(POLL_SECONDS)
