"""What a new password must be: 8 to 1024 characters of text, not among the common ones.

Strength is judged by zxcvbn (Dropbox's estimator, the ``zxcvbn`` package on PyPI): it ships
frequency lists of the most common leaked passwords, English words, names and TV/film words,
and recognizes repeats, sequences, keyboard walks and dates. A password it estimates at fewer
than 10^6 guesses (score 0 or 1: "too guessable") is refused. Only the first 72 characters
are judged (the library's bound on its running time); argon2 hashes the whole password.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from typing import Any

from vid2mp3.errors import InvalidInput

MIN_LENGTH = 8
MAX_LENGTH = 1024  # argon2 hashes anything, but an unbounded body is a cheap DoS
#: zxcvbn's score from which a password is accepted (2: "somewhat guessable", >= 10^6 guesses).
MIN_SCORE = 2
#: A local part this short ("me", "ada") is too common a string to forbid inside a password.
_MIN_LOCAL_PART = 4
_JUDGED_LENGTH = 72
_ADVICE = "choose a longer one, for example three or four unrelated words"
# zxcvbn keeps the caller's words in a module-level dictionary while it runs: one at a time.
_zxcvbn_lock = threading.Lock()


def check(password: Any, *, email: str) -> None:
    """Refuse a ``password`` that may not protect the account of ``email`` (normalized):
    raises ``InvalidInput`` saying what is wrong and what would do."""
    if not isinstance(password, str) or len(password) < MIN_LENGTH:
        raise InvalidInput(f"password must be at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise InvalidInput(f"password must be at most {MAX_LENGTH} characters")
    if not password.strip():
        raise InvalidInput("password must not be only spaces")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in password):
        # NUL, tabs, newlines and lone surrogates: nobody types them, and some clients and
        # libraries cut or reject them, which would lock the owner out.
        raise InvalidInput(
            "password must not contain control characters (such as NUL, tab or newline)"
        )
    local_part = email.partition("@")[0].lower()
    # "ada.lovelace" is in "AdaLovelace!" too: compare without the separators people drop.
    names = {local_part, re.sub(r"[._+-]", "", local_part)}
    lowered = password.lower()
    if lowered == email or any(len(n) >= _MIN_LOCAL_PART and n in lowered for n in names):
        raise InvalidInput("password must not contain your email address or its name part")
    _check_strength(password, [email, *names, *re.split(r"[._+-]", local_part)])


def _check_strength(password: str, user_inputs: list[str]) -> None:
    from zxcvbn import zxcvbn

    with _zxcvbn_lock:
        result = zxcvbn(password[:_JUDGED_LENGTH], user_inputs=user_inputs)
    if result["score"] >= MIN_SCORE:
        return
    if _is_common(result):
        raise InvalidInput(f"this password is among the most common ones; {_ADVICE}")
    warning = result["feedback"]["warning"].rstrip(".")
    reason = f" ({warning[:1].lower()}{warning[1:]})" if warning else ""
    raise InvalidInput(f"this password is too easy to guess{reason}; {_ADVICE}")


def _is_common(result: dict[str, Any]) -> bool:
    """True when the whole password is one entry of zxcvbn's list of leaked passwords."""
    sequence = result["sequence"]
    return len(sequence) == 1 and sequence[0].get("dictionary_name") == "passwords"
