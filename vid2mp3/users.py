"""Sign-up and sign-in."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

from vid2mp3 import auth, webhooks
from vid2mp3.errors import Conflict, InvalidInput, NotFound, Unauthorized
from vid2mp3.model import User
from vid2mp3.services import Services

MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # argon2 hashes anything, but an unbounded body is a cheap DoS
_EMAIL = re.compile(
    r"^[^@\s]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*$"
)


def normalize_email(email: Any) -> str:
    if not isinstance(email, str) or not _EMAIL.match(email.strip()) or len(email) > 254:
        raise InvalidInput("email must be a valid address like name@example.com")
    return email.strip().lower()


def register(services: Services, email: Any, password: Any, webhook_url: Any = None) -> User:
    """Create a user, with an optional webhook; raises ``InvalidInput`` (bad email, password or
    webhook URL) or ``Conflict`` (taken)."""
    email = normalize_email(email)
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise InvalidInput(f"password must be at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise InvalidInput(f"password must be at most {MAX_PASSWORD} characters")
    webhook = _webhook(services, webhook_url)
    user = User(
        id=str(uuid.uuid4()),
        email=email,
        password_hash=auth.hash_password(password),
        created_at=time.time(),
        webhook_url=webhook,
    )
    with services.uow() as uow:
        if not uow.users.add(user):
            raise Conflict(f"an account for {email} already exists")
        uow.commit()
    return user


def _webhook(services: Services, url: Any) -> str | None:
    if url is None or url == "":
        return None
    return webhooks.check_url(url, allow_private=services.config.allow_private_webhooks)


SETTINGS = ("webhook_url",)


def settings(services: Services, user_id: str) -> dict[str, Any]:
    """The account's settings as its owner sees them, with the webhook signing secret."""
    with services.uow() as uow:
        user = uow.users.by_id(user_id)
    if user is None:
        raise NotFound("this account no longer exists")
    return {
        "email": user.email,
        "webhook_url": user.webhook_url,
        "webhook_secret": webhooks.secret_for(services.config, user.id),
        "webhook_signature_header": webhooks.SIGNATURE_HEADER,
    }


def update_settings(services: Services, user_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Apply ``changes`` (``webhook_url``: a URL, or null to remove it); returns the settings.
    Raises ``InvalidInput`` for an unknown setting or a URL a webhook may not use."""
    unknown = sorted(set(changes) - set(SETTINGS))
    if unknown:
        raise InvalidInput(f"unknown settings: {', '.join(unknown)}; known: {', '.join(SETTINGS)}")
    if "webhook_url" not in changes:
        raise InvalidInput('send {"webhook_url": "https://..."}, or null to remove it')
    url = _webhook(services, changes["webhook_url"])
    with services.uow() as uow:
        if uow.users.by_id(user_id) is None:
            raise NotFound("this account no longer exists")
        uow.users.set_webhook(user_id, url)
        uow.commit()
    return settings(services, user_id)


def login(services: Services, email: str, password: str) -> tuple[str, int]:
    """A session token for valid credentials; raises ``Unauthorized`` otherwise."""
    with services.uow() as uow:
        user = uow.users.by_email(email.strip().lower())
    if user is None:
        auth.verify_password(auth.dummy_hash(), password)
        raise Unauthorized("wrong email or password")
    if not auth.verify_password(user.password_hash, password):
        raise Unauthorized("wrong email or password")
    return session_token(services, user)


def session_token(services: Services, user: User) -> tuple[str, int]:
    return auth.issue_token(
        services.config.jwt_secret, subject=user.id, ttl=services.config.token_ttl, email=user.email
    )


def authenticate(services: Services, authorization: str | None) -> dict[str, Any]:
    """Claims of the session token in an ``Authorization`` header; raises ``Unauthorized``."""
    token = auth.bearer_token(authorization)
    return auth.verify_token(services.config.jwt_secret, token)


LOCAL_EMAIL = "me@localhost.localdomain"


def local_user(services: Services) -> User:
    """The single user of the command line in embedded mode, created on first use."""
    with services.uow() as uow:
        user = uow.users.by_email(LOCAL_EMAIL)
    if user is None:
        try:
            user = register(services, LOCAL_EMAIL, uuid.uuid4().hex)
        except Conflict:
            with services.uow() as uow:
                user = uow.users.by_email(LOCAL_EMAIL)
    assert user is not None
    return user
