"""The web UI end to end: the real server in a subprocess, driven by headless Chromium.

Needs Debian's ``chromium`` (``apt-get install chromium``) and the ``playwright`` package; the
browser Playwright would download is not used (``executable_path``). Missing either fails the
tests: they are the only check that the page works. Screenshots of the main states, at desktop
and phone widths, land in ``tests/artifacts/screenshots/`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from mutagen.mp3 import MP3

from tests.fixtures.backends import FAKE_AWS_ENV, moto_s3  # noqa: F401  (moto's S3 server)
from tests.fixtures.net import free_port, stop, wait_until_up
from vid2mp3 import display

CHROMIUM = os.environ.get("VID2MP3_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).parent / "artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 360, "height": 740}
PASSWORD = "correct horse battery"
TIMEOUT_MS = 60_000
MIB = 1024 * 1024

# Chrome logs every HTTP error answer as a console error; the tests expect some (a wrong
# password is a 401) and list them, so any other console error still fails.
_REFUSAL = re.compile(r"^Failed to load resource: the server responded with a status of (\d+)")


@dataclass
class Server:
    url: str
    log: Path
    # The origin a separate static host of the UI gets (CORS_ORIGINS allows it).
    static_origin: str

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(method, f"{self.url}{path}", timeout=30, **kwargs)

    def register(self, email: str) -> None:
        response = self.api(
            "POST", "/function/register", json={"email": email, "password": PASSWORD}
        )
        assert response.status_code == 201, response.text

    def token(self, email: str) -> str:
        response = self.api("POST", "/function/login", auth=(email, PASSWORD))
        assert response.status_code == 200, response.text
        return str(response.json()["token"])


@contextmanager
def _vid2mp3_up(home: Path, **settings: str) -> Iterator[str]:
    """``vid2mp3 up`` on a free port with state in ``home``: the embedded default, changed only
    by ``settings``. Yields its URL."""
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {"PUBLIC_URL", "DATABASE_URL", "STORAGE_URL", "EVENTS_URL", "K_SINK", "SMTP_URL"}
        and not k.startswith(("OPENAI_", "JWT_SECRET", "CORS_", "MULTIPART_"))
    }
    env.update(VID2MP3_HOME=str(home), VID2MP3_LOG_LEVEL="WARNING", **settings)
    log = home / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "vid2mp3"), "up", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/healthz", process=process, log=log)
        yield url
    finally:
        stop(process, timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``vid2mp3 up``, embedded default; it lets one other origin in (``static_host``)."""
    home = tmp_path_factory.mktemp("webui-home")
    static_origin = f"http://127.0.0.1:{free_port()}"
    with _vid2mp3_up(home, CORS_ORIGINS=static_origin) as url:
        yield Server(url, home / "server.log", static_origin)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: install Debian's package (apt-get install -y chromium) "
            "or point VID2MP3_CHROMIUM at one"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the playwright package is missing: pip install playwright")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class Console:
    """What the page said on its console; ``check`` fails on anything unexpected."""

    errors: list[str] = field(default_factory=list)
    refusals: list[tuple[int, str]] = field(default_factory=list)

    def on_message(self, message: Any) -> None:
        if message.type not in ("error", "warning"):
            return
        refused = _REFUSAL.match(message.text)
        if refused and message.type == "error":
            path = re.sub(r"^https?://[^/]+", "", message.location.get("url", ""))
            self.refusals.append((int(refused.group(1)), path))
        else:
            self.errors.append(f"{message.type}: {message.text} ({message.location})")

    def on_page_error(self, error: Any) -> None:
        self.errors.append(f"uncaught: {error}")

    def check(self, *expected_refusals: tuple[int, str]) -> None:
        assert self.errors == []
        assert sorted(self.refusals) == sorted(expected_refusals)


@dataclass
class Tab:
    page: Any
    console: Console
    cdp: Any


@contextmanager
def open_tab(browser: Any, url: str) -> Iterator[Tab]:
    """A fresh browser context (own sessionStorage) on ``url``, at desktop size."""
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        console = Console()
        page.on("console", console.on_message)
        page.on("pageerror", console.on_page_error)
        page.goto(url)
        yield Tab(page, console, context.new_cdp_session(page))
    finally:
        context.close()


@pytest.fixture
def tab(browser: Any, server: Server) -> Iterator[Tab]:
    with open_tab(browser, f"{server.url}/") as opened:
        yield opened


def screenshot(page: Any, name: str) -> None:
    """Save ``name``-desktop.png and ``name``-360.png; at 360 px nothing may scroll sideways."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for suffix, size in (("desktop", DESKTOP), ("360", PHONE)):
        page.set_viewport_size(size)
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{name} at {size['width']} px scrolls sideways by {overflow} px"
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{suffix}.png"), full_page=True)
    page.set_viewport_size(DESKTOP)


def sign_in(page: Any, email: str, password: str = PASSWORD, *, create: bool = False) -> None:
    page.get_by_role("radio", name="Create account" if create else "Sign in").check()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.locator("#auth-submit").click()


def expect_signed_in(page: Any, email: str) -> None:
    from playwright.sync_api import expect

    expect(page.get_by_role("heading", name="Convert videos")).to_be_visible()
    expect(page.locator("#account-email")).to_have_text(email)


def card(page: Any, filename: str) -> Any:
    return page.locator("li.job").filter(has=page.locator(".job-name", has_text=filename))


def throttle_uploads(tab: Tab, bytes_per_second: int) -> None:
    tab.cdp.send("Network.enable")
    tab.cdp.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": 0,
            "downloadThroughput": -1,
            "uploadThroughput": bytes_per_second,
        },
    )


def test_sign_up_upload_convert_download(
    tab: Tab, server: Server, make_video: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page = tab.page
    expect(page.get_by_role("heading", name="Turn videos into MP3s")).to_be_visible()
    screenshot(page, "signed-out")

    sign_in(page, "ada@example.com", create=True)
    expect_signed_in(page, "ada@example.com")
    expect(page.get_by_text("No files yet")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Turn videos into MP3s")).to_be_visible()
    sign_in(page, "ada@example.com")
    expect_signed_in(page, "ada@example.com")

    video = tmp_path / "lecture notes.mp4"
    shutil.copyfile(make_video("mp4", seconds=20), video)
    size_text = display.size(video.stat().st_size)  # the page formats sizes by the same rules
    # Slow enough to watch the bar move, on a file of a few hundred KB.
    throttle_uploads(tab, 96 * 1024)
    page.locator("#file-input").set_input_files(str(video))
    job = card(page, video.name)
    expect(job.locator(".badge")).to_have_text("Uploading")
    expect(job.locator(".job-detail")).to_have_text(
        re.compile(
            rf"^[\d.]+ (bytes|KB) of {re.escape(size_text)} · [\d.]+ (bytes|KB|MB)/s · .+ left$"
        )
    )
    progress = job.locator("progress")
    value, maximum = progress.evaluate("p => [p.value, p.max]")
    assert 0 < value < maximum == video.stat().st_size
    expect(job.locator(".job-progress-text")).to_have_text(re.compile(r"^\d{1,2}%$"))
    screenshot(page, "uploading")
    throttle_uploads(tab, -1)

    expect(job.locator(".badge")).to_have_text("Done", timeout=TIMEOUT_MS)
    expect(job.locator(".job-mp3")).to_have_text(re.compile(r"^MP3 0:20 · [\d.]+ KB · 192 kbps$"))
    expect(job.locator(".job-note")).to_contain_text("No summary")
    screenshot(page, "jobs-done")

    with page.expect_download() as download_info:
        job.get_by_role("button", name="Download MP3").click()
    download = download_info.value
    assert download.suggested_filename == "lecture notes.mp3"
    saved = tmp_path / "saved.mp3"
    download.save_as(str(saved))
    assert MP3(str(saved)).info.length == pytest.approx(20.0, abs=0.2)
    expect(job.get_by_role("button", name="Download MP3")).to_be_visible()
    tab.console.check()


def test_wrong_password_shows_the_error_using_the_keyboard(tab: Tab, server: Server) -> None:
    from playwright.sync_api import expect

    server.register("grace@example.com")
    page = tab.page
    expect(page.get_by_label("Email")).to_be_focused()
    page.keyboard.type("grace@example.com")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type("not my password")
    page.keyboard.press("Enter")

    expect(page.get_by_role("alert")).to_have_text("wrong email or password")
    expect(page.get_by_label("Password")).to_be_focused()
    expect(page.get_by_role("heading", name="Convert videos")).to_be_hidden()
    tab.console.check((401, "/function/login"))


def test_refused_and_failed_uploads_show_the_servers_reasons(
    tab: Tab, server: Server, make_video: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    server.register("linus@example.com")
    page = tab.page
    sign_in(page, "linus@example.com")
    expect_signed_in(page, "linus@example.com")

    notes = tmp_path / "notes.txt"
    notes.write_text("eggs\nmilk\n")
    refused = server.api(
        "POST",
        "/function/upload-init",
        json={"filename": "notes.txt", "size": notes.stat().st_size, "content_type": "text/plain"},
        headers={"Authorization": f"Bearer {server.token('linus@example.com')}"},
    )
    assert refused.status_code == 400
    page.locator("#file-input").set_input_files(str(notes))
    notes_card = card(page, "notes.txt")
    expect(notes_card.locator(".badge")).to_have_text("Not accepted")
    expect(notes_card.locator(".job-error")).to_have_text(refused.json()["error"])

    # A text file named .mp4 passes the upload checks; the converter's probe fails the job.
    fake = tmp_path / "holiday.mp4"
    shutil.copyfile(make_video("text_as_mp4"), fake)
    page.locator("#file-input").set_input_files(str(fake))
    fake_card = card(page, "holiday.mp4")
    expect(fake_card.locator(".badge")).to_have_text("Failed", timeout=TIMEOUT_MS)
    jobs = server.api(
        "GET",
        "/function/jobs",
        headers={"Authorization": f"Bearer {server.token('linus@example.com')}"},
    ).json()["jobs"]
    failed = next(j for j in jobs if j["filename"] == "holiday.mp4")
    assert failed["state"] == "failed" and failed["error"]
    expect(fake_card.locator(".job-error")).to_have_text(failed["error"])
    expect(fake_card.get_by_role("button", name="Download MP3")).to_be_hidden()
    screenshot(page, "failed")

    notes_card.get_by_role("button", name="Dismiss").click()
    expect(notes_card).to_have_count(0)
    tab.console.check((400, "/function/upload-init"))


def test_another_user_cannot_see_the_job(tab: Tab, server: Server, make_video: Any) -> None:
    from playwright.sync_api import expect

    video = make_video("mp4", seconds=4)
    server.register("owner@example.com")
    token = server.token("owner@example.com")
    auth = {"Authorization": f"Bearer {token}"}
    init = server.api(
        "POST",
        "/function/upload-init",
        json={"filename": "private.mp4", "size": video.stat().st_size, "content_type": "video/mp4"},
        headers=auth,
    )
    assert init.status_code == 201, init.text
    upload = init.json()["upload"]
    with video.open("rb") as body:
        put = requests.put(upload["url"], data=body, headers=upload["headers"], timeout=30)
    assert put.status_code == 200, put.text
    job_id = init.json()["job_id"]
    assert server.api("POST", f"/function/jobs/{job_id}/complete", headers=auth).status_code == 202

    server.register("other@example.com")
    page = tab.page
    sign_in(page, "other@example.com")
    expect_signed_in(page, "other@example.com")
    expect(page.get_by_text("No files yet")).to_be_visible()
    page.get_by_role("button", name="Refresh").click()
    expect(page.get_by_text("No files yet")).to_be_visible()
    expect(page.get_by_text("private.mp4")).to_have_count(0)
    screenshot(page, "empty")

    other = {"Authorization": f"Bearer {server.token('other@example.com')}"}
    assert server.api("GET", f"/function/jobs/{job_id}", headers=other).status_code == 404
    assert server.api("GET", f"/function/jobs/{job_id}/download", headers=other).status_code == 404
    tab.console.check()


def _session_script() -> str:
    return "s => sessionStorage.setItem('vid2mp3.session', JSON.stringify(s))"


def test_an_expired_or_refused_session_signs_out(tab: Tab, server: Server) -> None:
    import jwt
    from playwright.sync_api import expect

    page = tab.page
    now = int(time.time())
    old = jwt.encode({"sub": "u", "iat": now - 7200, "exp": now - 3600}, "x" * 32, "HS256")
    page.evaluate(
        _session_script(), {"email": "a@example.com", "token": old, "expiresAt": now - 3600}
    )
    page.reload()
    expect(page.locator("#notice")).to_have_text(
        "Your session has expired. Sign in again to see your files."
    )
    expect(page.get_by_label("Email")).to_be_visible()

    # Not expired, but the server does not take it: its reason is what the user reads.
    forged = jwt.encode(
        {"sub": "u", "iat": now, "exp": now + 3600, "scope": "user"}, "y" * 32, "HS256"
    )
    page.evaluate(
        _session_script(), {"email": "a@example.com", "token": forged, "expiresAt": now + 3600}
    )
    page.reload()
    expect(page.locator("#notice")).to_have_text(re.compile(r"^invalid token: "))
    expect(page.get_by_role("heading", name="Convert videos")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('vid2mp3.session')") is None
    tab.console.check((401, "/function/jobs"))


def test_drop_several_videos_and_cancel_one(tab: Tab, server: Server, make_video: Any) -> None:
    import base64

    from playwright.sync_api import expect

    server.register("mary@example.com")
    page = tab.page
    sign_in(page, "mary@example.com")
    expect_signed_in(page, "mary@example.com")

    video = base64.b64encode(make_video("mp4", seconds=4).read_bytes()).decode()
    throttle_uploads(tab, 8 * 1024)
    page.evaluate(
        """video => {
            const bytes = Uint8Array.from(atob(video), c => c.charCodeAt(0));
            const files = new DataTransfer();
            files.items.add(new File([bytes], 'first.mp4', { type: 'video/mp4' }));
            files.items.add(new File([bytes], 'second.mp4', { type: 'video/mp4' }));
            const zone = document.getElementById('drop-zone');
            zone.dispatchEvent(new DragEvent('drop', { dataTransfer: files, bubbles: true, cancelable: true }));
        }""",
        video,
    )
    first, second = card(page, "first.mp4"), card(page, "second.mp4")
    expect(first.locator(".badge")).to_have_text("Uploading")
    expect(second.locator(".badge")).to_have_text("Uploading")
    first.get_by_role("button", name="Cancel upload").click()
    expect(first.locator(".badge")).to_have_text("Cancelled")
    throttle_uploads(tab, -1)
    expect(second.locator(".badge")).to_have_text("Done", timeout=TIMEOUT_MS)
    expect(first.locator(".badge")).to_have_text("Cancelled")

    jobs = server.api(
        "GET",
        "/function/jobs",
        headers={"Authorization": f"Bearer {server.token('mary@example.com')}"},
    ).json()["jobs"]
    assert {j["filename"]: j["state"] for j in jobs} == {
        "first.mp4": "awaiting_upload",
        "second.mp4": "completed",
    }
    first.get_by_role("button", name="Dismiss").click()
    expect(page.get_by_text("first.mp4")).to_have_count(0)
    tab.console.check()


def test_multipart_upload_sends_every_part_and_retries(tab: Tab) -> None:
    """upload.js's part logic on its own: byte ranges, a retried part, progress to the end."""
    page = tab.page
    size, part_size = 250_000, 100_000
    received: dict[int, bytes] = {}
    attempts: dict[int, int] = {}

    def storage(route: Any) -> None:
        number = int(route.request.url.rsplit("/", 1)[1])
        attempts[number] = attempts.get(number, 0) + 1
        if number == 2 and attempts[number] == 1:
            route.fulfill(status=503, body="<Error><Message>Slow Down</Message></Error>")
            return
        received[number] = route.request.post_data_buffer or b""
        route.fulfill(status=200, body="")

    page.route("**/fake-storage/part/*", storage)
    result = page.evaluate(
        """async ({ size, partSize }) => {
            const { transfer } = await import('./upload.js');
            const bytes = new Uint8Array(size).map((_, i) => i % 251);
            const file = new File([bytes], 'big.mp4', { type: 'video/mp4' });
            const urls = [1, 2, 3].map(n => `${location.origin}/fake-storage/part/${n}`);
            const target = { method: 'PUT', url: '', headers: {}, expires_at: 0, parts: urls, part_size: partSize };
            const sent = [];
            await transfer(file, target, n => sent.push(n)).promise;
            return { sent };
        }""",
        {"size": size, "partSize": part_size},
    )
    expected = bytes(i % 251 for i in range(size))
    assert received == {n: expected[(n - 1) * part_size : n * part_size] for n in (1, 2, 3)}
    assert attempts == {1: 1, 2: 2, 3: 1}
    assert result["sent"][-1] == size
    tab.console.check((503, "/fake-storage/part/2"))


def test_cards_show_conversion_progress_summary_and_category(tab: Tab) -> None:
    """States a local run rarely shows (a slow conversion, an AI summary), on the real page."""
    from playwright.sync_api import expect

    page = tab.page
    page.evaluate(
        """async () => {
            const { JobCard, cardView } = await import('./cards.js');
            const job = {
                id: 'j', filename: 'talk.mp4', content_type: 'video/mp4', size: 48_000_000,
                state: 'converting', progress: 45, error: null, options: {}, mp3: null,
                summary_status: null, summary: null, category: null, context_truncated: null,
                summary_reason: null, created_at: 1767225600, updated_at: 1767225600,
            };
            const mp3 = { filename: 'talk.mp3', size: 9_600_000, duration: 3725.4, bitrate: 192000 };
            const jobs = [
                job,
                { ...job, id: 'k', filename: 'meeting.mov', state: 'converted', progress: 100, mp3,
                  summary_status: 'pending' },
                { ...job, id: 'l', filename: 'lecture.webm', state: 'completed', progress: 100, mp3,
                  summary_status: 'done', category: 'Education', context_truncated: true,
                  summary: 'A lecture on how rivers shape valleys, with three field examples.' },
            ];
            const list = document.createElement('ul');
            list.className = 'jobs';
            list.id = 'gallery';
            for (const item of jobs) {
                const card = new JobCard(item.id);
                card.update(cardView({ job: item, upload: null }));
                list.append(card.el);
            }
            const panel = document.createElement('section');
            panel.className = 'panel';
            panel.append(list);
            document.getElementById('auth-view').hidden = true;
            document.getElementById('main').append(panel);
        }"""
    )
    converting, converted, completed = (card(page, n) for n in ("talk", "meeting", "lecture"))
    expect(converting.locator(".badge")).to_have_text("Converting")
    expect(converting.locator(".job-progress-text")).to_have_text("45%")
    assert converting.locator("progress").evaluate("p => [p.value, p.max]") == [45, 100]
    expect(converting.get_by_role("button", name="Download MP3")).to_be_hidden()
    expect(converted.locator(".badge")).to_have_text("MP3 ready")
    expect(converted.locator(".job-detail")).to_have_text("Writing a summary of what is said…")
    expect(converted.locator(".job-mp3")).to_have_text("MP3 1:02:05 · 9.2 MB · 192 kbps")
    expect(converted.get_by_role("button", name="Download MP3")).to_be_visible()
    expect(completed.locator(".badge")).to_have_text("Done")
    expect(completed.locator(".chip")).to_have_text("Education")
    expect(completed.locator(".job-summary-text")).to_have_text(
        re.compile("^A lecture on how rivers")
    )
    expect(completed.locator(".job-note")).to_contain_text("first part")
    screenshot(page, "job-states")
    tab.console.check()


@pytest.fixture(scope="module")
def static_host(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The UI folder served by a plain static file server on another origin, its
    ``vid2mp3-api`` meta tag pointing at the gateway: the production layout of docs/web-ui.md."""
    import functools
    import http.server
    import threading

    from vid2mp3.local import webui

    folder = tmp_path_factory.mktemp("static-site")
    for file in webui.StaticSite().files.values():
        shutil.copyfile(file, folder / file.name)
    index = folder / "index.html"
    meta = '<meta name="vid2mp3-api" content="">'
    assert meta in index.read_text()
    index.write_text(index.read_text().replace(meta, meta.replace('""', f'"{server.url}"')))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    port = int(server.static_origin.rsplit(":", 1)[1])
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", port), functools.partial(Quiet, directory=str(folder))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield server.static_origin
    httpd.shutdown()
    httpd.server_close()


def test_ui_on_another_origin_talks_to_the_api_through_cors(
    browser: Any, server: Server, static_host: str, make_video: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    with open_tab(browser, f"{static_host}/index.html") as tab:
        page = tab.page
        api_calls: list[str] = []
        page.on("request", lambda r: api_calls.append(r.url) if "/function/" in r.url else None)
        sign_in(page, "hedy@example.com", create=True)
        expect_signed_in(page, "hedy@example.com")
        page.locator("#file-input").set_input_files(str(make_video("mp4", seconds=4)))
        job = page.locator("li.job")
        expect(job.locator(".badge")).to_have_text("Done", timeout=TIMEOUT_MS)
        with page.expect_download() as download_info:
            job.get_by_role("button", name="Download MP3").click()
        saved = tmp_path / "cors.mp3"
        download_info.value.save_as(str(saved))
        assert MP3(str(saved)).info.length == pytest.approx(4.0, abs=0.2)
        assert api_calls and all(url.startswith(f"{server.url}/function/") for url in api_calls)
        tab.console.check()


@pytest.fixture(scope="module")
def s3_server(
    moto_s3: str,  # noqa: F811  (the fixture imported above)
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """``vid2mp3 up`` keeping videos and MP3s in S3 (moto), multipart from 5 MiB."""
    home = tmp_path_factory.mktemp("webui-s3-home")
    endpoint = urllib.parse.quote(moto_s3, safe=":/")
    storage = f"s3://webui-{uuid.uuid4().hex[:12]}?endpoint={endpoint}&region=us-east-1"
    with _vid2mp3_up(
        home,
        STORAGE_URL=storage,
        JWT_SECRET="webui-test-secret-" + "x" * 32,
        MULTIPART_THRESHOLD=str(5 * MIB),
        **FAKE_AWS_ENV,
    ) as url:
        yield url


def test_s3_multipart_upload_and_presigned_download(
    browser: Any, s3_server: str, make_video: Any, tmp_path: Path
) -> None:
    """Straight to storage: parallel presigned part PUTs, complete, a 302 to a presigned GET."""
    from playwright.sync_api import expect

    # S3 parts are at least 5 MiB (the backend hands out 16 MiB), so the 20 s clip is padded
    # to three parts; ffmpeg stops reading at the end of the MP4's own data.
    video = tmp_path / "long talk.mp4"
    video.write_bytes(make_video("mp4", seconds=20).read_bytes() + os.urandom(36 * MIB))
    with open_tab(browser, f"{s3_server}/") as tab:
        page = tab.page
        storage_puts: list[str] = []
        page.on(
            "request",
            lambda r: (
                storage_puts.append(r.url)
                if r.method == "PUT" and "/function/" not in r.url
                else None
            ),
        )
        sign_in(page, "ada@example.com", create=True)
        expect_signed_in(page, "ada@example.com")
        page.locator("#file-input").set_input_files(str(video))
        job = card(page, video.name)
        expect(job.locator(".badge")).to_have_text("Done", timeout=TIMEOUT_MS)
        queries = [urllib.parse.parse_qs(urllib.parse.urlsplit(u).query) for u in storage_puts]
        assert sorted(q["partNumber"][0] for q in queries) == ["1", "2", "3"]
        assert len({q["uploadId"][0] for q in queries}) == 1

        with page.expect_download() as download_info:
            job.get_by_role("button", name="Download MP3").click()
        assert download_info.value.suggested_filename == "long talk.mp3"
        saved = tmp_path / "s3.mp3"
        download_info.value.save_as(str(saved))
        assert MP3(str(saved)).info.length == pytest.approx(20.0, abs=0.2)
        tab.console.check()


# ---- the static file app itself (no browser)


@pytest.fixture(scope="module")
def static_client() -> Any:
    from werkzeug.test import Client

    from vid2mp3.local.gateway import Gateway
    from vid2mp3.local.webui import create_app

    return Client(Gateway({}, index=create_app()))


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/", "text/html; charset=utf-8"),
        ("/index.html", "text/html; charset=utf-8"),
        ("/app.js", "text/javascript; charset=utf-8"),
        ("/upload.js", "text/javascript; charset=utf-8"),
        ("/style.css", "text/css; charset=utf-8"),
        ("/favicon.svg", "image/svg+xml"),
    ],
)
def test_static_files_have_their_types_and_revalidate(
    static_client: Any, path: str, content_type: str
) -> None:
    response = static_client.get(path)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == content_type
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    etag = response.headers["ETag"]
    again = static_client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.get_data() == b""
    head = static_client.head(path)
    assert head.status_code == 200
    assert head.get_data() == b""
    assert head.headers["Content-Length"] == response.headers["Content-Length"]


@pytest.mark.parametrize(
    "path",
    [
        "/../pyproject.toml",
        "/..%2fwebui.py",
        "/%2e%2e/webui.py",
        "/static/index.html",
        "/./index.html",
        "//etc/passwd",
        "/index.html/",
        "/webui.py",
        "/nothing.js",
    ],
)
def test_only_the_folders_own_files_are_served(static_client: Any, path: str) -> None:
    response = static_client.get(path)
    assert response.status_code == 404
    assert "error" in response.get_json()


def test_static_files_refuse_writes(static_client: Any) -> None:
    response = static_client.post("/index.html")
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"
    assert response.get_json()["error"].startswith("POST is not allowed")


def test_functions_still_win_over_the_ui(static_client: Any) -> None:
    response = static_client.get("/function/nope")
    assert response.status_code == 404
    assert "no function 'nope'" in response.get_json()["error"]
