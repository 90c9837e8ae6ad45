"""Per-user webhooks: where one may point, and delivering a signed CloudEvent to it.

The request is the CloudEvent in binary content mode: ``ce-*`` headers and the event's data as
the JSON body. The body is signed with HMAC-SHA256 under the user's webhook secret and the
signature sent as ``X-Vid2mp3-Signature: sha256=<hex>``. Each user's secret is derived from the
app's ``JWT_SECRET`` and the user id (see ``secret_for``), so it needs no storage and differs per
user; the ``settings`` function shows it to its owner. Changing ``JWT_SECRET`` changes every
webhook secret.

A webhook must be ``http(s)`` and reach only public addresses (``vid2mp3.outbound``: every
address the host resolves to, IPv6 forms that embed an IPv4 judged by it), checked when the URL
is set and again on each delivery, unless ``ALLOW_PRIVATE_WEBHOOKS=1``. A delivery connects to
the address that was checked, and redirects are not followed.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import socket
from typing import Any

from vid2mp3 import outbound
from vid2mp3.config import Config
from vid2mp3.errors import PermanentError, TransientError
from vid2mp3.events import Event

SIGNATURE_HEADER = "X-Vid2mp3-Signature"
USER_AGENT = "vid2mp3-webhook/1"
TIMEOUT = 10.0
MAX_URL_LENGTH = outbound.MAX_URL_LENGTH
_WHAT = "webhook_url"

#: The URL is not one a webhook may use (a 400 when it is set).
WebhookRefused = outbound.TargetRefused


def secret_for(config: Config, user_id: str) -> str:
    """The user's webhook signing secret: HMAC-SHA256 of the user id under ``JWT_SECRET``."""
    message = b"vid2mp3 webhook secret\x00" + user_id.encode()
    return hmac.new(config.jwt_secret.encode(), message, hashlib.sha256).hexdigest()


def signature(secret: str, body: bytes) -> str:
    """The ``X-Vid2mp3-Signature`` value of ``body``: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def check_url(url: Any, *, allow_private: bool) -> str:
    """``url`` when a webhook may use it; raises ``WebhookRefused`` saying why not.

    The host must resolve, and (unless ``allow_private``) only to public addresses.
    """
    if not isinstance(url, str) or not url.strip():
        raise WebhookRefused("webhook_url must be an http(s) URL, or null to remove it")
    target = outbound.parse(url, what=_WHAT)
    try:
        outbound.addresses(target, allow_private=allow_private, what="webhook")
    except socket.gaierror:
        raise WebhookRefused(f"the webhook host {target.host!r} cannot be resolved") from None
    return target.url


def deliver(config: Config, user_id: str, url: str, event: Event) -> None:
    """POST ``event`` to ``url``, signed with the user's secret.

    Raises:
        TransientError: the target is unreachable, slow, or answered 408/429/5xx (try again).
        PermanentError: the URL is not allowed (any more), or the target answered another
            non-2xx status; retrying cannot help.
    """
    body = json.dumps(event.data, separators=(",", ":")).encode()
    headers = {
        **event.binary_headers(),
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: signature(secret_for(config, user_id), body),
    }
    try:
        target = outbound.parse(url, what=_WHAT)
        pinned = outbound.addresses(
            target, allow_private=config.allow_private_webhooks, what="webhook"
        )
    except WebhookRefused as exc:
        raise PermanentError(exc.message) from None
    except socket.gaierror as exc:
        raise TransientError(f"the webhook host cannot be resolved right now: {exc}") from None
    try:
        status = outbound.post(target, pinned, body, headers, timeout=TIMEOUT)
    except (OSError, http.client.HTTPException) as exc:
        raise TransientError(f"the webhook could not be reached: {exc}") from None
    if 200 <= status < 300:
        return
    if status in (408, 429) or status >= 500:
        raise TransientError(f"the webhook answered HTTP {status}")
    if 300 <= status < 400:
        raise PermanentError(
            f"the webhook answered a redirect (HTTP {status}); redirects are not followed"
        )
    raise PermanentError(f"the webhook refused the event (HTTP {status})")
