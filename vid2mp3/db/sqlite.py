"""SQLite adapter: the embedded default (``DATABASE_URL=sqlite:///path``)."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from vid2mp3 import private_files
from vid2mp3.db.pool import ConnectionPool


class SqliteDatabase:
    placeholder = "?"
    # BEGIN IMMEDIATE already makes every writer wait its turn: a claim cannot be raced.
    skip_locked = ""

    def __init__(self, path: str) -> None:
        self.path = path
        self._pool: ConnectionPool[sqlite3.Connection] = ConnectionPool(
            self._connect, alive=lambda _conn: True, close=sqlite3.Connection.close
        )
        # An in-memory database lives in its one connection: transactions take turns on it.
        self._memory = self._connect() if path == ":memory:" else None
        self._memory_turn = threading.Lock()
        if self._memory is None:
            private_files.make_dirs(os.path.dirname(os.path.abspath(path)))
            # Made 0600 before SQLite opens it: SQLite gives the -wal and -shm files the
            # database's mode, and would create the database itself with the umask's (0644).
            private_files.touch(path)

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so two writers queue on
        # the busy timeout instead of failing on a lock upgrade. check_same_thread=False: a
        # pooled connection serves one transaction at a time, from whichever thread.
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def connection(self) -> sqlite3.Connection:
        if self._memory is not None:
            self._memory_turn.acquire()
            return self._memory
        return self._pool.take()

    def release(self, conn: sqlite3.Connection) -> None:
        if conn is self._memory:
            self._memory_turn.release()
        else:
            self._pool.give(conn)

    def begin(self, conn: Any) -> None:
        conn.execute("BEGIN IMMEDIATE")

    @contextmanager
    def migration_lock(self) -> Iterator[None]:
        # BEGIN IMMEDIATE in migrate() already serializes writers on one SQLite file.
        yield

    def is_duplicate_key(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError)

    def is_busy(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)

    def close(self) -> None:
        self._pool.close_all()
        if self._memory is not None:
            self._memory.close()
