"""S3 uploads cannot be swapped after the check (issue 10, point 9), against moto's S3 server.

A presigned PUT cannot be revoked: it still works after ``complete`` and after ``DELETE``. So
``complete`` records the object it checked (ETag; VersionId on a versioned bucket), the converter
reads only that object (a signed ``If-Match`` that ffmpeg sends with every request, plus
``versionId``), presigned upload URLs live ``UPLOAD_URL_TTL``, and deleting a job aborts its
multipart uploads and removes every version of every object under its prefixes.

moto does not check SigV4 signatures, so a request without the signed If-Match header is served
there (the control case below shows it): whatever refuses a replaced object in these tests is the
header ffmpeg actually sent, or our own HEAD with If-Match.

The swap is what the upload's holder can do: PUT other bytes of the declared size (the PUT signs
Content-Length) to the same URL with the same headers. Two WAVs of equal size tell the versions
apart by duration: 2 s of mono and 1 s of stereo.
"""

from __future__ import annotations

import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from tests.conftest import Api, make_config
from vid2mp3 import bootstrap, media
from vid2mp3.bus.memory import MemoryBus
from vid2mp3.db.database import Database
from vid2mp3.db.migrations import migrate
from vid2mp3.db.mysql import MysqlDatabase
from vid2mp3.db.sqlite import SqliteDatabase
from vid2mp3.db.unit_of_work import UnitOfWork
from vid2mp3.errors import NotFound, SourceChanged, TransientError
from vid2mp3.model import Job, JobState
from vid2mp3.ports import StoredObject
from vid2mp3.services import Services
from vid2mp3.storage.s3 import CHANGED_AFTER_CHECK, MIB, S3BlobStore

pytest_plugins = ["tests.fixtures.services_real"]

URL_TTL = 1234
MULTIPART_FROM = 5 * MIB


@pytest.fixture
def services(request: pytest.FixtureRequest, tmp_path: Path, s3_url: str) -> Iterator[Services]:
    """Embedded services on a fresh moto bucket (``versioned`` when parametrized so), with
    UPLOAD_URL_TTL=1234 and multipart uploads from 5 MiB (overrides conftest's ``services``)."""
    store = S3BlobStore.from_url(s3_url, multipart_threshold=MULTIPART_FROM)
    if getattr(request, "param", "plain") == "versioned":
        store._client.put_bucket_versioning(
            Bucket=store.bucket, VersioningConfiguration={"Status": "Enabled"}
        )
    config = make_config(tmp_path / "home", UPLOAD_URL_TTL=str(URL_TTL))
    svc = bootstrap.build(config, store=store)
    bootstrap.install(svc)
    yield svc
    bootstrap.install(None)
    svc.db.close()


@pytest.fixture
def s3(services: Services, moto_s3: str) -> Any:
    """A plain boto3 client on the same bucket, for looking behind the adapter's back."""
    return boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1")


def store_of(services: Services) -> S3BlobStore:
    assert isinstance(services.store, S3BlobStore)
    return services.store


def wav(path: Path, seconds: float, channels: int) -> Path:
    argv = [media.find_ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f"]
    argv += ["lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}"]
    argv += ["-ac", str(channels), "-bitexact", "-c:a", "pcm_s16le", str(path)]
    subprocess.run(argv, check=True, capture_output=True)
    return path


@pytest.fixture
def talk(tmp_path: Path) -> tuple[bytes, bytes]:
    """(original, replacement): WAVs of the same size, 2 s mono and 1 s stereo."""
    original = wav(tmp_path / "a.wav", 2, 1).read_bytes()
    replacement = wav(tmp_path / "b.wav", 1, 2).read_bytes()
    assert len(original) == len(replacement) and original != replacement
    return original, replacement


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def init(api: Api, token: str, size: int) -> tuple[str, dict[str, Any]]:
    answer = api.call(
        "upload-init",
        "POST",
        json={"filename": "talk.wav", "size": size, "content_type": "audio/wav"},
        headers=_auth(token),
    )
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()["job_id"], answer.get_json()["upload"]


def put(target: dict[str, Any], body: bytes) -> None:
    sent = requests.put(target["url"], data=body, headers=target["headers"], timeout=30)
    assert sent.status_code == 200, sent.text


def complete(api: Api, token: str, job_id: str) -> None:
    done = api.call("jobs", "POST", f"/{job_id}/complete", headers=_auth(token))
    assert done.status_code == 202, done.get_json()


def stored_job(services: Services, job_id: str) -> Any:
    with services.uow() as uow:
        return uow.jobs.get(job_id)


def keys(s3: Any, bucket: str) -> list[tuple[str, str]]:
    """Every version and delete marker in the bucket, as (key, version id)."""
    listed = s3.list_object_versions(Bucket=bucket)
    entries = [*listed.get("Versions", []), *listed.get("DeleteMarkers", [])]
    return sorted((e["Key"], e["VersionId"]) for e in entries)


@pytest.mark.parametrize("services", ["plain", "versioned"], indirect=True)
def test_complete_records_the_checked_object(
    api: Api, services: Services, s3: Any, talk: tuple[bytes, bytes]
) -> None:
    token = api.token("ada@example.com")
    job_id, target = init(api, token, len(talk[0]))
    put(target, talk[0])
    complete(api, token, job_id)

    job = stored_job(services, job_id)
    head = s3.head_object(Bucket=store_of(services).bucket, Key=job.video_key)
    assert job.video_etag == head["ETag"]
    assert job.video_version == head.get("VersionId")
    versioned = s3.get_bucket_versioning(Bucket=store_of(services).bucket).get("Status")
    assert (job.video_version is not None) == (versioned == "Enabled")


def test_a_swap_after_complete_fails_the_job(
    api: Api, bus: MemoryBus, services: Services, s3: Any, talk: tuple[bytes, bytes]
) -> None:
    token = api.token("ada@example.com")
    job_id, target = init(api, token, len(talk[0]))
    put(target, talk[0])
    complete(api, token, job_id)
    put(target, talk[1])  # the same presigned PUT, after the check

    bus.run_until_idle()

    job = api.job(token, job_id)
    assert job["state"] == "failed"
    assert (
        job["error"]
        == CHANGED_AFTER_CHECK
        == ("the upload changed after it was checked; upload it again")
    )
    assert job["mp3"] is None
    assert not bus.dead_letters  # the owner's doing: failed at once, not retried
    listed = s3.list_objects_v2(Bucket=store_of(services).bucket, Prefix="mp3/")
    assert listed.get("KeyCount") == 0


@pytest.mark.parametrize("services", ["versioned"], indirect=True)
def test_a_versioned_bucket_converts_the_checked_version_despite_a_swap(
    api: Api, bus: MemoryBus, services: Services, talk: tuple[bytes, bytes]
) -> None:
    token = api.token("ada@example.com")
    job_id, target = init(api, token, len(talk[0]))
    put(target, talk[0])
    complete(api, token, job_id)
    put(target, talk[1])  # a new version; the checked one is still there

    bus.run_until_idle()

    job = api.job(token, job_id)
    assert job["state"] == "completed", job
    assert job["mp3"]["duration"] == pytest.approx(2.0, abs=0.1)  # the original, not the 1 s


def test_ffmpeg_sends_the_signed_if_match(services: Services, talk: tuple[bytes, bytes]) -> None:
    store = store_of(services)
    key = "videos/j-1/talk.wav"
    store._client.put_object(Bucket=store.bucket, Key=key, Body=talk[0])
    checked = store.stored_object(key)
    assert checked is not None and checked.version_id is None

    with pytest.raises(SourceChanged) as caught, store.pinned_source(key, checked) as source:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(source.location).query)
        assert query["X-Amz-SignedHeaders"] == ["host;if-match"]
        assert source.headers == {"If-Match": checked.etag}
        # Swapped after our HEAD, before ffmpeg's first request.
        store._client.put_object(Bucket=store.bucket, Key=key, Body=talk[1])
        # Control: without the header moto serves the replacement (1 s of stereo) ...
        assert media.probe(source.location, network=True).duration == pytest.approx(1.0)
        # ... with it, ffmpeg's request is refused (412), which it reports as a 4xx.
        media.probe(source.location, network=True, headers=source.headers)

    assert str(caught.value) == CHANGED_AFTER_CHECK
    assert isinstance(caught.value.__cause__, TransientError)
    assert "4XX" in str(caught.value.__cause__)
    # What ffmpeg was told, asked by hand: a stale ETag is 412, the current one is served.
    current = store.stored_object(key)
    assert current is not None and current.etag != checked.etag
    with store.pinned_source(key, current) as fresh:
        stale = requests.get(fresh.location, headers={"If-Match": checked.etag}, timeout=30)
        right = requests.get(fresh.location, headers=dict(fresh.headers), timeout=30)
    assert (stale.status_code, right.status_code) == (412, 200)
    assert right.content == talk[1]


def test_a_swap_found_on_entry_is_refused_before_ffmpeg(
    services: Services, talk: tuple[bytes, bytes]
) -> None:
    store = store_of(services)
    key = "videos/j-2/talk.wav"
    store._client.put_object(Bucket=store.bucket, Key=key, Body=talk[0])
    checked = store.stored_object(key)
    assert checked is not None
    store._client.put_object(Bucket=store.bucket, Key=key, Body=talk[1])

    with pytest.raises(SourceChanged), store.pinned_source(key, checked):
        pytest.fail("the block must not run")
    gone = StoredObject(checked.size, checked.etag)
    store.delete(key)
    with pytest.raises(NotFound), store.pinned_source(key, gone):
        pytest.fail("the block must not run")


def test_upload_urls_live_upload_url_ttl(api: Api, services: Services) -> None:
    token = api.token("ada@example.com")
    _, single = init(api, token, 1000)
    _, multi = init(api, token, MULTIPART_FROM + 1)

    urls = [single["url"], *multi["parts"]]
    assert len(urls) == 2
    for url in urls:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
        assert query["X-Amz-Expires"] == [str(URL_TTL)]
    # The upload token of the other stores keeps its own, longer lifetime.
    assert services.config.upload_token_ttl == 7200 > services.config.upload_url_ttl == URL_TTL


def test_delete_aborts_multipart_uploads_and_leaves_nothing(
    api: Api, services: Services, s3: Any
) -> None:
    token = api.token("ada@example.com")
    size = MULTIPART_FROM + 1
    job_id, target = init(api, token, size)
    bucket = store_of(services).bucket
    assert len(s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])) == 1

    deleted = api.call("jobs", "DELETE", f"/{job_id}", headers=_auth(token))
    assert deleted.status_code == 204

    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    # The part URL handed out at upload-init is dead: its upload no longer exists (S3 answers
    # 404 NoSuchUpload; moto 5 a 500), and nothing lands.
    late = requests.put(target["parts"][0], data=b"\0" * size, timeout=30)
    assert late.status_code >= 400
    assert keys(s3, bucket) == []


@pytest.mark.parametrize("services", ["versioned"], indirect=True)
def test_delete_removes_every_version_of_every_object(
    api: Api, bus: MemoryBus, services: Services, s3: Any, talk: tuple[bytes, bytes]
) -> None:
    token = api.token("ada@example.com")
    job_id, target = init(api, token, len(talk[0]))
    put(target, talk[0])
    complete(api, token, job_id)
    bus.run_until_idle()
    assert api.job(token, job_id)["state"] == "completed"
    put(target, talk[1])  # a second version of the source
    bucket = store_of(services).bucket
    before = {key.split("/")[0] for key, _ in keys(s3, bucket)}
    assert {"videos", "mp3"} <= before

    deleted = api.call("jobs", "DELETE", f"/{job_id}", headers=_auth(token))
    assert deleted.status_code == 204

    assert keys(s3, bucket) == []  # no version, no delete marker, nothing to bill


@pytest.mark.parametrize("database", ["sqlite", "mariadb"])
def test_the_checked_object_round_trips_on_each_database(
    request: pytest.FixtureRequest, tmp_path: Path, database: str
) -> None:
    # Migration 006 on both engines; a multipart ETag and the longest VersionId we allow.
    db: Database = (
        SqliteDatabase(str(tmp_path / "t.db"))
        if database == "sqlite"
        else MysqlDatabase(request.getfixturevalue("mysql_url"))
    )
    migrate(db)
    now = time.time()
    job = Job("j-1", "u-1", "talk.wav", "audio/wav", 10, "videos/j-1/talk.wav",
              JobState.AWAITING_UPLOAD, now, now)  # fmt: skip
    etag, version = '"' + "f" * 32 + '-10000"', "v" * 1024
    try:
        with UnitOfWork(db) as uow:
            uow.jobs.add(job)
            assert uow.jobs.update(
                job.id, only_in=(JobState.AWAITING_UPLOAD,), state=JobState.UPLOADED,
                video_etag=etag, video_version=version,
            )  # fmt: skip
            uow.commit()
        with UnitOfWork(db) as uow:
            stored = uow.jobs.get(job.id)
        assert stored is not None
        assert (stored.video_etag, stored.video_version) == (etag, version)
    finally:
        db.close()
