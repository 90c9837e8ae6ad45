"""The embedded default mailer: every message becomes an ``.eml`` file in a folder."""

from __future__ import annotations

import os
import re
import time
import uuid
from pathlib import Path

from vid2mp3.errors import ServiceFault
from vid2mp3.ports import EmailMessageLike


class OutboxMailer:
    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def send(self, message: EmailMessageLike) -> None:
        """Write ``message`` as one ``.eml`` file; a folder that cannot be written raises
        ``ServiceFault`` (a ``TransientError``: the notification is tried again)."""
        to = re.sub(r"[^A-Za-z0-9@._-]", "_", message["To"] or "unknown")
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{to}-{uuid.uuid4().hex[:8]}.eml"
        tmp = self.folder / f".{name}"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(message.as_bytes())
            os.replace(tmp, self.folder / name)
        except OSError as exc:
            raise ServiceFault(f"the mail outbox cannot be written ({exc.strerror})") from exc
