"""account: my account's own calls.

POST   /password  {current_password, new_password} (Bearer) → 200 {token, expires_at}; every
                  token issued before is refused from now on
DELETE /          with the password: HTTP Basic (email, password), or Bearer and
                  {"password": "..."} → 204; the account, its jobs and their files are gone
"""

import flask
import functions_framework

from vid2mp3 import accounts, entrypoints, throttle, users
from vid2mp3.errors import MethodNotAllowed, NotFound


@functions_framework.http
@entrypoints.http_errors
def account(request: flask.Request) -> flask.Response:
    services = entrypoints.services()
    route = (request.method, request.path.strip("/"))
    client = throttle.client_address(services.config, request.remote_addr, request.headers)
    if route == ("POST", "password"):
        user_id = users.authenticate(services, request.headers.get("Authorization"))["sub"]
        body = entrypoints.json_body(request)
        token, expires_at = accounts.change_password(
            services,
            user_id,
            body.get("current_password"),
            body.get("new_password"),
            client=client,
        )
        return entrypoints.json_response({"token": token, "expires_at": expires_at})
    if route == ("DELETE", ""):
        credentials = entrypoints.authorization(request)
        if credentials is not None and credentials.type == "basic" and credentials.username:
            accounts.delete_with_credentials(
                services, credentials.username, credentials.password or "", client=client
            )
        else:
            user_id = users.authenticate(services, request.headers.get("Authorization"))["sub"]
            password = entrypoints.json_body(request).get("password")
            accounts.delete(services, user_id, password, client=client)
        return flask.Response(status=204)
    if route[1] in ("", "password"):
        raise MethodNotAllowed(f"{request.method} is not allowed on {request.path}")
    raise NotFound(f"no such endpoint: {request.method} {request.path}")
