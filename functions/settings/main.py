"""settings: my account's settings (Bearer).

GET /  → {email, webhook_url, webhook_secret, webhook_signature_header}
PUT /  {"webhook_url": "https://..."} or {"webhook_url": null} to remove it → the same
"""

import flask
import functions_framework

from vid2mp3 import entrypoints, users
from vid2mp3.errors import NotFound


@functions_framework.http
@entrypoints.http_errors
def settings(request: flask.Request) -> flask.Response:
    entrypoints.require_method(request, "GET", "PUT")
    if request.path.strip("/"):
        raise NotFound(f"no such endpoint: {request.method} {request.path}")
    services = entrypoints.services()
    user_id = users.authenticate(services, request.headers.get("Authorization"))["sub"]
    if request.method == "PUT":
        body = entrypoints.json_body(request)
        return entrypoints.json_response(users.update_settings(services, user_id, body))
    return entrypoints.json_response(users.settings(services, user_id))
