"""Only the platform talks to event functions: every event we publish is signed, and every
event function refuses one that is not.

The publisher (the outbox publisher, the relay, ``vid2mp3 events replay``) adds an HMAC-SHA256
of the event's identity and data as the CloudEvent extension attribute ``vid2mp3signature``.
Brokers carry extension attributes through unchanged (RabbitMQ headers, Knative's broker,
OpenFaaS's connectors), so the signature works the same on every platform, in binary and
structured mode, and a stored event (event log, dead-letter queue) keeps a valid one. The key
is derived from ``JWT_SECRET``, which every function already holds; an outsider who can reach a
function (a public gateway, a misconfigured route) cannot make a signature, so a forged
``job.failed`` changes nothing and sends nothing.

``time`` is not signed: an event re-announced by the relay or replayed by an operator is the
same event, and redeliveries are made harmless by the handlers (``processed_events``, the job's
state, notify reading the job's row).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json

from vid2mp3.config import Config
from vid2mp3.errors import Forbidden
from vid2mp3.events import SIGNATURE_ATTRIBUTE, Event

_PREFIX = "v1="


def _key(config: Config) -> bytes:
    return hmac.new(config.jwt_secret.encode(), b"vid2mp3 event signing", hashlib.sha256).digest()


def _signed_part(event: Event) -> bytes:
    # Canonical JSON: what any hop may re-encode (key order, spacing, escapes) does not matter.
    return json.dumps(
        [event.id, event.type, event.source, event.subject, event.data],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    ).encode()


def signature_of(event: Event, config: Config) -> str:
    return _PREFIX + hmac.new(_key(config), _signed_part(event), hashlib.sha256).hexdigest()


def sign(event: Event, config: Config) -> Event:
    """``event`` with the platform's signature (replacing any it had)."""
    return dataclasses.replace(event, signature=signature_of(event, config))


def verify(event: Event, config: Config) -> None:
    """Raise ``Forbidden`` unless ``event`` carries the platform's signature."""
    if not event.signature:
        raise Forbidden(
            "this function takes CloudEvents from the platform only, and this one is not "
            f"signed ({SIGNATURE_ATTRIBUTE}); to send one by hand use `vid2mp3 events replay`"
        )
    if not hmac.compare_digest(event.signature, signature_of(event, config)):
        raise Forbidden(
            f"this event's {SIGNATURE_ATTRIBUTE} does not match: it was not published by this "
            "platform, or was changed on the way"
        )
