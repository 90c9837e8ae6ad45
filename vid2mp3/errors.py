"""One root exception; each subclass says how the edge answers it.

The HTTP edge maps an error to ``status`` and ``{"error": message}`` by walking the MRO
(``vid2mp3.entrypoints``); anything that is not a ``Vid2mp3Error`` is a bug and becomes a 500.
In event handlers, a ``PermanentError`` fails the job; a ``TransientError`` is re-raised so the
broker delivers the event again.
"""


class Vid2mp3Error(Exception):
    """Root of every error the library raises on purpose."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PermanentError(Vid2mp3Error):
    """Retrying cannot help: the input or the request is wrong."""

    status = 400


class InvalidInput(PermanentError):
    status = 400


class Unauthorized(PermanentError):
    """The caller did not prove who they are (the door's ``WWW-Authenticate`` challenge says
    how: ``entrypoints.http_errors(challenge=...)``)."""

    status = 401


class Forbidden(PermanentError):
    status = 403


class NotFound(PermanentError):
    status = 404


class Conflict(PermanentError):
    status = 409


class PayloadTooLarge(PermanentError):
    status = 413


class TooManyRequests(Vid2mp3Error):
    """Too many failed attempts: refused until ``retry_after`` seconds have passed (the edge
    sends it as ``Retry-After``)."""

    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UnsupportedMedia(PermanentError):
    """The file is not a video/audio we accept (no audio, wrong container, damaged)."""

    status = 422


class MediaTooLong(PayloadTooLarge):
    """The file's audio runs past the service's limits (``MAX_DURATION_SECONDS``, or the MP3
    size its stated duration allows): the file's doing, so never retried."""


class SourceChanged(Conflict):
    """The stored upload is no longer the object ``complete`` checked (it was overwritten)."""


class TransientError(Vid2mp3Error):
    """Try again later: a backend is down, or another worker holds the job."""

    status = 503


class ServiceFault(TransientError):
    """Our side failed (disk full, temp folder unwritable, storage down): never the user's file.

    The message says what failed in words a user may read; it never names an internal path.
    """


class SpeechModelUnavailable(ServiceFault):
    """The speech model cannot be used: its files are missing, fail their pinned checksums, or
    could not be downloaded. The service's fault, never the file's; the message says what an
    operator must do (the log line beside it names the folder)."""


class ConfigError(Vid2mp3Error):
    """A setting is missing or wrong; the message names the key."""

    status = 500


class MethodNotAllowed(PermanentError):
    status = 405


class CommandError(Vid2mp3Error):
    """A command-line mistake or failure, told to the user in one line."""

    status = 400
