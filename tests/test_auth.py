"""Passwords and tokens."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from vid2mp3 import auth
from vid2mp3.errors import Unauthorized

SECRET = "s" * 48


def test_password_hash_is_argon2id_and_verifies() -> None:
    hashed = auth.hash_password("correct horse")
    assert hashed.startswith("$argon2id$")
    assert auth.verify_password(hashed, "correct horse")
    assert not auth.verify_password(hashed, "wrong horse")
    assert not auth.verify_password("not a hash", "correct horse")


def test_token_round_trip_carries_subject_and_24h_expiry() -> None:
    token, expires_at = auth.issue_token(SECRET, subject="u1", ttl=86400)
    claims = auth.verify_token(SECRET, token)
    assert claims["sub"] == "u1"
    assert claims["exp"] == expires_at
    assert abs(expires_at - time.time() - 86400) < 5
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_expired_token_is_refused() -> None:
    token, _ = auth.issue_token(SECRET, subject="u1", ttl=1)
    payload = jwt.decode(token, SECRET, algorithms=["HS256"])
    payload["exp"] = int(time.time()) - 10
    with pytest.raises(Unauthorized, match="expired"):
        auth.verify_token(SECRET, jwt.encode(payload, SECRET, algorithm="HS256"))


def test_tampered_and_foreign_tokens_are_refused() -> None:
    token, _ = auth.issue_token(SECRET, subject="u1", ttl=60)
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(Unauthorized):
        auth.verify_token(SECRET, f"{header}.{forged}.{signature}")
    other, _ = auth.issue_token("another-secret-" * 3, subject="u1", ttl=60)
    with pytest.raises(Unauthorized):
        auth.verify_token(SECRET, other)


def test_alg_none_is_refused() -> None:
    def b64(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    now = int(time.time())
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64({'sub': 'u1', 'iat': now, 'exp': now + 60, 'scope': 'user'})}."
    with pytest.raises(Unauthorized):
        auth.verify_token(SECRET, unsigned)


def test_upload_token_is_not_a_session_token() -> None:
    token, _ = auth.issue_token(SECRET, subject="u1", ttl=60, scope=auth.UPLOAD_SCOPE, job="j1")
    with pytest.raises(Unauthorized, match="scope"):
        auth.verify_token(SECRET, token)
    assert auth.verify_token(SECRET, token, scope=auth.UPLOAD_SCOPE)["job"] == "j1"


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer", "Bearer   ", "token abc"])
def test_bearer_header_must_be_well_formed(header: str | None) -> None:
    with pytest.raises(Unauthorized):
        auth.bearer_token(header)
