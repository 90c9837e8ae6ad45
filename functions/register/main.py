"""register: POST {email, password[, webhook_url]} → 201 {id, email[, webhook_url]}; a weak
password is a 400 that says why, and too many taken emails from one address a 429."""

import flask
import functions_framework

from vid2mp3 import entrypoints, throttle, users


@functions_framework.http
@entrypoints.http_errors
def register(request: flask.Request) -> flask.Response:
    entrypoints.require_method(request, "POST")
    body = entrypoints.json_body(request)
    services = entrypoints.services()
    user = users.register(
        services,
        body.get("email"),
        body.get("password"),
        body.get("webhook_url"),
        client=throttle.client_address(services.config, request.remote_addr, request.headers),
    )
    answer = {"id": user.id, "email": user.email}
    if user.webhook_url:
        # The signing secret comes back with the webhook, so the first delivery can be verified.
        answer.update(users.settings(services, user.id))
    return entrypoints.json_response(answer, 201)
