"""The embedded default mailer: every message becomes an ``.eml`` file in a folder, readable
by its owner only (folder 0700, files 0600): emails carry addresses and download links."""

from __future__ import annotations

import contextlib
import os
import re
import time
import uuid
from pathlib import Path

from vid2mp3 import private_files
from vid2mp3.errors import ServiceFault
from vid2mp3.ports import EmailMessageLike


class OutboxMailer:
    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def send(self, message: EmailMessageLike) -> None:
        """Write ``message`` as one ``.eml`` file; a folder that cannot be written raises
        ``ServiceFault`` (a ``TransientError``: the notification is tried again)."""
        # Cut so the name stays within 255 bytes: an address may be 254 characters long.
        to = re.sub(r"[^A-Za-z0-9@._-]", "_", message["To"] or "unknown")[:200]
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{to}-{uuid.uuid4().hex[:8]}.eml"
        # Not named *.eml until whole: whoever watches the folder sees only complete messages.
        tmp = self.folder / f".{name}.part"
        try:
            private_files.make_dirs(self.folder)
            with os.fdopen(private_files.create_file(tmp), "wb") as out:
                out.write(message.as_bytes())
            os.replace(tmp, self.folder / name)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)  # a partly written message must not stay
            raise ServiceFault(f"the mail outbox cannot be written ({exc.strerror})") from exc
