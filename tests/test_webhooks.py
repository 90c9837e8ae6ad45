"""Per-user webhooks: set at register or through ``settings``, signed, private targets refused,
delivered once per (job, kind) through the real pipeline to a receiver on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api, binary_event, make_config
from tests.fixtures.receiver import Receiver
from vid2mp3 import bootstrap, events, outbound, triggers, webhooks
from vid2mp3.bus.memory import MemoryBus
from vid2mp3.services import Services

pytest_plugins = ["tests.fixtures.receiver"]


@pytest.fixture
def services(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Services]:
    """Embedded services that allow webhooks to 127.0.0.1 unless the test parametrizes
    ``services`` indirectly with other settings (overrides conftest's)."""
    env = {"ALLOW_PRIVATE_WEBHOOKS": "1", **getattr(request, "param", {})}
    svc = bootstrap.build(make_config(tmp_path / "home", **env))
    bootstrap.install(svc)
    yield svc
    bootstrap.install(None)
    svc.db.close()


no_private = pytest.mark.parametrize("services", [{"ALLOW_PRIVATE_WEBHOOKS": "0"}], indirect=True)


def register(api: Api, email: str, webhook_url: Any) -> Any:
    return api.call(
        "register",
        "POST",
        json={"email": email, "password": "correct horse", "webhook_url": webhook_url},
    )


def login(api: Api, email: str) -> dict[str, str]:
    response = api.call("login", "POST", auth=(email, "correct horse"))
    assert response.status_code == 200, response.get_json()
    return {"Authorization": f"Bearer {response.get_json()['token']}"}


def outbox_count(services: Services) -> int:
    return len(list((services.config.home / "outbox").glob("*.eml")))


def test_each_event_is_posted_once_in_binary_mode_and_signed(
    make_video: Any,
    api: Api,
    apps: dict[str, Any],
    bus: MemoryBus,
    services: Services,
    receiver: Receiver,
) -> None:
    created = register(api, "ada@example.com", receiver.url)
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["webhook_url"] == receiver.url
    secret = created.get_json()["webhook_secret"]
    auth = login(api, "ada@example.com")
    assert api.call("settings", "GET", headers=auth).get_json()["webhook_secret"] == secret
    job_id = api.upload(auth["Authorization"].removeprefix("Bearer "), make_video("mp4"))
    bus.run_until_idle()

    # What notify receives (audio.transcribed goes to summarize only).
    sent = [e for e in bus.published if e.type in triggers.TRIGGERS["notify"]]
    assert [e.type for e in sent] == [events.AUDIO_CONVERTED, events.AUDIO_SUMMARIZED]
    assert [h.headers["ce-id"] for h in receiver.hits] == [e.id for e in sent]
    for hit, event in zip(receiver.hits, sent, strict=True):
        assert hit.path == "/hooks/vid2mp3?token=abc"
        assert hit.headers["ce-type"] == event.type
        assert hit.headers["ce-subject"] == job_id
        assert hit.headers["ce-specversion"] == "1.0"
        assert hit.headers["content-type"] == "application/json"
        assert json.loads(hit.body) == event.data
        # The platform's own signature stays inside; the user's secret signs the webhook.
        assert event.signature and "ce-vid2mp3signature" not in hit.headers
        expected = hmac.new(secret.encode(), hit.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(hit.headers["x-vid2mp3-signature"], f"sha256={expected}")
    # Another user's secret does not verify: the secret is per user.
    other = webhooks.secret_for(services.config, "someone-else")
    forged = hmac.new(other.encode(), receiver.hits[0].body, hashlib.sha256).hexdigest()
    assert receiver.hits[0].headers["x-vid2mp3-signature"] != f"sha256={forged}"

    for event in sent * 2:
        response = apps["notify"].test_client().post("/", **binary_event(event))
        assert response.status_code == 200
    assert len(receiver.hits) == 2
    assert outbox_count(services) == 1  # the ready email, still once


def test_a_5xx_is_retried_and_still_delivered_once(
    make_video: Any, api: Api, bus: MemoryBus, services: Services, receiver: Receiver
) -> None:
    receiver.statuses.extend([503])
    register(api, "bob@example.com", receiver.url)
    token = login(api, "bob@example.com")["Authorization"].removeprefix("Bearer ")
    api.upload(token, make_video("mp4"))
    bus.run_until_idle()

    # The retry comes after a backoff, so the summary's call may overtake it.
    types = sorted(h.headers["ce-type"] for h in receiver.hits)
    assert types == [events.AUDIO_CONVERTED, events.AUDIO_CONVERTED, events.AUDIO_SUMMARIZED]
    assert receiver.hits[0].headers["ce-type"] == events.AUDIO_CONVERTED
    assert bus.dead_letters == []
    assert outbox_count(services) == 1  # the redelivered notify event did not email again


def test_a_refusal_for_good_is_not_retried(
    make_video: Any, api: Api, bus: MemoryBus, services: Services, receiver: Receiver
) -> None:
    receiver.always = 410
    register(api, "cy@example.com", receiver.url)
    token = login(api, "cy@example.com")["Authorization"].removeprefix("Bearer ")
    job_id = api.upload(token, make_video("mp4"))
    bus.run_until_idle()

    assert len(receiver.hits) == 2  # one try per event
    assert bus.dead_letters == []
    assert api.job(token, job_id)["state"] == "completed"


BAD_URLS = [
    ("http://localhost:8080/hook", "private"),
    ("http://169.254.169.254/latest/meta-data", "private"),
    ("http://[::1]/hook", "private"),
    ("http://[::ffff:127.0.0.1]/hook", "private"),
    ("http://10.1.2.3/hook", "private"),
    ("http://100.64.0.1/hook", "private"),
    ("http://0.0.0.0/hook", "private"),
    ("http://[64:ff9b::7f00:1]/hook", "private"),
    ("http://[::127.0.0.1]/hook", "private"),
    ("http://[2002:7f00:1::]/hook", "private"),
    ("ftp://93.184.216.34/hook", "http"),
    ("http://user:pw@93.184.216.34/hook", "password"),
    ("http:///no-host", "host"),
    ("http://93.184.216.34:99999/", "port"),
    ("https://example.com/a b", "spaces"),
    ("https://no-such-host.invalid/hook", "resolved"),
    (42, "URL"),
]


@no_private
def test_bad_or_private_targets_are_refused_when_set(api: Api, services: Services) -> None:
    assert api.register("dee@example.com").status_code == 201
    auth = login(api, "dee@example.com")
    for url, words in BAD_URLS:
        response = register(api, "dee2@example.com", url)
        assert response.status_code == 400, url
        assert words in response.get_json()["error"], (url, response.get_json())
        response = api.call("settings", "PUT", json={"webhook_url": url}, headers=auth)
        assert response.status_code == 400, url
        assert words in response.get_json()["error"], (url, response.get_json())
    # A public address is fine (an IP literal: no DNS needed in the test).
    public = "https://93.184.216.34/hook"
    response = api.call("settings", "PUT", json={"webhook_url": public}, headers=auth)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["webhook_url"] == public


@no_private
def test_loopback_receiver_is_refused_without_the_flag(
    api: Api, services: Services, receiver: Receiver
) -> None:
    response = register(api, "eve@example.com", receiver.url)
    assert response.status_code == 400
    assert "private" in response.get_json()["error"]


@no_private
def test_a_private_target_stored_earlier_is_refused_at_send_time(
    make_video: Any, api: Api, bus: MemoryBus, services: Services, receiver: Receiver
) -> None:
    token = api.token("fay@example.com")
    with services.uow() as uow:
        user = uow.users.by_email("fay@example.com")
        assert user is not None
        # As if it had been set while ALLOW_PRIVATE_WEBHOOKS=1, or its DNS changed since.
        uow.users.set_webhook(user.id, receiver.url)
        uow.commit()
    job_id = api.upload(token, make_video("mp4"))
    bus.run_until_idle()

    assert receiver.hits == []
    assert bus.dead_letters == []
    assert api.job(token, job_id)["state"] == "completed"
    assert outbox_count(services) == 1


def test_settings_show_set_and_clear_the_webhook(
    api: Api, services: Services, receiver: Receiver
) -> None:
    api.register("gus@example.com")
    auth = login(api, "gus@example.com")
    mine = api.call("settings", "GET", headers=auth)
    assert mine.status_code == 200
    assert mine.get_json()["email"] == "gus@example.com"
    assert mine.get_json()["webhook_url"] is None
    assert mine.get_json()["webhook_signature_header"] == "X-Vid2mp3-Signature"

    put = api.call("settings", "PUT", json={"webhook_url": receiver.url}, headers=auth)
    assert put.status_code == 200, put.get_json()
    assert api.call("settings", "GET", headers=auth).get_json()["webhook_url"] == receiver.url
    # Setting the same URL again is fine (MySQL reports no changed row for it).
    put = api.call("settings", "PUT", json={"webhook_url": receiver.url}, headers=auth)
    assert put.status_code == 200
    cleared = api.call("settings", "PUT", json={"webhook_url": None}, headers=auth)
    assert cleared.status_code == 200
    assert cleared.get_json()["webhook_url"] is None

    assert api.call("settings", "PUT", json={}, headers=auth).status_code == 400
    unknown = api.call("settings", "PUT", json={"theme": "dark"}, headers=auth)
    assert unknown.status_code == 400
    assert "theme" in unknown.get_json()["error"]
    assert api.call("settings", "PUT", data="nope", headers=auth).status_code == 400
    assert api.call("settings", "GET").status_code == 401
    assert api.call("settings", "POST", json={}, headers=auth).status_code == 405
    assert api.call("settings", "GET", "/other", headers=auth).status_code == 404


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fc00::1", False),
        ("::ffff:10.0.0.1", False),
        # IPv6 forms that carry an IPv4 address are judged by it (issue 10 point 8).
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("64:ff9b:1::a00:1", False),  # local-use NAT64 of 10.0.0.1
        ("::127.0.0.1", False),  # IPv4-compatible
        ("::0.0.0.2", False),
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", False),  # Teredo, client 127.0.0.1
        ("64:ff9b::5db8:d822", True),  # NAT64 of 93.184.216.34
        ("2002:5db8:d822::1", True),
        ("2001:0:4136:e378:8000:63bf:a247:27dd", True),  # Teredo, client 93.184.216.34
        ("::ffff:93.184.216.34", True),
        ("::", False),
    ],
)
def test_address_classes(address: str, public: bool) -> None:
    assert outbound.is_public(address) is public


def test_signature_is_hmac_sha256_of_the_body() -> None:
    body = b'{"job_id":"j"}'
    expected = hmac.new(b"secret", body, hashlib.sha256).hexdigest()
    assert webhooks.signature("secret", body) == f"sha256={expected}"
