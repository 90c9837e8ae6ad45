"""validate: POST with Authorization: Bearer → 200 with the token's claims, or 401 (also once
its account is deleted or its password changed: ``users.authenticate`` checks every time)."""

import flask
import functions_framework

from vid2mp3 import entrypoints, users


@functions_framework.http
@entrypoints.http_errors
def validate(request: flask.Request) -> flask.Response:
    entrypoints.require_method(request, "POST", "GET")
    claims = users.authenticate(entrypoints.services(), request.headers.get("Authorization"))
    return entrypoints.json_response(claims)
