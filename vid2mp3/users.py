"""Sign-up, sign-in, and the one check every token a request carries goes through."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

from vid2mp3 import auth, passwords, throttle, webhooks
from vid2mp3.errors import Conflict, InvalidInput, NotFound, Unauthorized
from vid2mp3.model import User
from vid2mp3.services import Services

#: Where attempts from this process's own command line count (no network address).
LOCAL_CLIENT = "local"
_EMAIL = re.compile(
    r"^[^@\s]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*$"
)


def normalize_email(email: Any) -> str:
    if not isinstance(email, str) or not _EMAIL.match(email.strip()) or len(email) > 254:
        raise InvalidInput("email must be a valid address like name@example.com")
    return email.strip().lower()


def register(
    services: Services,
    email: Any,
    password: Any,
    webhook_url: Any = None,
    *,
    client: str = LOCAL_CLIENT,
) -> User:
    """Create a user, with an optional webhook; raises ``InvalidInput`` (bad email, weak
    password, bad webhook URL), ``Conflict`` (taken) or ``TooManyRequests`` (``client``, an
    address, was told "taken" too often lately)."""
    email = normalize_email(email)
    passwords.check(password, email=email)
    webhook = _webhook(services, webhook_url)
    attempt = throttle.begin(services, {throttle.SIGNUP_ADDRESS: client})
    user = User(
        id=str(uuid.uuid4()),
        email=email,
        password_hash=auth.hash_password(password),
        created_at=time.time(),
        webhook_url=webhook,
    )
    with services.uow() as uow:
        added = uow.users.add(user)
        if added:
            uow.commit()
    if not added:
        # Counted: each of these answers tells the caller that an account exists.
        raise Conflict(f"an account for {email} already exists")
    throttle.succeeded(services, attempt)
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


def login(
    services: Services, email: str, password: str, *, client: str = LOCAL_CLIENT
) -> tuple[str, int]:
    """A session token for valid credentials; raises ``Unauthorized`` otherwise, and
    ``TooManyRequests`` after too many failures for this email or from ``client``."""
    return session_token(services, verified(services, email, password, client=client))


def verified(services: Services, email: str, password: str, *, client: str) -> User:
    """The user these credentials belong to, throttled like a sign-in (the email and the
    client's address); raises ``Unauthorized`` or ``TooManyRequests``."""
    email = email.strip().lower()
    attempt = throttle.begin(
        services, {throttle.LOGIN_ACCOUNT: email, throttle.LOGIN_ADDRESS: client}
    )
    with services.uow() as uow:
        user = uow.users.by_email(email)
    if user is None:
        auth.verify_password(auth.dummy_hash(), password)
        raise Unauthorized("wrong email or password")
    if not auth.verify_password(user.password_hash, password):
        raise Unauthorized("wrong email or password")
    throttle.succeeded(services, attempt)
    return user


def session_token(services: Services, user: User) -> tuple[str, int]:
    """A session token of ``user``'s current session generation."""
    return auth.issue_token(
        services.config.jwt_secret,
        subject=user.id,
        ttl=services.config.token_ttl,
        email=user.email,
        gen=user.session_generation,
    )


def authenticate(services: Services, authorization: str | None) -> dict[str, Any]:
    """Claims of the session token in an ``Authorization`` header, if its account still exists
    and its password has not changed since; raises ``Unauthorized``."""
    token = auth.bearer_token(authorization)
    return current(services, auth.verify_token(services.config.jwt_secret, token))


def current(services: Services, claims: Mapping[str, Any]) -> dict[str, Any]:
    """``claims`` of a verified token (session or upload), if they still speak for a user:
    the account exists and, for a session, it is of the account's current generation (a
    password change ends older ones). One primary-key lookup. Raises ``Unauthorized``."""
    with services.uow() as uow:
        generation = uow.users.session_generation(str(claims["sub"]))
    if generation is None:
        raise Unauthorized("this account no longer exists; sign up or sign in with another")
    # Tokens from before generations existed carry none: they are of generation 0.
    if claims.get("scope") == auth.USER_SCOPE and claims.get("gen", 0) != generation:
        raise Unauthorized("the password was changed since this token was issued; sign in again")
    return dict(claims)


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
