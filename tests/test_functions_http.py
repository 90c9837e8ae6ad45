"""The HTTP functions through functions-framework's test client."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api
from vid2mp3 import auth
from vid2mp3.bus.memory import MemoryBus
from vid2mp3.services import Services


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def init(api: Api, token: str, **body: Any) -> Any:
    payload = {"filename": "talk.mp4", "size": 1000, "content_type": "video/mp4", **body}
    return api.call("upload-init", "POST", json=payload, headers=bearer(token))


# register / login / validate


def test_register_creates_a_user_once(api: Api) -> None:
    first = api.register("Ada@Example.com", "long enough")
    assert first.status_code == 201
    assert first.get_json()["email"] == "ada@example.com"
    again = api.register("ada@example.com", "long enough")
    assert again.status_code == 409
    assert "already exists" in again.get_json()["error"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"email": "not-an-email", "password": "long enough"}, "email"),
        ({"email": "a@example.com", "password": "short"}, "8 characters"),
        ({"email": "a@example.com"}, "password"),
        ({"email": ["a@example.com"], "password": "long enough"}, "email"),
    ],
)
def test_register_rejects_bad_input(api: Api, body: dict[str, Any], words: str) -> None:
    response = api.call("register", "POST", json=body)
    assert response.status_code == 400
    assert words in response.get_json()["error"]


@pytest.mark.parametrize("data", [b"", b"{not json", b"[1, 2]"])
def test_register_rejects_a_body_that_is_not_a_json_object(api: Api, data: bytes) -> None:
    response = api.call("register", "POST", data=data, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"]


def test_register_is_post_only(api: Api) -> None:
    response = api.call("register", "GET")
    assert response.status_code == 405
    assert "POST" in response.get_json()["error"]


def test_login_returns_a_token_for_the_right_password_only(api: Api) -> None:
    api.register("bob@example.com", "right password")
    ok = api.call("login", "POST", auth=("bob@example.com", "right password"))
    assert ok.status_code == 200
    body = ok.get_json()
    assert set(body) == {"token", "expires_at"}
    for credentials in [("bob@example.com", "wrong password"), ("nobody@example.com", "x" * 10)]:
        refused = api.call("login", "POST", auth=credentials)
        assert refused.status_code == 401
        assert refused.get_json() == {"error": "wrong email or password"}
    assert api.call("login", "POST").status_code == 401


def test_each_401_challenges_with_the_scheme_its_door_expects(api: Api) -> None:
    api.register("eve@example.com", "right password")
    for credentials in [("eve@example.com", "wrong password"), None]:
        refused = api.call("login", "POST", auth=credentials)
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == 'Basic realm="vid2mp3"'
    refused = api.call("validate", "POST", headers=bearer("a.b.c"))
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == 'Bearer realm="vid2mp3"'


def test_validate_returns_claims_or_401(api: Api, services: Services) -> None:
    token = api.token("cy@example.com")
    ok = api.call("validate", "POST", headers=bearer(token))
    assert ok.status_code == 200
    assert ok.get_json()["email"] == "cy@example.com"
    expired, _ = auth.issue_token(services.config.jwt_secret, subject="x", ttl=-10)
    for headers in [
        {},
        {"Authorization": "Bearer"},
        bearer("a.b.c"),
        bearer(token + "x"),
        bearer(expired),
    ]:
        response = api.call("validate", "POST", headers=headers)
        assert response.status_code == 401, headers
        assert response.get_json()["error"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


# upload-init


def test_upload_init_creates_a_job_and_says_how_to_upload(api: Api) -> None:
    token = api.token("dee@example.com")
    response = init(api, token, filename="../../etc/My Talk.mp4")
    assert response.status_code == 201
    body = response.get_json()
    upload = body["upload"]
    assert upload["method"] == "PUT"
    assert upload["url"] == f"http://testserver/function/jobs/{body['job_id']}/upload"
    assert upload["headers"]["Content-Type"] == "video/mp4"
    assert upload["headers"]["Authorization"].startswith("Bearer ")
    assert upload["expires_at"] > 0
    job = api.job(token, body["job_id"])
    assert job["filename"] == "My Talk.mp4"
    assert job["state"] == "awaiting_upload"


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"filename": "notes.txt", "content_type": "text/plain"}, 400, ".txt"),
        ({"filename": "clip.mp4", "content_type": "text/html"}, 400, "content type"),
        ({"size": 0}, 400, "size"),
        ({"size": "12"}, 400, "size"),
        ({"size": 3 * 1024**3}, 413, "limit"),
        ({"filename": "/"}, 400, "filename"),
        ({"options": {"bitrate": "1000k"}}, 400, "bitrate"),
        ({"options": {"bitrate": "128k", "quality": 2}}, 400, "either"),
        ({"options": {"quality": 12}}, 400, "quality"),
    ],
)
def test_upload_init_rejects_bad_uploads(
    api: Api, body: dict[str, Any], status: int, words: str
) -> None:
    token = api.token("eve@example.com")
    response = init(api, token, **body)
    assert response.status_code == status
    assert words in response.get_json()["error"]


def test_upload_init_needs_a_session_token(api: Api) -> None:
    response = api.call("upload-init", "POST", json={"filename": "a.mp4"})
    assert response.status_code == 401


# jobs


def test_jobs_are_private_and_newest_first(api: Api) -> None:
    ann, ben = api.token("ann@example.com"), api.token("ben@example.com")
    first = init(api, ann, filename="one.mp4").get_json()["job_id"]
    second = init(api, ann, filename="two.mp4").get_json()["job_id"]
    listed = api.call("jobs", "GET", "/", headers=bearer(ann)).get_json()["jobs"]
    assert [j["id"] for j in listed] == [second, first]
    assert api.call("jobs", "GET", "/", headers=bearer(ben)).get_json()["jobs"] == []
    for path in [f"/{first}", f"/{first}/download"]:
        response = api.call("jobs", "GET", path, headers=bearer(ben))
        assert response.status_code == 404
    assert api.call("jobs", "POST", f"/{first}/complete", headers=bearer(ben)).status_code == 404


def test_upload_checks_token_job_and_size(api: Api, services: Services) -> None:
    token = api.token("fay@example.com")
    one = init(api, token, size=5).get_json()
    two = init(api, token, size=5).get_json()
    # An upload token of one job does not open another.
    wrong = api.call(
        "jobs", "PUT", f"/{two['job_id']}/upload", data=b"12345", headers=one["upload"]["headers"]
    )
    assert wrong.status_code == 401
    short = api.call(
        "jobs", "PUT", f"/{one['job_id']}/upload", data=b"123", headers=one["upload"]["headers"]
    )
    assert short.status_code == 400
    assert "declared size" in short.get_json()["error"]
    early = api.call("jobs", "POST", f"/{one['job_id']}/complete", headers=bearer(token))
    assert early.status_code == 409
    ok = api.call(
        "jobs",
        "PUT",
        f"/{one['job_id']}/upload",
        input_stream=io.BytesIO(b"12345"),
        headers={**one["upload"]["headers"], "Content-Length": "5"},
    )
    assert ok.status_code == 200
    assert services.store.size(f"videos/{one['job_id']}/talk.mp4") == 5


def test_complete_twice_is_harmless_and_emits_once(
    api: Api, services: Services, make_video: Any
) -> None:
    token = api.token("gus@example.com")
    job_id = api.upload(token, make_video("mp4"))
    again = api.call("jobs", "POST", f"/{job_id}/complete", headers=bearer(token))
    assert again.status_code == 202
    assert again.get_json()["state"] == "uploaded"
    sink = services.sink
    assert isinstance(sink, MemoryBus)
    assert [e.type for e in sink.published] == ["io.vid2mp3.video.uploaded"]
    # No second upload once the video is in.
    late = api.call("jobs", "PUT", f"/{job_id}/upload", data=b"x", headers=bearer(token))
    assert late.status_code == 409


def test_download_before_ready_is_a_conflict(api: Api) -> None:
    token = api.token("hal@example.com")
    job_id = init(api, token).get_json()["job_id"]
    response = api.call("jobs", "GET", f"/{job_id}/download", headers=bearer(token))
    assert response.status_code == 409
    assert "not ready" in response.get_json()["error"]


def test_unknown_job_paths_are_404(api: Api) -> None:
    token = api.token("ivy@example.com")
    assert api.call("jobs", "GET", "/a/b/c", headers=bearer(token)).status_code == 404
    assert api.call("jobs", "DELETE", "/abc/complete", headers=bearer(token)).status_code == 405
    assert api.call("jobs", "DELETE", "/abc", headers=bearer(token)).status_code == 404


def test_delete_removes_a_finished_job_and_its_files(
    api: Api, services: Services, bus: MemoryBus, make_video: Any
) -> None:
    token, other = api.token("jo@example.com"), api.token("kim@example.com")
    job_id = api.upload(token, make_video("mp4"))
    refused = api.call("jobs", "DELETE", f"/{job_id}", headers=bearer(token))
    assert refused.status_code == 409  # still in flight
    bus.run_until_idle()
    job = api.job(token, job_id)
    with services.uow() as uow:
        stored = uow.jobs.get(job_id)
    assert stored is not None and stored.mp3_key
    assert api.call("jobs", "DELETE", f"/{job_id}", headers=bearer(other)).status_code == 404
    assert api.call("jobs", "DELETE", f"/{job_id}", headers=bearer(token)).status_code == 204
    assert api.call("jobs", "GET", f"/{job_id}", headers=bearer(token)).status_code == 404
    assert services.store.size(stored.video_key) is None
    assert services.store.size(stored.mp3_key) is None
    assert job["state"] == "completed"


def test_cors_is_off_by_default(api: Api, tmp_path: Path) -> None:
    response = api.call("register", "OPTIONS", headers={"Origin": "https://evil.example"})
    assert response.status_code == 204
    assert "Access-Control-Allow-Origin" not in response.headers
