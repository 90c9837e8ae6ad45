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


class UnsupportedMedia(PermanentError):
    """The file is not a video/audio we accept (no audio, wrong container, damaged)."""

    status = 422


class TransientError(Vid2mp3Error):
    """Try again later: a backend is down, or another worker holds the job."""

    status = 503


class ServiceFault(TransientError):
    """Our side failed (disk full, temp folder unwritable, storage down): never the user's file.

    The message says what failed in words a user may read; it never names an internal path.
    """


class ConfigError(Vid2mp3Error):
    """A setting is missing or wrong; the message names the key."""

    status = 500


class MethodNotAllowed(PermanentError):
    status = 405


class CommandError(Vid2mp3Error):
    """A command-line mistake or failure, told to the user in one line."""

    status = 400
