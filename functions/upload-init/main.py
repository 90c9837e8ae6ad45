"""upload-init: POST {filename, size, content_type[, options]} → 201 {job_id, upload}."""

import flask
import functions_framework

from vid2mp3 import entrypoints, uploads, users


@functions_framework.http
@entrypoints.http_errors
def upload_init(request: flask.Request) -> flask.Response:
    entrypoints.require_method(request, "POST")
    services = entrypoints.services()
    claims = users.authenticate(services, request.headers.get("Authorization"))
    body = entrypoints.json_body(request)
    job, upload = uploads.create(
        services,
        claims["sub"],
        filename=body.get("filename"),
        size=body.get("size"),
        content_type=body.get("content_type"),
        options=body.get("options"),
    )
    return entrypoints.json_response({"job_id": job.id, "upload": upload.public()}, 201)
