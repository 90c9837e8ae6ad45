"""jobs: my jobs, one job, receive its upload, complete it, download its MP3.

GET  /            my jobs, newest first
GET  /<id>        one job (status, progress, error, MP3 and summary fields)
PUT  /<id>/upload the video bytes (upload token or Bearer), when storage takes them through here
POST /<id>/complete  verify the stored upload and start the conversion → 202
GET  /<id>/download  the MP3 (streamed, or a redirect to a presigned URL)
GET  /<id>/transcript?format=txt|srt|vtt|json  the transcript as a download (default txt)
DELETE /<id>      the job and its files → 204
"""

import flask
import functions_framework

from vid2mp3 import entrypoints, transcription, uploads, users
from vid2mp3 import jobs as job_lifecycle
from vid2mp3.errors import MethodNotAllowed, NotFound


@functions_framework.http
@entrypoints.http_errors
def jobs(request: flask.Request) -> flask.Response:
    services = entrypoints.services()
    parts = [p for p in request.path.split("/") if p]
    route = (request.method, len(parts), parts[1] if len(parts) > 1 else "")
    if route[0] == "PUT" and route[1:] == (2, "upload"):
        user_id = uploads.uploader(services, parts[0], request.headers.get("Authorization"))
        job = uploads.receive(
            services,
            parts[0],
            user_id,
            entrypoints.request_body(request),
            request.content_length,
        )
        return entrypoints.json_response(job.public())
    user_id = users.authenticate(services, request.headers.get("Authorization"))["sub"]
    if route == ("GET", 0, ""):
        return entrypoints.json_response(
            {"jobs": [j.public() for j in job_lifecycle.list_for(services, user_id)]}
        )
    if route == ("GET", 1, ""):
        return entrypoints.json_response(job_lifecycle.owned(services, parts[0], user_id).public())
    if route == ("POST", 2, "complete"):
        return entrypoints.json_response(
            uploads.complete(services, parts[0], user_id).public(), 202
        )
    if route == ("DELETE", 1, ""):
        job_lifecycle.delete(services, parts[0], user_id)
        return flask.Response(status=204)
    if route == ("GET", 2, "download"):
        download = job_lifecycle.download(services, parts[0], user_id)
        if download.url:
            return flask.redirect(download.url, 302)
        return entrypoints.stream_response(download.chunks(), download.headers)
    if route == ("GET", 2, "transcript"):
        fmt = request.args.get("format", "txt")
        body, headers = transcription.transcript_file(services, parts[0], user_id, fmt)
        return flask.Response(body, status=200, headers=headers)
    if len(parts) <= 2 and route[2] in ("", "upload", "complete", "download", "transcript"):
        raise MethodNotAllowed(f"{request.method} is not allowed on {request.path}")
    raise NotFound(f"no such endpoint: {request.method} {request.path}")
