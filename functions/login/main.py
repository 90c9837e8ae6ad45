"""login: POST with HTTP Basic auth → 200 {token, expires_at}."""

import flask
import functions_framework

from vid2mp3 import entrypoints, users
from vid2mp3.errors import Unauthorized


@functions_framework.http
@entrypoints.http_errors(challenge="Basic")
def login(request: flask.Request) -> flask.Response:
    entrypoints.require_method(request, "POST")
    credentials = request.authorization
    if credentials is None or credentials.type != "basic" or not credentials.username:
        raise Unauthorized("send your email and password with HTTP Basic auth")
    token, expires_at = users.login(
        entrypoints.services(), credentials.username, credentials.password or ""
    )
    return entrypoints.json_response({"token": token, "expires_at": expires_at})
