"""What a SQL adapter provides: a per-thread connection, a transaction start, its dialect."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol


class Database(Protocol):
    #: DB-API placeholder of the driver; portable SQL is written with ``?`` and translated.
    placeholder: str

    def connection(self) -> Any:
        """A connection owned by the calling thread (opened on first use, reused after)."""
        ...

    def begin(self, conn: Any) -> None:
        """Start a write transaction on ``conn``."""
        ...

    def migration_lock(self) -> AbstractContextManager[None]:
        """Held while migrations run, so concurrent starts apply each file once."""
        ...

    def is_duplicate_key(self, exc: BaseException) -> bool:
        """True when ``exc`` is a unique/primary-key violation."""
        ...

    def close(self) -> None: ...
