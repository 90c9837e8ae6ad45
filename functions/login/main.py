"""login: POST with HTTP Basic auth → 200 {token, expires_at}; 429 with Retry-After after too
many failures for the email or from the client's address."""

import flask
import functions_framework

from vid2mp3 import entrypoints, throttle, users
from vid2mp3.errors import Unauthorized


@functions_framework.http
@entrypoints.http_errors(challenge="Basic")
def login(request: flask.Request) -> flask.Response:
    entrypoints.require_method(request, "POST")
    credentials = entrypoints.authorization(request)
    if credentials is None or credentials.type != "basic" or not credentials.username:
        raise Unauthorized("send your email and password with HTTP Basic auth")
    services = entrypoints.services()
    token, expires_at = users.login(
        services,
        credentials.username,
        credentials.password or "",
        client=throttle.client_address(services.config, request.remote_addr, request.headers),
    )
    return entrypoints.json_response({"token": token, "expires_at": expires_at})
