"""register: POST {email, password} → 201 {id, email}."""

import flask
import functions_framework

from vid2mp3 import entrypoints, users


@functions_framework.http
@entrypoints.http_errors
def register(request: flask.Request) -> flask.Response:
    entrypoints.require_method(request, "POST")
    body = entrypoints.json_body(request)
    user = users.register(entrypoints.services(), body.get("email"), body.get("password"))
    return entrypoints.json_response({"id": user.id, "email": user.email}, 201)
