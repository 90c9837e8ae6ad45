"""The embedded pipeline once per real blob store: upload → MP3 → download, through the functions.

GridFS takes the upload through ``PUT /jobs/<id>/upload`` and streams the download; S3 hands
out a presigned PUT (sent here with ``requests``, straight to the moto server), ffmpeg reads the
video over HTTP from a presigned GET, and the download answers 302 to a presigned GET.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from mutagen.mp3 import MP3

from tests.conftest import Api, make_config
from vid2mp3 import bootstrap, media
from vid2mp3.bus.memory import MemoryBus
from vid2mp3.services import Services
from vid2mp3.storage.gridfs import GridFSBlobStore
from vid2mp3.storage.s3 import S3BlobStore

pytest_plugins = ["tests.fixtures.backends"]


@pytest.fixture(params=["gridfs", "s3"])
def services(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Services]:
    """Embedded services with the blob store swapped for a real backend (overrides conftest's
    ``services``, so its ``api`` and ``bus`` fixtures run on top of it)."""
    store: Any
    if request.param == "gridfs":
        store = GridFSBlobStore.from_url(request.getfixturevalue("gridfs_url"))
    else:
        store = S3BlobStore.from_url(request.getfixturevalue("s3_url"))
    svc = bootstrap.build(make_config(tmp_path / "home"), store=store)
    bootstrap.install(svc)
    yield svc
    bootstrap.install(None)
    svc.db.close()


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def upload(api: Api, services: Services, token: str, video: Path) -> str:
    """What a client does: upload-init, send the bytes where it is told, complete."""
    if not isinstance(services.store, S3BlobStore):
        return api.upload(token, video)
    init = api.call(
        "upload-init",
        "POST",
        json={"filename": video.name, "size": video.stat().st_size, "content_type": "video/mp4"},
        headers=_auth(token),
    )
    assert init.status_code == 201, init.get_json()
    job_id, target = init.get_json()["job_id"], init.get_json()["upload"]
    assert target["method"] == "PUT"
    assert "X-Amz-Signature=" in target["url"]
    with video.open("rb") as f:
        put = requests.put(target["url"], data=f, headers=target["headers"], timeout=30)
    assert put.status_code == 200, put.text
    done = api.call("jobs", "POST", f"/{job_id}/complete", headers=_auth(token))
    assert done.status_code == 202, done.get_json()
    return str(job_id)


def download(api: Api, services: Services, token: str, job_id: str) -> bytes:
    response = api.call("jobs", "GET", f"/{job_id}/download", headers=_auth(token))
    if not isinstance(services.store, S3BlobStore):
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "audio/mpeg"
        return bytes(response.get_data())
    assert response.status_code == 302
    presigned = requests.get(response.headers["Location"], timeout=30)
    assert presigned.status_code == 200
    quoted = urllib.parse.quote("phone.mp3")
    assert f"filename*=UTF-8''{quoted}" in presigned.headers["Content-Disposition"]
    return presigned.content


def test_video_becomes_downloadable_mp3(
    make_video: Any, api: Api, bus: MemoryBus, services: Services, tmp_path: Path
) -> None:
    # moov at the end: from S3, ffmpeg must seek over HTTP ranges.
    source = make_video("mp4_moov_end")
    video = tmp_path / "phone.mp4"
    video.write_bytes(source.read_bytes())
    token = api.token("ada@example.com")
    job_id = upload(api, services, token, video)
    bus.run_until_idle()

    job = api.job(token, job_id)
    assert job["state"] == "completed", job
    mp3 = tmp_path / "out.mp3"
    mp3.write_bytes(download(api, services, token, job_id))
    assert mp3.stat().st_size == job["mp3"]["size"]
    assert MP3(mp3).info.length == pytest.approx(media.probe(str(video)).audio_duration, abs=0.1)

    with services.uow() as uow:
        stored = uow.jobs.get(job_id)
    assert stored is not None and stored.mp3_key
    metadata = services.store.metadata(stored.mp3_key)  # type: ignore[attr-defined]
    assert metadata == {
        "file_type": "mp3",
        "user_id": stored.user_id,
        "job_id": job_id,
        "converted_from": stored.video_key,
        "status": "converted",
        "content_type": "audio/mpeg",
    }

    # Deleting the job leaves nothing of it in the store: files, and GridFS's summary document.
    if isinstance(services.store, GridFSBlobStore):
        # No AI here, so no summary was archived: put one there as a summarize step would.
        assert services.archive is services.store
        services.archive.record_summary({"job_id": job_id, "summary": "what was said"})
        summaries = services.store.database["summaries"]
        assert summaries.count_documents({"job_id": job_id}) == 1
    deleted = api.call("jobs", "DELETE", f"/{job_id}", headers=_auth(token))
    assert deleted.status_code == 204, deleted.get_json()
    for key in (stored.video_key, stored.mp3_key):
        assert services.store.size(key) is None
    if isinstance(services.store, GridFSBlobStore):
        assert summaries.count_documents({"job_id": job_id}) == 0


def test_playlist_disguised_as_mp4_fails_the_job(
    make_video: Any, api: Api, bus: MemoryBus, services: Services
) -> None:
    # From S3 ffmpeg may speak HTTP; a playlist pointing elsewhere must still be refused.
    token = api.token("bob@example.com")
    job_id = upload(api, services, token, make_video("hls_http").with_suffix(".mp4"))
    bus.run_until_idle()

    job = api.job(token, job_id)
    assert job["state"] == "failed"
    assert job["mp3"] is None
    assert not bus.dead_letters
