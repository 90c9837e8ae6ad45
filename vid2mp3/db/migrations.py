"""Apply the versioned SQL files of ``infra/sql/`` (shipped as ``vid2mp3.migrations``) once each."""

from __future__ import annotations

import logging
import time
from importlib import resources
from typing import Any

from vid2mp3.db.database import Database

log = logging.getLogger(__name__)

_LEDGER = (
    "CREATE TABLE IF NOT EXISTS schema_migrations "
    "(version VARCHAR(128) NOT NULL PRIMARY KEY, applied_at DOUBLE NOT NULL)"
)


def _statements(sql: str) -> list[str]:
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def migrate(db: Database) -> list[str]:
    """Apply every migration not yet recorded; returns the versions applied now.

    Processes starting together serialize on the adapter's migration lock, so each file runs
    once. On SQLite a file and its ledger row commit together; MySQL commits DDL implicitly, so
    the ledger row is written only after every statement of the file has succeeded.
    """
    conn = db.connection()
    try:
        return _apply(db, conn)
    finally:
        db.release(conn)


def _apply(db: Database, conn: Any) -> list[str]:
    with db.migration_lock():
        cur = conn.cursor()
        cur.execute(_LEDGER)
        cur.execute("SELECT version FROM schema_migrations")
        done = {row[0] for row in cur.fetchall()}
        files = sorted(
            (p for p in resources.files("vid2mp3.migrations").iterdir() if p.name.endswith(".sql")),
            key=lambda p: p.name,
        )
        applied = []
        for path in files:
            version = path.name.removesuffix(".sql")
            if version in done:
                continue
            db.begin(conn)
            try:
                for statement in _statements(path.read_text()):
                    cur.execute(statement)
                cur.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES "
                    f"({db.placeholder}, {db.placeholder})",
                    (version, time.time()),
                )
                conn.commit()
            except Exception:
                conn.rollback()
                raise
            applied.append(version)
            log.info("migration applied", extra={"version": version})
    return applied
