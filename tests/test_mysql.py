"""The SQL port on MariaDB and SQLite: migrations, and the same repository tests on both."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vid2mp3.db.database import Database
from vid2mp3.db.migrations import migrate
from vid2mp3.db.mysql import MysqlDatabase
from vid2mp3.db.sqlite import SqliteDatabase
from vid2mp3.db.unit_of_work import UnitOfWork
from vid2mp3.deliveries import DELIVERED, RETRY, Delivery
from vid2mp3.errors import ConfigError, TransientError
from vid2mp3.events import VIDEO_UPLOADED, Event
from vid2mp3.model import Job, JobState, User

pytest_plugins = ["tests.fixtures.services_real"]


def _migrations() -> list[str]:
    folder = Path(__file__).resolve().parents[1] / "infra" / "sql"
    return sorted(p.stem for p in folder.glob("*.sql"))


@pytest.fixture(params=["sqlite", "mariadb"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated, empty database of each kind."""
    if request.param == "sqlite":
        database: Database = SqliteDatabase(str(tmp_path / "test.db"))
    else:
        database = MysqlDatabase(request.getfixturevalue("mysql_url"))
    migrate(database)
    yield database
    database.close()


def _job(user_id: str, **changes: Any) -> Job:
    now = time.time()
    job_id = str(uuid.uuid4())
    values: dict[str, Any] = {
        "id": job_id,
        "user_id": user_id,
        "filename": "talk.mp4",
        "content_type": "video/mp4",
        "size": 1234,
        "video_key": f"videos/{job_id}/talk.mp4",
        "state": JobState.UPLOADED,
        "created_at": now,
        "updated_at": now,
    }
    values.update(changes)
    return Job(**values)


def test_migrations_are_recorded_and_idempotent(db: Database) -> None:
    assert migrate(db) == []  # the fixture applied them all already
    cur = db.connection().cursor()
    cur.execute("SELECT version FROM schema_migrations ORDER BY version")
    assert [r[0] for r in cur.fetchall()] == _migrations()


def test_concurrent_starts_apply_each_migration_once(mysql_url: str) -> None:
    applied: list[list[str]] = []
    errors: list[BaseException] = []

    def start() -> None:
        database = MysqlDatabase(mysql_url)
        try:
            applied.append(migrate(database))
        except BaseException as exc:
            errors.append(exc)
        finally:
            database.close()

    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(v for run in applied for v in run) == _migrations()


def test_unreachable_mysql_is_a_transient_error() -> None:
    database = MysqlDatabase("mysql://root@127.0.0.1:9/nowhere", connect_attempts=1)
    with pytest.raises(TransientError, match="database unreachable"):
        database.connection()


def test_mysql_url_must_name_a_database() -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        MysqlDatabase("mysql://root@127.0.0.1:3306/")


def test_users_unique_email(db: Database) -> None:
    user = User(str(uuid.uuid4()), "ada@example.com", "hash", time.time())
    with UnitOfWork(db) as uow:
        assert uow.users.add(user)
        uow.commit()
    with UnitOfWork(db) as uow:
        assert not uow.users.add(User(str(uuid.uuid4()), "ada@example.com", "h2", time.time()))
        assert uow.users.by_email("ada@example.com") == user
        assert uow.users.by_id(user.id) == user
        assert uow.users.by_id("nobody") is None


def test_uncommitted_work_is_rolled_back(db: Database) -> None:
    job = _job("u1")
    with UnitOfWork(db) as uow:
        uow.jobs.add(job)
    with UnitOfWork(db) as uow:
        assert uow.jobs.get(job.id) is None


def test_jobs_round_trip_and_compare_and_set(db: Database) -> None:
    job = _job("u1", filename="Ünïcødé talk.mp4")
    with UnitOfWork(db) as uow:
        uow.jobs.add(job)
        uow.commit()
    with UnitOfWork(db) as uow:
        assert uow.jobs.get(job.id) == job
        assert not uow.jobs.update(job.id, only_in=(JobState.CONVERTED,), progress=50)
        assert uow.jobs.update(job.id, only_in=(JobState.UPLOADED,), progress=50, error="x")
        uow.commit()
    with UnitOfWork(db) as uow:
        stored = uow.jobs.get(job.id)
        assert stored is not None and stored.progress == 50 and stored.error == "x"
        assert [j.id for j in uow.jobs.list_for_user("u1")] == [job.id]
        assert uow.jobs.list_for_user("u2") == []


def test_claim_is_exclusive_until_the_lease_runs_out(db: Database) -> None:
    job = _job("u1")
    event = Event(type=VIDEO_UPLOADED, subject=job.id, data={"job_id": job.id})
    with UnitOfWork(db) as uow:
        uow.jobs.add(job)
        uow.commit()
    with UnitOfWork(db) as uow:
        first = uow.leases.take(job.id, "convert", holder="a", lease_seconds=60, event=event)
        assert first is not None and not first.took_over
        assert uow.jobs.start_converting(job.id)
        uow.commit()
    with UnitOfWork(db) as uow:
        # A live worker holds it.
        assert uow.leases.take(job.id, "convert", holder="b", lease_seconds=60, event=event) is None
        assert uow.leases.held(job.id, "convert")
        uow.execute("UPDATE step_leases SET lease_until = ?", (time.time() - 1,))  # it died
        uow.commit()
    with UnitOfWork(db) as uow:
        second = uow.leases.take(job.id, "convert", holder="b", lease_seconds=60, event=event)
        assert second is not None and second.took_over and second.takeovers == 1
        assert not uow.leases.renew(first, 60)  # the dead worker's lease is gone
        assert uow.leases.renew(second, 60)
        assert uow.jobs.start_converting(job.id)
        uow.commit()
        claimed = uow.jobs.get(job.id)
    assert claimed is not None
    assert claimed.state is JobState.CONVERTING and claimed.attempts == 2


def test_a_released_lease_is_taken_without_a_takeover_and_abandoned_ones_are_found(
    db: Database,
) -> None:
    event = Event(type=VIDEO_UPLOADED, subject="j1", data={"job_id": "j1"})
    with UnitOfWork(db) as uow:
        lease = uow.leases.take("j1", "convert", holder="a", lease_seconds=60, event=event)
        assert lease is not None
        uow.leases.release(lease)  # shut down gracefully
        dead = uow.leases.take("j2", "summarize", holder="x", lease_seconds=60, event=event)
        assert dead is not None
        uow.execute("UPDATE step_leases SET lease_until = 0 WHERE job_id = 'j2'")
        uow.commit()
    with UnitOfWork(db) as uow:
        # j2's worker died: found at once, counted as a takeover; j1 was handed back just now.
        found = uow.leases.abandoned(wait_seconds=30)
        assert [(a.job_id, a.step, a.takeovers, a.event) for a in found] == [
            ("j2", "summarize", 1, event)
        ]
        assert uow.leases.abandoned(wait_seconds=30) == []  # reserved for a period
        again = uow.leases.take("j1", "convert", holder="b", lease_seconds=60, event=event)
        assert again is not None and not again.took_over and again.takeovers == 0
        uow.commit()


def test_outbox_rows_are_claimed_by_one_publisher(db: Database) -> None:
    events = [Event(type=VIDEO_UPLOADED, subject="j1", data={"job_id": "j1"}) for _ in range(3)]
    with UnitOfWork(db) as uow:
        for event in events:
            uow.outbox.add(event, "j1")
        uow.commit()
    with UnitOfWork(db) as uow:
        assert uow.outbox.claim(lease_seconds=30, job_id="j1") == events
        uow.commit()
    with UnitOfWork(db) as uow:
        assert uow.outbox.claim(lease_seconds=30) == []  # all claimed
        uow.outbox.release(events[1].id)
        uow.outbox.mark_sent(events[0].id)
        uow.commit()
    with UnitOfWork(db) as uow:
        assert uow.outbox.claim(lease_seconds=30) == [events[1]]
        assert uow.outbox.pending("j1") == events[1:]
        uow.commit()


def test_concurrent_claims_never_share_a_row(db: Database) -> None:
    with UnitOfWork(db) as uow:
        for n in range(60):
            uow.outbox.add(Event(type=VIDEO_UPLOADED, subject=f"j{n}", data={"job_id": "x"}), "x")
        uow.commit()
    claimed: list[list[str]] = []
    start = threading.Barrier(4)

    def publisher() -> None:
        mine: list[str] = []
        start.wait()
        while True:
            with UnitOfWork(db) as uow:
                got = uow.outbox.claim(lease_seconds=30, limit=5)
                uow.commit()
            if not got:
                break
            mine.extend(e.id for e in got)
        claimed.append(mine)

    threads = [threading.Thread(target=publisher) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    every = [i for mine in claimed for i in mine]
    assert len(every) == 60 and len(set(every)) == 60


def test_a_deadlock_is_run_again_not_surfaced(db: Database) -> None:
    from vid2mp3.db.unit_of_work import DatabaseBusy, transaction

    runs: list[int] = []

    def work(uow: UnitOfWork) -> str:
        runs.append(1)
        if len(runs) < 3:
            raise DatabaseBusy("deadlock (simulated)")
        uow.processed.record("t", "e1")
        return "done"

    assert transaction(db, work) == "done"
    assert len(runs) == 3
    with UnitOfWork(db) as uow:
        assert uow.processed.seen("t", "e1")


def test_processed_events_and_outbox(db: Database) -> None:
    event = Event(type=VIDEO_UPLOADED, subject="j1", data={"job_id": "j1"})
    with UnitOfWork(db) as uow:
        assert not uow.processed.seen("convert", event.id)
        uow.processed.record("convert", event.id)
        uow.processed.record("convert", event.id)  # a duplicate is not an error
        uow.outbox.add(event, "j1")
        uow.commit()
    with UnitOfWork(db) as uow:
        assert uow.processed.seen("convert", event.id)
        assert not uow.processed.seen("notify", event.id)
        assert uow.outbox.pending("j1") == [event]
        uow.outbox.mark_sent(event.id)
        uow.commit()
    with UnitOfWork(db) as uow:
        assert uow.outbox.pending("j1") == []


def test_notification_claims(db: Database) -> None:
    with UnitOfWork(db) as uow:
        assert uow.notifications.claim("j1", "ready", stale_after=60)
        uow.commit()
    with UnitOfWork(db) as uow:
        assert not uow.notifications.claim("j1", "ready", stale_after=60)
        uow.notifications.mark_sent("j1", "ready")
        uow.commit()
    with UnitOfWork(db) as uow:
        assert uow.notifications.status("j1", "ready") == "sent"
        assert uow.notifications.status("j1", "failed") is None


def test_event_log_keeps_each_event_once_with_all_deliveries(db: Database) -> None:
    first = Event(type=VIDEO_UPLOADED, subject="j1", data={"job_id": "j1", "n": "ü"})
    second = Event(type=VIDEO_UPLOADED, subject="j2", data={"job_id": "j2"})
    now = time.time()
    with UnitOfWork(db) as uow:
        uow.event_log.record(first, Delivery(first.id, "convert", 1, 503, RETRY, 0.25, now, "busy"))
        uow.event_log.record(first, Delivery(first.id, "convert", 2, 200, DELIVERED, 1.5, now + 1))
        uow.event_log.record(
            second, Delivery(second.id, "convert", 1, 200, DELIVERED, 0.1, now + 2)
        )
        uow.commit()
    with UnitOfWork(db) as uow:
        recent = uow.event_log.recent(10)
        assert [e.event.id for e in recent] == [second.id, first.id]
        logged = uow.event_log.get(first.id)
        assert uow.event_log.get("missing") is None
    assert logged is not None
    assert logged.event == first
    assert [(d.attempt, d.status, d.outcome) for d in logged.deliveries] == [
        (1, 503, RETRY),
        (2, 200, DELIVERED),
    ]
    assert logged.deliveries[0].detail == "busy"
    assert logged.deliveries[1].duration == pytest.approx(1.5)


def _server_connections(db: Database) -> int:
    """Connections the server sees on this test's database (MariaDB) or open handles on its
    file (SQLite)."""
    if isinstance(db, MysqlDatabase):
        with UnitOfWork(db) as uow:
            name = uow.execute("SELECT DATABASE()").fetchone()[0]
            row = uow.execute(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = ?", (name,)
            ).fetchone()
        return int(row[0]) - 1  # not the one asking
    assert isinstance(db, SqliteDatabase)
    fds = Path("/proc/self/fd")
    return sum(1 for fd in fds.iterdir() if _points_at(fd, db.path))


def _points_at(fd: Path, path: str) -> bool:
    try:
        return os.readlink(fd) == path
    except OSError:
        return False


def test_threads_share_a_few_connections_instead_of_one_each(db: Database) -> None:
    # A threaded server runs each request in a thread of its own; a connection per thread, kept
    # for the thread's life, ran MariaDB out of connections under load.
    threads_alive = 24
    one_at_a_time = threading.Lock()
    all_done = threading.Barrier(threads_alive + 1)

    def request(n: int) -> None:
        with one_at_a_time, UnitOfWork(db) as uow:
            uow.processed.record("pool", f"e{n}")
            uow.commit()
        all_done.wait(30)  # still alive, as a keep-alive request thread is
        all_done.wait(30)

    threads = [threading.Thread(target=request, args=(n,)) for n in range(threads_alive)]
    for t in threads:
        t.start()
    all_done.wait(30)
    try:
        in_use = _server_connections(db)
    finally:
        all_done.wait(30)
        for t in threads:
            t.join(30)
    assert in_use <= 2
    with UnitOfWork(db) as uow:
        count = uow.execute("SELECT COUNT(*) FROM processed_events WHERE consumer = 'pool'")
        assert count.fetchone()[0] == threads_alive
