"""Sign-up and sign-in."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from vid2mp3 import auth
from vid2mp3.errors import Conflict, InvalidInput, Unauthorized
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


def register(services: Services, email: Any, password: Any) -> User:
    """Create a user; raises ``InvalidInput`` (bad email/password) or ``Conflict`` (taken)."""
    email = normalize_email(email)
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise InvalidInput(f"password must be at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise InvalidInput(f"password must be at most {MAX_PASSWORD} characters")
    user = User(
        id=str(uuid.uuid4()),
        email=email,
        password_hash=auth.hash_password(password),
        created_at=time.time(),
    )
    with services.uow() as uow:
        if not uow.users.add(user):
            raise Conflict(f"an account for {email} already exists")
        uow.commit()
    return user


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
