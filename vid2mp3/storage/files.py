"""Storing a local file in a blob store by streaming it through the store's ``put_stream``.

GridFS and S3 have no cheaper way to take a file than reading it (neither copies from a path
on our disk), so their ``put_file`` is this function; the local store uses it when it cannot
hard-link.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import BinaryIO, Protocol


class _StreamingStore(Protocol):
    def put_stream(
        self, key: str, stream: BinaryIO, *, content_type: str, metadata: Mapping[str, str]
    ) -> int: ...


def stream_file(
    store: _StreamingStore,
    key: str,
    path: str,
    *,
    content_type: str,
    metadata: Mapping[str, str],
) -> int:
    """Store the file at ``path`` under ``key`` through ``store.put_stream``.

    Args:
        store: the store to write to; ``stream_file`` may also be a store's ``put_file``
            method itself (``put_file = stream_file`` in the class body).
        key, content_type, metadata: as for ``put_stream``.
        path: a readable local file.

    Returns the number of bytes stored. Raises ``OSError`` when the file cannot be read, and
    whatever ``put_stream`` raises (``InvalidInput``, ``TransientError`` ...).
    """
    with open(path, "rb") as src:
        return store.put_stream(key, src, content_type=content_type, metadata=metadata)
