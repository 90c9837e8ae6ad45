"""The languages Whisper knows, by the codes it uses (ISO 639-1, plus ``haw`` and ``yue``).

Kept here so the upload door can check a requested language without importing the model's
libraries (the HTTP functions' images do not carry them). ``tests/test_transcribe.py`` checks
the list against faster-whisper's own.
"""

from __future__ import annotations

from vid2mp3.errors import InvalidInput

WHISPER_LANGUAGES: frozenset[str] = frozenset(
    (
        "af",
        "am",
        "ar",
        "as",
        "az",
        "ba",
        "be",
        "bg",
        "bn",
        "bo",
        "br",
        "bs",
        "ca",
        "cs",
        "cy",
        "da",
        "de",
        "el",
        "en",
        "es",
        "et",
        "eu",
        "fa",
        "fi",
        "fo",
        "fr",
        "gl",
        "gu",
        "ha",
        "haw",
        "he",
        "hi",
        "hr",
        "ht",
        "hu",
        "hy",
        "id",
        "is",
        "it",
        "ja",
        "jw",
        "ka",
        "kk",
        "km",
        "kn",
        "ko",
        "la",
        "lb",
        "ln",
        "lo",
        "lt",
        "lv",
        "mg",
        "mi",
        "mk",
        "ml",
        "mn",
        "mr",
        "ms",
        "mt",
        "my",
        "ne",
        "nl",
        "nn",
        "no",
        "oc",
        "pa",
        "pl",
        "ps",
        "pt",
        "ro",
        "ru",
        "sa",
        "sd",
        "si",
        "sk",
        "sl",
        "sn",
        "so",
        "sq",
        "sr",
        "su",
        "sv",
        "sw",
        "ta",
        "te",
        "tg",
        "th",
        "tk",
        "tl",
        "tr",
        "tt",
        "uk",
        "ur",
        "uz",
        "vi",
        "yi",
        "yo",
        "zh",
        "yue",
    )
)


def check(code: object) -> str | None:
    """``code`` as a known language code (lower case), ``None`` for none; ``InvalidInput``
    naming what to send otherwise."""
    if code is None or (isinstance(code, str) and not code.strip()):
        return None
    if isinstance(code, str) and code.strip().lower() in WHISPER_LANGUAGES:
        return code.strip().lower()
    raise InvalidInput(
        f"language {str(code)[:20]!r} is not one the transcriber knows: use an ISO 639-1 "
        "code such as en, de, fr or es, or leave it out to detect the language"
    )
