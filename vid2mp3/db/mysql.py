"""MySQL/MariaDB adapter through pymysql (``DATABASE_URL=mysql://user:pass@host:port/db``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote, urlsplit

from vid2mp3.db.pool import ConnectionPool
from vid2mp3.errors import ConfigError, TransientError

log = logging.getLogger(__name__)


#: Deadlock found (1213), lock wait timeout (1205): InnoDB rolled the transaction back (or may
#: have); running it again is the documented remedy.
_RETRY_TRANSACTION = frozenset({1205, 1213})


class MysqlDatabase:
    placeholder = "%s"
    skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str, *, connect_attempts: int = 6) -> None:
        try:
            import pymysql
        except ImportError:
            raise ConfigError(
                f"DATABASE_URL={url.split('@')[-1]!r} needs pymysql: pip install 'vid2mp3[mysql]'"
            ) from None
        self._pymysql = pymysql
        parts = urlsplit(url)
        if not parts.path.strip("/"):
            raise ConfigError(
                "DATABASE_URL must name a database, e.g. mysql://u:p@host:3306/vid2mp3"
            )
        self._params = {
            "host": parts.hostname or "127.0.0.1",
            "port": parts.port or 3306,
            "user": unquote(parts.username or "root"),
            "password": unquote(parts.password or ""),
            "database": parts.path.strip("/"),
            "charset": "utf8mb4",
            "autocommit": True,
            "connect_timeout": 10,
            # Claims and compare-and-set updates need no gap locks; REPEATABLE READ's gap
            # locks are what made concurrent notification inserts deadlock.
            "init_command": "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
        }
        self._attempts = connect_attempts
        self._pool: ConnectionPool[Any] = ConnectionPool(
            self._connect, alive=self._alive, close=lambda conn: conn.close()
        )

    def _connect(self) -> Any:
        # A database that is still starting (compose, k8s) should not kill the function: retry
        # with exponential backoff, then give up with a transient error.
        delay = 0.5
        for attempt in range(1, self._attempts + 1):
            try:
                return self._pymysql.connect(**self._params)
            except self._pymysql.err.OperationalError as exc:
                if attempt == self._attempts:
                    raise TransientError(f"database unreachable: {exc.args[-1]}") from exc
                log.warning(
                    "database not reachable, retrying",
                    extra={"attempt": attempt, "delay": delay, "reason": str(exc.args[-1])},
                )
                time.sleep(delay)
                delay = min(delay * 2, 8)
        raise AssertionError("unreachable")

    def _alive(self, conn: Any) -> bool:
        try:
            conn.ping(reconnect=False)
        except self._pymysql.err.Error:
            return False
        return True

    def connection(self) -> Any:
        return self._pool.take()

    def release(self, conn: Any) -> None:
        self._pool.give(conn)

    def begin(self, conn: Any) -> None:
        conn.begin()

    @contextmanager
    def migration_lock(self) -> Iterator[None]:
        # GET_LOCK belongs to the session: this connection stays out of the pool until the
        # lock is released.
        conn = self.connection()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT GET_LOCK('vid2mp3_migrations', 120)")
                if cur.fetchone()[0] != 1:
                    raise TransientError("another process is migrating the database; try again")
            try:
                yield
            finally:
                with conn.cursor() as cur:
                    cur.execute("SELECT RELEASE_LOCK('vid2mp3_migrations')")
        finally:
            self.release(conn)

    def is_duplicate_key(self, exc: BaseException) -> bool:
        return isinstance(exc, self._pymysql.err.IntegrityError) and exc.args[0] in (1062, 1586)

    def is_busy(self, exc: BaseException) -> bool:
        return (
            isinstance(exc, self._pymysql.err.OperationalError | self._pymysql.err.InternalError)
            and bool(exc.args)
            and exc.args[0] in _RETRY_TRANSACTION
        )

    def close(self) -> None:
        self._pool.close_all()
