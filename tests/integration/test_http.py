"""The running app over real HTTP: private results, the server-side upload cap, start-up checks."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import uuid

import httpx
import skimage.data
from PIL import Image

from app import routes
from app.db import make_engine
from app.models.jobs import JobStatus
from app.services.clock import SystemClock
from app.settings import Settings
from app.state.cutout import CutoutState
from app.usecases.cutouts import process_cutout, submit_photo
from tests.conftest import MODELS_DIR, REPO, app_env, confirmed_account


def sign_in_over_http(live_app, email: str) -> str:  # type: ignore[no-untyped-def]
    """The session cookie the sign-in form post sets, as a browser would get it."""
    response = httpx.post(
        live_app.url + routes.SIGN_IN_POST,
        data={"email": email, "password": "a long passphrase", "next": routes.HOME},
        timeout=60,
    )
    assert response.status_code == 303, response.text
    token = response.cookies.get(routes.SESSION_COOKIE)
    assert token, "the sign-in set no session cookie"
    return token


def test_result_files_are_served_to_their_owner_only(live_app) -> None:  # type: ignore[no-untyped-def]
    # Two confirmed accounts and a finished job each way the app makes them, written straight
    # into the running app's own database and data folder (no browser needed for this check).
    clock = SystemClock()  # the server's clock: sessions and jobs must be current for it
    settings = Settings(
        data_dir=live_app.data_dir, models_dir=MODELS_DIR, database_url=live_app.database_url
    )
    db = make_engine(settings.db_url)
    owner_email, stranger_email = (f"{who}-{uuid.uuid4().hex[:8]}@example.com" for who in "ab")
    owner = confirmed_account(db, clock, settings, owner_email)
    stranger = confirmed_account(db, clock, settings, stranger_email)
    picture = Image.fromarray(skimage.data.coffee())
    photo = io.BytesIO()
    picture.save(photo, "JPEG")
    jobs = {}
    for account in (owner, stranger):
        job = submit_photo(
            db=db,
            settings=settings,
            clock=clock,
            account_id=account.id,
            filename="coffee.jpg",
            data=photo.getvalue(),
        )
        jobs[account.id] = process_cutout(
            db=db, settings=settings, clock=clock, account_id=account.id, job_id=job.id
        )
        assert jobs[account.id].status == JobStatus.done
    db.dispose()
    cookies = {
        owner.id: {routes.SESSION_COOKIE: sign_in_over_http(live_app, owner_email)},
        stranger.id: {routes.SESSION_COOKIE: sign_in_over_http(live_app, stranger_email)},
    }

    for name, kind in (("before.jpg", "image/jpeg"), ("cutout.png", "image/png")):
        for account in (owner, stranger):  # each signed-in account gets its own files...
            url = live_app.url + routes.file_url(jobs[account.id].id, name)
            mine = httpx.get(url, cookies=cookies[account.id])
            assert mine.status_code == 200, (name, mine.text)
            assert mine.headers["content-type"] == kind
            assert Image.open(io.BytesIO(mine.content)).size == picture.size
        # ...and another account's session, just as valid, gets what a missing job gets.
        url = live_app.url + routes.file_url(jobs[owner.id].id, name)
        for refused in (
            httpx.get(url, cookies=cookies[stranger.id]),
            httpx.get(url),  # no session at all
            httpx.get(
                live_app.url + routes.file_url("no-such-job", name), cookies=cookies[owner.id]
            ),
        ):
            assert refused.status_code == 404
            assert refused.json() == {"error": "Not found."}
    original = live_app.url + routes.file_url(jobs[owner.id].id, "original")
    assert httpx.get(original, cookies=cookies[owner.id]).status_code == 404  # never served


def test_oversized_upload_is_refused_by_the_server(live_app) -> None:  # type: ignore[no-untyped-def]
    body = b"\0" * (23 * 1024 * 1024)
    declared = httpx.post(live_app.url + "/_upload", content=body, timeout=60)
    assert declared.status_code == 413
    assert "22 MB" in declared.json()["error"]

    def chunks():  # no Content-Length: the cap counts bytes as they arrive
        yield (
            b'--xyz\r\nContent-Disposition: form-data; name="files"; filename="big.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n"
        )
        for _ in range(24):
            yield b"\0" * (1024 * 1024)

    headers = {  # what the browser sends, so Reflex would read and parse the body
        "reflex-client-token": "test-token",
        "reflex-event-handler": f"{CutoutState.get_full_name()}.handle_upload",
        "content-type": "multipart/form-data; boundary=xyz",
    }
    streamed = httpx.post(live_app.url + "/_upload", content=chunks(), headers=headers, timeout=60)
    assert streamed.status_code == 413, streamed.text
    assert httpx.get(live_app.url + "/ping").status_code == 200, "still serving"


def test_missing_model_stops_start_up_with_the_fix(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = app_env(tmp_path / "data")
    env["U2NET_HOME"] = str(tmp_path / "no-models")
    result = subprocess.run(
        [sys.executable, "-c", "import app.app"], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert str(tmp_path / "no-models" / "u2netp.onnx") in result.stderr
    assert "make setup" in result.stderr


def test_corrupt_model_stops_start_up(tmp_path) -> None:  # type: ignore[no-untyped-def]
    models = tmp_path / "models"
    models.mkdir()
    (models / "u2netp.onnx").write_bytes(b"not really a model")
    env = app_env(tmp_path / "data")
    env["U2NET_HOME"] = str(models)
    result = subprocess.run(
        [sys.executable, "-c", "import app.app"], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0 and "corrupt" in result.stderr


# Security at the edge: headers, CORS, cross-site form posts, Reflex's upload route.

EVIL = "https://evil.example"


def test_every_page_and_route_sends_the_security_headers(live_app) -> None:  # type: ignore[no-untyped-def]
    answers = [
        httpx.get(live_app.url + "/"),
        httpx.get(live_app.url + "/signin", follow_redirects=True),
        httpx.get(live_app.url + "/ping"),
        httpx.get(live_app.url + "/files/abc/cutout.png"),
        httpx.get(live_app.url + "/verify?token=x"),
        httpx.post(live_app.url + "/auth/signin", data={"email": "a@b.example", "password": "x"}),
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 404, 200, 303]
    for answer in answers:
        csp = answer.headers["content-security-policy"]
        assert "frame-ancestors 'self'" in csp and "object-src 'none'" in csp
        assert answer.headers["x-frame-options"] == "SAMEORIGIN"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "same-origin"
        assert "strict-transport-security" not in answer.headers  # plain http here


def test_another_origin_gets_no_cors_grant_and_no_websocket(live_app) -> None:  # type: ignore[no-untyped-def]
    with_cookie = {"Origin": EVIL, "Cookie": "cutout_session=whatever"}
    answer = httpx.get(live_app.url + "/ping", headers=with_cookie)
    assert "access-control-allow-origin" not in answer.headers  # no echo of any origin
    preflight = httpx.options(
        live_app.url + "/ping",
        headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in preflight.headers
    own = httpx.get(live_app.url + "/ping", headers={"Origin": live_app.url})
    assert own.headers["access-control-allow-origin"] == live_app.url

    handshake = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    url = live_app.url + "/_event/?EIO=4&transport=websocket"
    with httpx.stream("GET", url, headers={**handshake, "Origin": EVIL}) as refused:
        assert refused.status_code == 403
    with httpx.stream("GET", url, headers={**handshake, "Origin": live_app.url}) as accepted:
        assert accepted.status_code == 101


def test_a_form_post_from_another_site_is_refused(live_app) -> None:  # type: ignore[no-untyped-def]
    """Login CSRF: another site must not sign the visitor into an account of its choosing."""
    for headers in ({"Origin": EVIL}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
        answer = httpx.post(
            live_app.url + "/auth/signin",
            data={"email": "attacker@example.com", "password": "attacker's password"},
            headers=headers,
        )
        assert answer.status_code == 403
        assert "set-cookie" not in answer.headers


def test_a_wrong_upload_handler_name_gets_a_4xx(live_app) -> None:  # type: ignore[no-untyped-def]
    body = (
        b'--xyz\r\nContent-Disposition: form-data; name="files"; filename="a.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\nnot really\r\n--xyz--\r\n"
    )
    for handler in (
        f"{CutoutState.get_full_name()}.confirm",  # a real handler, but not an upload one
        f"{CutoutState.get_full_name()}.no_such_handler",
        "nonsense",
    ):
        answer = httpx.post(
            live_app.url + "/_upload",
            content=body,
            headers={
                "reflex-client-token": "test-token",
                "reflex-event-handler": handler,
                "content-type": "multipart/form-data; boundary=xyz",
            },
        )
        assert 400 <= answer.status_code < 500, (handler, answer.status_code)
        assert "Traceback" not in answer.text and "UploadValueError" not in answer.text
    assert httpx.get(live_app.url + "/ping").status_code == 200


def test_page_scripts_and_styles_arrive_compressed_and_cached_for_good(live_app) -> None:  # type: ignore[no-untyped-def]
    page = httpx.get(live_app.url + "/").text
    assets = re.findall(r'href="(/assets/[^"]+\.(?:js|css))"', page)
    sheet = next(a for a in assets if a.endswith(".css"))
    script = next(a for a in assets if a.endswith(".js"))
    plain = httpx.get(live_app.url + sheet, headers={"Accept-Encoding": "identity"})
    for asset in (sheet, script):
        # A browser over HTTPS (or on localhost) takes brotli; any other takes gzip.
        br = httpx.get(live_app.url + asset, headers={"Accept-Encoding": "gzip, deflate, br"})
        gz = httpx.get(live_app.url + asset, headers={"Accept-Encoding": "gzip, deflate"})
        assert br.headers["content-encoding"] == "br"
        assert gz.headers["content-encoding"] == "gzip"
        assert int(br.headers["content-length"]) < int(gz.headers["content-length"])
        assert br.headers["cache-control"] == "public, max-age=31536000, immutable"
    # The sheet still styles what the pages show, without the components none of them use.
    assert "content-encoding" not in plain.headers
    assert ".rt-Button" in plain.text and ".rt-SelectTrigger" in plain.text
    assert ".rt-DataListRoot" not in plain.text and ".rt-SegmentedControlRoot" not in plain.text
