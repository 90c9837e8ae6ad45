"""What a SQL adapter provides: connections lent per transaction, a transaction start, its
dialect; and what a repository needs of the transaction it works in."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol


class Database(Protocol):
    #: DB-API placeholder of the driver; portable SQL is written with ``?`` and translated.
    placeholder: str
    #: Appended to a ``SELECT`` that claims rows: other transactions skip the rows this one
    #: locked instead of waiting for them (``""`` where one writer at a time is the rule).
    skip_locked: str

    def connection(self) -> Any:
        """A connection for one transaction (reused from the adapter's pool when one is idle);
        give it back with ``release``."""
        ...

    def release(self, conn: Any) -> None:
        """Give back a connection from ``connection`` once its transaction has ended."""
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

    def is_busy(self, exc: BaseException) -> bool:
        """True when ``exc`` means "run the transaction again": a deadlock, a lock-wait
        timeout, a busy file. Another attempt usually succeeds."""
        ...

    def close(self) -> None: ...


class Transaction(Protocol):
    """The part of a unit of work that repositories use."""

    skip_locked: str

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        """Run portable SQL written with ``?`` placeholders; returns the cursor."""
        ...

    def is_duplicate_key(self, exc: BaseException) -> bool: ...
