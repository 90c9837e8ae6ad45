"""One contract for every ``BlobStore``: local folder, GridFS (mongomock, or the real server
named by ``TEST_MONGO_URL``), S3 (moto's server over real HTTP) and the test fake
(``RecordingStore``); then one for each optional capability: ``DirectTransfer`` over S3, the only
store that offers it, and ``SummaryArchive`` over GridFS and the fake.

What the whole suite checks on each backend: streamed put/get with short reads, sizes, empty
objects, overwrite (and that a failed overwrite keeps the old object), delete, missing objects
(``NotFound`` / ``None``), metadata where the backend keeps it, that ffmpeg converts a video
straight from ``media_source`` (an MP4 whose index sits at the end, so reading it must seek), and
a 100 MiB object put and read back with bounded memory. Every ``DirectTransfer``: a file
uploaded to its ``upload_target`` (one PUT or multipart parts), finished, and downloaded from
its ``download_url`` under the name asked for; the other stores do not claim it. S3 alone: the
signed headers, parts finished server-side when complete and refused when not.

Left untested because moto checks neither signatures nor expiry: that a presigned PUT refuses a
different Content-Type or Content-Length, that a part URL refuses a part of another size, that
URLs stop working after ``expires_in``, and that credentials are right at all. The tests only
check that those headers are among the signed ones. MinIO or AWS would be needed for the rest.

Memory is measured with ``tracemalloc`` (every Python allocation, which is where boto3, pymongo
and our own buffers live), not ``ru_maxrss``: the latter is a high-water mark of the whole
process's life, so once an earlier test peaked higher its delta is zero and the test could not
fail. With mongomock the stored bytes live in this process; the put is then judged by its peak
above what remains allocated afterwards (the transient buffers), the read by its peak above
the start.
"""

from __future__ import annotations

import hashlib
import io
import random
import time
import tracemalloc
import urllib.parse
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.fixtures.fake_archive import RecordingStore
from vid2mp3 import bootstrap, media
from vid2mp3.errors import ConfigError, Conflict, NotFound, TransientError
from vid2mp3.ports import BlobStore, DirectTransfer, SummaryArchive, UploadTarget, iter_chunks
from vid2mp3.storage.gridfs import GridFSBlobStore
from vid2mp3.storage.local import LocalBlobStore
from vid2mp3.storage.s3 import MIN_PART_SIZE, S3BlobStore

pytest_plugins = ["tests.fixtures.backends"]

MIB = 1024 * 1024
BACKENDS = ("local", "gridfs", "s3")
# Test fakes pass the same contract; they are not backends bootstrap could choose.
FAKES = ("recording",)
DIRECT_TRANSFERS = ("s3",)
ARCHIVES = ("gridfs", "recording")
LARGE = 100 * MIB
# A store may hold the part it is sending (S3: 8 MiB) and a chunk or two (measured: local and
# GridFS ~2 MiB, S3 ~10 MiB); holding the 100 MiB object, or a good share of it, must fail.
MEMORY_LIMIT = 24 * MIB
VIDEO_META = {"file_type": "video", "user_id": "u-1", "job_id": "j-1", "status": "uploaded"}


def _make_store(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> Any:
    if backend == "local":
        return LocalBlobStore(tmp_path / "blobs")
    if backend == "recording":
        return RecordingStore(tmp_path / "blobs")
    if backend == "gridfs":
        return GridFSBlobStore.from_url(request.getfixturevalue("gridfs_url"))
    # Smallest legal parts, so a few MiB already exercise multipart uploads.
    return S3BlobStore.from_url(
        request.getfixturevalue("s3_url"),
        multipart_threshold=MIN_PART_SIZE,
        part_size=MIN_PART_SIZE,
        client_part_size=MIN_PART_SIZE,
    )


def _closing(made: Any) -> Iterator[Any]:
    yield made
    close = getattr(made, "close", None)
    if close is not None:
        close()


@pytest.fixture(params=BACKENDS + FAKES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    yield from _closing(_make_store(request, request.param, tmp_path))


@pytest.fixture(params=DIRECT_TRANSFERS)
def direct(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A store that is also a ``DirectTransfer``."""
    yield from _closing(_make_store(request, request.param, tmp_path))


@pytest.fixture(params=ARCHIVES)
def archive(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A store that is also a ``SummaryArchive``."""
    yield from _closing(_make_store(request, request.param, tmp_path))


@pytest.fixture
def s3(request: pytest.FixtureRequest, tmp_path: Path) -> S3BlobStore:
    made = _make_store(request, "s3", tmp_path)
    assert isinstance(made, S3BlobStore)
    return made


class Trickle(io.RawIOBase):
    """``data`` handed out at most ``piece`` bytes per read, as a socket does."""

    def __init__(self, data: bytes, piece: int = 64 * 1024) -> None:
        self.view = memoryview(data)
        self.piece = piece

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        n = self.piece if size < 0 else min(size, self.piece)
        out, self.view = bytes(self.view[:n]), self.view[n:]
        return out


class Generated(io.RawIOBase):
    """``size`` bytes of a cycled pseudo-random pattern, made on the fly and hashed as read.

    The pattern length is prime so chunk boundaries never line up with it: a store that swaps
    or repeats a chunk changes the hash.
    """

    PATTERN = 1_048_583

    def __init__(self, size: int, *, fail_after: int | None = None) -> None:
        pattern = random.Random(size).randbytes(self.PATTERN)
        self.cycle = pattern + pattern
        self.remaining = size
        self.position = 0
        self.fail_after = fail_after
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.fail_after is not None and self.position >= self.fail_after:
            raise OSError("the client went away")
        n = min(self.remaining, self.PATTERN, size if size >= 0 else self.PATTERN)
        start = self.position % self.PATTERN
        out = self.cycle[start : start + n]
        self.position += n
        self.remaining -= n
        self.digest.update(out)
        return out


def read_all(store: BlobStore, key: str, chunk: int = 64 * 1024) -> bytes:
    with store.open(key) as f:
        return b"".join(iter_chunks(f, chunk))


def put(store: BlobStore, key: str, data: bytes, **metadata: str) -> int:
    return store.put_stream(
        key, Trickle(data), content_type="video/mp4", metadata=metadata or VIDEO_META
    )


# --- every backend ------------------------------------------------------------------------------


def test_streamed_put_returns_size_and_reads_back_the_same_bytes(store: BlobStore) -> None:
    # Two and a bit S3 parts; dozens of GridFS chunks; arrives in socket-sized pieces.
    data = random.Random(1).randbytes(2 * MIN_PART_SIZE + 12_345)
    assert put(store, "videos/j-1/clip.mp4", data) == len(data)
    assert store.size("videos/j-1/clip.mp4") == len(data)
    assert read_all(store, "videos/j-1/clip.mp4") == data


def test_small_and_empty_objects(store: BlobStore) -> None:
    assert put(store, "a/one.bin", b"x") == 1
    assert put(store, "a/empty.bin", b"") == 0
    assert store.size("a/one.bin") == 1
    assert store.size("a/empty.bin") == 0
    assert read_all(store, "a/empty.bin") == b""
    assert read_all(store, "a/one.bin") == b"x"


def test_put_file(store: BlobStore, tmp_path: Path) -> None:
    source = tmp_path / "audio.mp3"
    source.write_bytes(random.Random(2).randbytes(300_001))
    meta = {"file_type": "mp3", "user_id": "u-1", "converted_from": "videos/j-1/clip.mp4"}
    size = store.put_file("mp3/j-1/clip.mp3", str(source), content_type="audio/mpeg", metadata=meta)
    assert size == 300_001
    assert read_all(store, "mp3/j-1/clip.mp3") == source.read_bytes()


def test_overwrite_replaces_the_object(store: BlobStore) -> None:
    put(store, "k/clip.mp4", b"first version, longer" * 1000, status="uploaded")
    put(store, "k/clip.mp4", b"second", status="replaced")
    assert store.size("k/clip.mp4") == 6
    assert read_all(store, "k/clip.mp4") == b"second"
    metadata = getattr(store, "metadata", None)
    if metadata is not None:
        assert metadata("k/clip.mp4")["status"] == "replaced"


def test_failed_overwrite_keeps_the_old_object(store: BlobStore) -> None:
    put(store, "k/clip.mp4", b"old")
    broken = Generated(3 * MIN_PART_SIZE, fail_after=MIN_PART_SIZE + 1)
    with pytest.raises(OSError, match="went away"):
        store.put_stream("k/clip.mp4", broken, content_type="video/mp4", metadata=VIDEO_META)
    assert read_all(store, "k/clip.mp4") == b"old"
    assert store.size("k/clip.mp4") == 3


def test_delete(store: BlobStore) -> None:
    put(store, "d/clip.mp4", b"bytes")
    store.delete("d/clip.mp4")
    assert store.size("d/clip.mp4") is None
    with pytest.raises(NotFound):
        read_all(store, "d/clip.mp4")
    store.delete("d/clip.mp4")  # a missing key is not an error


def test_missing_object(store: BlobStore) -> None:
    assert store.size("nothing/here.mp4") is None
    with pytest.raises(NotFound), store.open("nothing/here.mp4"):
        pass
    with pytest.raises(NotFound), store.media_source("nothing/here.mp4"):
        pass
    store.delete("nothing/here.mp4")


def test_keys_that_differ_only_by_a_suffix_are_distinct(store: BlobStore) -> None:
    put(store, "p/clip.mp4", b"short")
    put(store, "p/clip.mp4.bak", b"longer one")
    store.delete("p/clip.mp4")
    assert store.size("p/clip.mp4.bak") == 10


@pytest.mark.parametrize("store", ["gridfs", "s3"], indirect=True)
def test_metadata_is_kept(store: Any) -> None:
    meta = {
        "file_type": "mp3",
        "user_id": "u-1",
        "job_id": "j-1",
        "converted_from": "videos/j-1/Café del Mar 100%.mp4",
        "status": "converted",
    }
    store.put_stream("m/x.mp3", Trickle(b"ID3"), content_type="audio/mpeg", metadata=meta)
    assert store.metadata("m/x.mp3") == {**meta, "content_type": "audio/mpeg"}
    assert store.metadata("m/missing.mp3") is None


def test_ffmpeg_reads_media_source(store: BlobStore, make_video: Any, tmp_path: Path) -> None:
    # moov at the end: ffmpeg has to seek to the end and back, over HTTP ranges for S3.
    video = make_video("mp4_moov_end", seconds=2.0)
    store.put_file("videos/j-1/phone.mp4", str(video), content_type="video/mp4", metadata={})
    out = tmp_path / "out.mp3"
    with store.media_source("videos/j-1/phone.mp4") as source:
        result = media.extract_audio(
            source.location, str(out), title="phone", network=source.network
        )
        location = source.location
    assert result.duration == pytest.approx(media.probe(str(video)).audio_duration, abs=0.1)
    assert out.stat().st_size == result.size > 0
    if not source.network:
        # Either the stored file itself or a temp copy that is gone now.
        assert Path(location).exists() == isinstance(store, LocalBlobStore)


def test_stores_without_urls_send_bytes_through_jobs(store: BlobStore) -> None:
    if isinstance(store, S3BlobStore):
        assert store.upload_target("v/a.mp4", size=10, content_type="video/mp4", expires_in=60)
        assert store.download_url("v/a.mp3", filename="a.mp3", expires_in=60)
    else:
        # Not a DirectTransfer at all, rather than one that answers None.
        for method in ("upload_target", "finish_upload", "download_url"):
            assert not hasattr(store, method), method


@pytest.mark.parametrize("store", BACKENDS, indirect=True)
def test_bootstrap_wires_exactly_what_each_store_offers(store: BlobStore) -> None:
    direct, archive = bootstrap.capabilities(store)
    assert (direct is store) == hasattr(store, "upload_target")
    assert (archive is store) == hasattr(store, "record_summary")
    assert direct is None or direct is store
    assert archive is None or archive is store


class MemoryProbe(AbstractContextManager["MemoryProbe"]):
    """Python allocations during the block: ``peak`` and ``end``, both above the start."""

    def __enter__(self) -> MemoryProbe:
        self.started = not tracemalloc.is_tracing()
        if self.started:
            tracemalloc.start()
        self.base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        return self

    def __exit__(self, *exc: object) -> None:
        current, peak = tracemalloc.get_traced_memory()
        self.peak, self.end = peak - self.base, current - self.base
        if self.started:
            tracemalloc.stop()


def _holds_bytes_in_process(store: BlobStore) -> bool:
    return isinstance(store, GridFSBlobStore) and "mongomock" in type(store.database).__module__


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_100_mib_object_streams_with_bounded_memory(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    store = _make_store(request, backend, tmp_path)
    if isinstance(store, S3BlobStore):
        store.part_size = 8 * MIB  # the production default
    source = Generated(LARGE)
    with MemoryProbe() as put_memory:
        stored = store.put_stream(
            "big/movie.mp4", source, content_type="video/mp4", metadata=VIDEO_META
        )
    assert stored == LARGE
    assert store.size("big/movie.mp4") == LARGE

    transient = put_memory.peak - max(put_memory.end, 0)
    assert transient < MEMORY_LIMIT, f"put held {transient / MIB:.1f} MiB at once"
    if not _holds_bytes_in_process(store):
        assert put_memory.end < MEMORY_LIMIT, f"put kept {put_memory.end / MIB:.1f} MiB"

    digest = hashlib.sha256()
    with MemoryProbe() as get_memory, store.open("big/movie.mp4") as f:
        for chunk in iter_chunks(f):
            digest.update(chunk)
    assert get_memory.peak < MEMORY_LIMIT, f"get held {get_memory.peak / MIB:.1f} MiB at once"
    assert digest.hexdigest() == source.digest.hexdigest()
    store.delete("big/movie.mp4")


# --- every SummaryArchive -----------------------------------------------------------------------


def _archived(archive: SummaryArchive) -> list[dict[str, Any]]:
    """The documents ``archive`` holds, as they would be read back."""
    if isinstance(archive, GridFSBlobStore):
        return [
            {k: v for k, v in d.items() if k != "_id"} for d in archive.database["summaries"].find()
        ]
    assert isinstance(archive, RecordingStore)
    return archive.summaries


def test_archive_forgets_one_jobs_summary(archive: SummaryArchive) -> None:
    archive.record_summary({"job_id": "j-1", "summary": "to go"})
    archive.record_summary({"job_id": "j-2", "summary": "to stay"})
    archive.forget_summary("j-1")
    archive.forget_summary("never-recorded")  # nothing to remove is not an error
    assert [d["job_id"] for d in _archived(archive)] == ["j-2"]


def test_archive_records_one_summary_per_job(archive: SummaryArchive) -> None:
    archive.record_summary({"job_id": "j-1", "summary": "first try"})
    archive.record_summary({"job_id": "j-1", "summary": "redelivered"})
    archive.record_summary({"job_id": "j-2", "summary": "other"})
    found = {d["job_id"]: d["summary"] for d in _archived(archive)}
    assert found == {"j-1": "redelivered", "j-2": "other"}


def test_archive_keeps_the_document_as_given(archive: SummaryArchive) -> None:
    doc = {
        "job_id": "j-1",
        "file_id": "audio/j-1/Café.mp3",
        "summary": "Ünïcode survives.",
        "context_truncated": False,
        "duration": 12.5,
    }
    archive.record_summary(doc)
    assert _archived(archive) == [doc]
    # pymongo adds an ``_id`` to what it inserts; the caller's mapping stays as it was.
    assert "_id" not in doc


# --- every DirectTransfer: bytes that never pass through a function -----------------------------


def _send_part(target: UploadTarget, number: int, data: bytes) -> None:
    chunk = data[(number - 1) * target.part_size : number * target.part_size]
    response = requests.put(
        target.parts[number - 1],
        data=chunk,
        headers={"Content-Type": "application/octet-stream"},
        timeout=30,
    )
    assert response.status_code == 200, response.text


def _upload(target: UploadTarget, data: bytes) -> None:
    """What a browser does with ``target``: every part in turn, else one request."""
    if target.parts:
        for number in range(1, len(target.parts) + 1):
            _send_part(target, number, data)
        return
    response = requests.request(
        target.method, target.url, data=data, headers=dict(target.headers), timeout=30
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("size", [100_000, MIN_PART_SIZE + 54_321], ids=["put", "multipart"])
def test_direct_upload_finish_and_download(direct: Any, size: int) -> None:
    transfer: DirectTransfer = direct
    data = random.Random(size).randbytes(size)
    key = "v/j/direct.mp4"
    target = transfer.upload_target(key, size=size, content_type="video/mp4", expires_in=600)
    assert isinstance(target, UploadTarget)
    assert target.expires_at > time.time()
    _upload(target, data)
    transfer.finish_upload(key, size=size)
    transfer.finish_upload(key, size=size)  # a client retrying "complete" is harmless
    assert direct.size(key) == size
    url = transfer.download_url(key, filename="clip.mp4", expires_in=600)
    assert isinstance(url, str)
    response = requests.get(url, timeout=30)
    assert response.status_code == 200
    assert response.content == data


def test_direct_download_url_names_the_file(direct: Any) -> None:
    direct.put_stream("mp3/j/a.mp3", Trickle(b"ID3 audio"), content_type="audio/mpeg", metadata={})
    url = direct.download_url("mp3/j/a.mp3", filename="Café 1.mp3", expires_in=600)
    response = requests.get(url, timeout=30)
    assert response.status_code == 200
    assert response.content == b"ID3 audio"
    assert "filename*=UTF-8''Caf%C3%A9%201.mp3" in response.headers["Content-Disposition"]


# --- S3: how its presigned URLs work --------------------------------------------------------------


def _signed_headers(url: str) -> set[str]:
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    return set(query["X-Amz-SignedHeaders"][0].split(";"))


def test_s3_creates_its_bucket_with_a_rule_for_abandoned_uploads(
    s3: S3BlobStore, moto_s3: str
) -> None:
    import boto3

    admin = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1")
    rules = admin.get_bucket_lifecycle_configuration(Bucket=s3.bucket)["Rules"]
    assert [r["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] for r in rules] == [2]
    # Starting again on the existing bucket is fine.
    S3BlobStore(s3.bucket, endpoint_url=moto_s3)


def test_s3_presigned_put(s3: S3BlobStore) -> None:
    data = random.Random(3).randbytes(100_000)
    target = s3.upload_target(
        "v/j/clip.mp4", size=len(data), content_type="video/mp4", expires_in=600
    )
    assert target.method == "PUT" and not target.parts
    assert target.headers["Content-Type"] == "video/mp4"
    assert {"content-type", "content-length", "host"} <= _signed_headers(target.url)
    response = requests.put(target.url, data=data, headers=dict(target.headers), timeout=30)
    assert response.status_code == 200, response.text
    s3.finish_upload("v/j/clip.mp4", size=len(data))  # nothing to finish after a single PUT
    assert s3.size("v/j/clip.mp4") == len(data)
    assert s3.metadata("v/j/clip.mp4") == {"content_type": "video/mp4"}
    assert read_all(s3, "v/j/clip.mp4") == data


def _put_part(target: Any, number: int, data: bytes) -> None:
    assert "content-length" in _signed_headers(target.parts[number - 1])
    _send_part(target, number, data)


def test_s3_presigned_multipart_upload_finished_server_side(s3: S3BlobStore) -> None:
    data = random.Random(4).randbytes(MIN_PART_SIZE + 54_321)
    key = "v/j/big.mp4"
    target = s3.upload_target(key, size=len(data), content_type="video/mp4", expires_in=600)
    assert target.upload_id and target.part_size == MIN_PART_SIZE and len(target.parts) == 2

    _put_part(target, 2, data)
    with pytest.raises(Conflict, match="1 parts"):
        s3.finish_upload(key, size=len(data))
    assert s3.size(key) is None  # still open: the client can send the missing part

    _put_part(target, 1, data)
    s3.finish_upload(key, size=len(data))
    s3.finish_upload(key, size=len(data))  # a second complete is harmless
    assert s3.size(key) == len(data)
    assert read_all(s3, key) == data
    assert s3.metadata(key) == {"content_type": "video/mp4"}


def test_s3_new_upload_target_replaces_an_abandoned_one(s3: S3BlobStore) -> None:
    data = random.Random(5).randbytes(MIN_PART_SIZE + 10)
    key = "v/j/again.mp4"
    abandoned = s3.upload_target(key, size=len(data), content_type="video/mp4", expires_in=600)
    _put_part(abandoned, 1, data)
    target = s3.upload_target(key, size=len(data), content_type="video/mp4", expires_in=600)
    for number in (1, 2):
        _put_part(target, number, data)
    s3.finish_upload(key, size=len(data))
    assert read_all(s3, key) == data


def test_s3_delete_aborts_an_unfinished_multipart_upload(s3: S3BlobStore) -> None:
    data = random.Random(6).randbytes(MIN_PART_SIZE + 10)
    target = s3.upload_target(
        "v/j/gone.mp4", size=len(data), content_type="video/mp4", expires_in=600
    )
    _put_part(target, 1, data)
    s3.delete("v/j/gone.mp4")
    # With the upload still open this would complain about the missing part.
    s3.finish_upload("v/j/gone.mp4", size=len(data))
    assert s3.size("v/j/gone.mp4") is None


def test_s3_media_source_is_a_presigned_url(s3: S3BlobStore) -> None:
    s3.put_stream("v/j/a.mp4", Trickle(b"bytes"), content_type="video/mp4", metadata={})
    with s3.media_source("v/j/a.mp4") as source:
        assert source.network
        assert requests.get(source.location, timeout=30).content == b"bytes"
        ranged = requests.get(source.location, headers={"Range": "bytes=1-2"}, timeout=30)
        assert ranged.status_code == 206 and ranged.content == b"yt"


# --- configuration and outages ------------------------------------------------------------------


def test_s3_url_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="bucket_name"):
        S3BlobStore.from_url("s3://b?endpoint=http://127.0.0.1:1&bucket_name=x")
    with pytest.raises(ConfigError, match="AWS_SECRET_ACCESS_KEY_FILE"):
        S3BlobStore.from_url(
            "s3://b?endpoint=http://127.0.0.1:1",
            env={"AWS_SECRET_ACCESS_KEY_FILE": str(tmp_path / "missing")},
        )


def test_s3_credentials_may_come_from_files(moto_s3: str, tmp_path: Path) -> None:
    (tmp_path / "id").write_text("from-file\n")
    (tmp_path / "secret").write_text("s3cr3t\n")
    store = S3BlobStore.from_url(
        f"s3://vid2mp3-creds?endpoint={moto_s3}",
        env={
            "AWS_ACCESS_KEY_ID_FILE": str(tmp_path / "id"),
            "AWS_SECRET_ACCESS_KEY_FILE": str(tmp_path / "secret"),
        },
    )
    url = store.download_url("a.mp3", filename="a.mp3", expires_in=60)
    assert "X-Amz-Credential=from-file%2F" in url


def test_unreachable_backends_raise_transient_errors() -> None:
    # Port 1 refuses connections at once; event handlers retry on TransientError.
    gridfs = GridFSBlobStore.from_url("mongodb://127.0.0.1:1/x?serverSelectionTimeoutMS=200")
    with pytest.raises(TransientError):
        gridfs.size("a.mp4")
    with pytest.raises(TransientError):
        gridfs.record_summary({"job_id": "j-1", "summary": "kept for the retry"})
    gridfs.close()
    url, env = (
        "s3://b?endpoint=http://127.0.0.1:1",
        {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"},
    )
    s3 = S3BlobStore.from_url(url, env=env, create_bucket=False)
    with pytest.raises(TransientError):
        s3.size("a.mp4")
    with pytest.raises(TransientError):
        S3BlobStore.from_url(url, env=env)
