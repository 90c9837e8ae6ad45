"""The web UI's static files as a WSGI app, for ``vid2mp3 up`` (``Gateway(apps, index=...)``).

The folder is flat and served by name only: the request path is looked up in the set of files
found in the folder, so no path (``..``, encoded slashes, symlinks out) can reach anything else.
Files carry no hash in their names (there is no build step), so every answer says ``no-cache``
with a strong ``ETag``: the browser revalidates each file and a new release shows at once, while
an unchanged file costs a ``304``. Production serves the same folder from any static host
(``docs/web-ui.md``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from vid2mp3.runtime.wsgi import json_response

STATIC_DIR = Path(__file__).with_name("static")

CONTENT_TYPES: dict[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".png": "image/png",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".txt": "text/plain; charset=utf-8",
}

# connect-src stays open because uploads and downloads may go straight to presigned storage URLs
# and the API may live on another origin; everything else is this origin only.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; connect-src *; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)

_SECURITY_HEADERS = [
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
]


class StaticSite:
    """WSGI app serving the files of one flat folder; ``/`` is ``index.html``.

    Args:
        folder: the folder to serve (default: the UI shipped in the package). Only regular
            files directly inside it with a known extension are served; the list is taken once,
            their contents are read on each request so edits show without a restart.
    """

    def __init__(self, folder: Path = STATIC_DIR) -> None:
        self.folder = folder
        self.files: dict[str, Path] = {
            p.name: p
            for p in sorted(folder.iterdir())
            if p.is_file() and not p.is_symlink() and p.suffix in CONTENT_TYPES
        }

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/")
        name = "index.html" if path == "/" else path.removeprefix("/")
        file = self.files.get(name)
        if file is None:
            return json_response(start_response, "404 Not Found", {"error": f"nothing at {path}"})
        if method not in ("GET", "HEAD"):
            return json_response(
                start_response,
                "405 Method Not Allowed",
                {"error": f"{method} is not allowed on {path}; use GET"},
                [("Allow", "GET, HEAD")],
            )
        body = file.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        headers = [
            ("ETag", etag),
            ("Cache-Control", "no-cache"),
            *_SECURITY_HEADERS,
        ]
        if etag in _etags(environ.get("HTTP_IF_NONE_MATCH", "")):
            start_response("304 Not Modified", headers)
            return [b""]
        headers += [
            ("Content-Type", CONTENT_TYPES[file.suffix]),
            ("Content-Length", str(len(body))),
        ]
        start_response("200 OK", headers)
        return [b"" if method == "HEAD" else body]


def create_app(folder: Path | None = None) -> StaticSite:
    """The web UI app for ``Gateway(apps, index=create_app())``."""
    return StaticSite(folder or STATIC_DIR)


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}
