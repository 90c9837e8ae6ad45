"""The event contract: CloudEvent types, the ``Event`` value, and schema checks.

Each type's ``data`` has a JSON Schema in ``events/schemas/<type>.json`` (shipped in the wheel as
``vid2mp3.contract``). Events are checked when emitted and when received.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from vid2mp3 import bodies
from vid2mp3.errors import InvalidInput

VIDEO_UPLOADED = "io.vid2mp3.video.uploaded"
AUDIO_CONVERTED = "io.vid2mp3.audio.converted"
AUDIO_TRANSCRIBED = "io.vid2mp3.audio.transcribed"
AUDIO_SUMMARIZED = "io.vid2mp3.audio.summarized"
JOB_FAILED = "io.vid2mp3.job.failed"
EVENT_TYPES = (VIDEO_UPLOADED, AUDIO_CONVERTED, AUDIO_TRANSCRIBED, AUDIO_SUMMARIZED, JOB_FAILED)

SPEC_VERSION = "1.0"
#: The CloudEvent extension attribute carrying the publisher's signature
#: (``vid2mp3.event_signatures``); brokers pass extension attributes through unchanged.
SIGNATURE_ATTRIBUTE = "vid2mp3signature"


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Event:
    """A CloudEvent as the library sees it: no SDK or HTTP objects below the door."""

    type: str
    subject: str
    data: dict[str, Any]
    source: str = "/vid2mp3"
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    time: str = field(default_factory=_now_iso)
    #: Set by the publisher (``event_signatures.sign``); empty on an event not yet published.
    signature: str = field(default="", compare=False)

    def to_json(self) -> str:
        """Structured-mode JSON (the form kept in the outbox, the event log and .jsonl files)."""
        body: dict[str, Any] = {
            "specversion": SPEC_VERSION,
            "id": self.id,
            "type": self.type,
            "source": self.source,
            "subject": self.subject,
            "time": self.time,
            "datacontenttype": "application/json",
            "data": self.data,
        }
        if self.signature:
            body[SIGNATURE_ATTRIBUTE] = self.signature
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Event:
        """Parse structured-mode JSON; raises ``InvalidInput`` when a required field is missing."""
        try:
            raw = json.loads(text)
            return cls(
                type=raw["type"],
                subject=raw.get("subject", ""),
                data=raw.get("data") or {},
                source=raw["source"],
                id=raw["id"],
                time=raw.get("time") or _now_iso(),
                signature=str(raw.get(SIGNATURE_ATTRIBUTE) or ""),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInput(f"not a structured CloudEvent: {exc}") from exc

    @classmethod
    def from_attributes(
        cls,
        attributes: Mapping[str, Any],
        data: Any,
        *,
        carrier: str = "the event",
        body: str = "CloudEvent data",
    ) -> Event:
        """The ``Event`` of received CloudEvent ``attributes`` (bare names: ``id``, ``type``...)
        and ``data`` (a JSON object, or its text or bytes; empty text means ``{}``).

        ``carrier`` and ``body`` name what was received in the errors, so a broker message and
        an HTTP request each say what was wrong with them. Raises ``InvalidInput`` when an
        attribute is missing or ``data`` is not a JSON object.
        """
        missing = [a for a in ("id", "type", "source") if not attributes.get(a)]
        if missing:
            raise InvalidInput(f"{carrier} lacks CloudEvent attributes: {', '.join(missing)}")
        if isinstance(data, bytes | str):
            raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
            try:
                data = bodies.parse_json(raw or b"{}")
            except InvalidInput as exc:
                raise InvalidInput(f"{body} is not JSON: {exc.message}") from None
        if not isinstance(data, dict):
            raise InvalidInput(f"{body} must be a JSON object")
        return cls(
            type=attributes["type"],
            # Producers that set no subject still name the job in the data.
            subject=attributes.get("subject") or str(data.get("job_id", "")),
            data=data,
            source=attributes["source"],
            id=attributes["id"],
            time=attributes.get("time") or "",
            signature=str(attributes.get(SIGNATURE_ATTRIBUTE) or ""),
        )

    def binary_headers(self) -> dict[str, str]:
        """HTTP headers of binary content mode; the body is ``json.dumps(self.data)``."""
        headers = {
            "ce-specversion": SPEC_VERSION,
            "ce-id": self.id,
            "ce-type": self.type,
            "ce-source": self.source,
            "ce-subject": self.subject,
            "ce-time": self.time,
            "Content-Type": "application/json",
        }
        if self.signature:
            headers[f"ce-{SIGNATURE_ATTRIBUTE}"] = self.signature
        return headers


@functools.cache
def _validator(event_type: str) -> Any:
    import jsonschema  # deferred: only needed when events flow

    path = resources.files("vid2mp3.contract") / "schemas" / f"{event_type}.json"
    try:
        schema = json.loads(path.read_text())
    except FileNotFoundError:
        raise InvalidInput(f"unknown event type {event_type!r}") from None
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def validate(event: Event) -> None:
    """Check ``event.data`` against its type's schema; raises ``InvalidInput`` saying what is wrong."""
    if event.type not in EVENT_TYPES:
        raise InvalidInput(f"unknown event type {event.type!r}; expected one of {EVENT_TYPES}")
    errors = sorted(_validator(event.type).iter_errors(event.data), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.path) or "(root)"
        raise InvalidInput(f"{event.type} data is invalid at {where}: {first.message}")
