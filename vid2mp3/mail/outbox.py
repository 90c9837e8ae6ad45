"""The embedded default mailer: every message becomes an ``.eml`` file in a folder."""

from __future__ import annotations

import os
import re
import time
import uuid
from pathlib import Path

from vid2mp3.ports import EmailMessageLike


class OutboxMailer:
    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def send(self, message: EmailMessageLike) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        to = re.sub(r"[^A-Za-z0-9@._-]", "_", message["To"] or "unknown")
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{to}-{uuid.uuid4().hex[:8]}.eml"
        tmp = self.folder / f".{name}"
        tmp.write_bytes(message.as_bytes())
        os.replace(tmp, self.folder / name)
