"""Passwords (argon2id) and tokens (JWT, HS256).

Two kinds of token share the secret and are told apart by ``scope``: a session token
(``scope=user``, 24 h) and an upload token (``scope=upload``, bound to one job, short-lived).
"""

from __future__ import annotations

import functools
import time
from typing import Any

from vid2mp3.errors import Unauthorized

ALGORITHM = "HS256"
USER_SCOPE = "user"
UPLOAD_SCOPE = "upload"


@functools.cache
def _hasher() -> Any:
    from argon2 import PasswordHasher

    return PasswordHasher()  # argon2id with the library's current recommended parameters


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# A fixed hash to verify against when the email is unknown, so a login for an unknown user takes
# as long as one with a wrong password (no user enumeration by timing).
@functools.cache
def dummy_hash() -> str:
    return hash_password("not-a-real-password")


def issue_token(
    secret: str, *, subject: str, ttl: int, scope: str = USER_SCOPE, **claims: Any
) -> tuple[str, int]:
    """Sign a token; returns ``(token, expires_at)`` with ``expires_at`` in Unix seconds."""
    import jwt

    now = int(time.time())
    expires_at = now + ttl
    payload = {"sub": subject, "iat": now, "exp": expires_at, "scope": scope, **claims}
    return jwt.encode(payload, secret, algorithm=ALGORITHM), expires_at


def verify_token(secret: str, token: str, *, scope: str = USER_SCOPE) -> dict[str, Any]:
    """Claims of a valid token of ``scope``; raises ``Unauthorized`` saying why not.

    Only HS256 is accepted, so ``alg: none`` and algorithm-confusion tokens are refused.
    """
    import jwt

    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["exp", "sub", "iat"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("token expired; sign in again") from None
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"invalid token: {exc}") from None
    if claims.get("scope") != scope:
        raise Unauthorized(f"token is not valid for this call (scope {claims.get('scope')!r})")
    return claims


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer`` header; raises ``Unauthorized``."""
    if not authorization:
        raise Unauthorized("missing Authorization header (expected 'Bearer <token>')")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("malformed Authorization header (expected 'Bearer <token>')")
    return token.strip()
