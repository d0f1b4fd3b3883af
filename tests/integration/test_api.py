"""The remove.bg-compatible API over real HTTP: results, options, charges, every error code.

Cutout's /v1.0 routes run in uvicorn on 127.0.0.1 with a real SQLite file and the real model
(tests/integration/api_harness.py); each test reads the API wallet before and after.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import threading
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
from PIL import Image

from app.api.removebg import body_cap
from app.services.billing.pricing import Feature, cost_of
from app.usecases import operator
from tests.integration.api_harness import ApiServer, open_api, photo_bytes

REMOVEBG = "/v1.0/removebg"
ERROR_KEYS = {"title", "code", "detail"}


@pytest.fixture
def api(db, settings, clock) -> Iterator[ApiServer]:  # type: ignore[no-untyped-def]
    with open_api(db, settings, clock) as server:
        yield server


@pytest.fixture
def keyed(api: ApiServer) -> tuple[int, str]:
    return api.account_with_key("caller@example.com", api_credits=50_000)


def post(api: ApiServer, key: str | None, **kwargs):  # type: ignore[no-untyped-def]
    headers = kwargs.pop("headers", {})
    if key is not None:
        headers["X-Api-Key"] = key
    return httpx.post(api.url + REMOVEBG, headers=headers, timeout=120, **kwargs)


def png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def disc_photo(size: tuple[int, int] = (400, 300)) -> bytes:
    """A dark disc on a plain light background: a subject the model finds, with empty corners."""
    width, height = size
    yy, xx = np.mgrid[:height, :width]
    inside = (xx - width / 2) ** 2 + (yy - height / 2) ** 2 < (min(size) / 3) ** 2
    pixels = np.full((height, width, 3), 235, np.uint8)
    pixels[inside] = (160, 40, 30)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"errors"} and len(body["errors"]) == 1
    error = body["errors"][0]
    assert set(error) == ERROR_KEYS and error["code"] == code, body
    assert error["title"] and error["detail"]


def test_a_photo_upload_comes_back_without_its_background(api, keyed) -> None:  # type: ignore[no-untyped-def]
    account_id, key = keyed
    before = api.api_available(account_id)
    answer = post(api, key, files={"image_file": ("astronaut.jpg", photo_bytes(), "image/jpeg")})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "image/png"
    result = png(answer.content)
    width, height = int(answer.headers["x-width"]), int(answer.headers["x-height"])
    assert result.size == (width, height)
    assert width * height <= 250_000 and width == height  # preview keeps the 512x512 shape
    alpha = np.asarray(result)[..., 3]
    assert (alpha == 0).mean() > 0.1 and (alpha >= 128).mean() > 0.1
    assert answer.headers["x-credits-charged"] == "0.5"
    assert answer.headers["x-type"] == "other"
    assert int(answer.headers["x-foreground-width"]) > 0
    assert answer.headers["x-ratelimit-limit"] == "500"
    assert api.api_available(account_id) == before - 500


def test_base64_in_json_answers_json_when_asked(api, keyed) -> None:  # type: ignore[no-untyped-def]
    account_id, key = keyed
    before = api.api_available(account_id)
    photo = base64.b64encode(photo_bytes("chelsea")).decode()
    answer = post(
        api,
        key,
        json={"image_file_b64": photo, "size": "full", "type": "animal", "crop": False},
        headers={"Accept": "application/json"},
    )
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    result = png(base64.b64decode(data["result_b64"]))
    assert result.size == (451, 300)  # chelsea at full size
    assert answer.headers["x-type"] == "animal"
    assert data["foreground_width"] == int(answer.headers["x-foreground-width"]) > 0
    charged = cost_of(451, 300, (Feature.api,))
    assert answer.headers["x-credits-charged"] == "0.5" and charged == 500
    assert api.api_available(account_id) == before - charged


def test_size_sets_the_resolution_and_the_price(api, keyed) -> None:  # type: ignore[no-untyped-def]
    account_id, key = keyed
    photo = photo_bytes("astronaut", size=(2400, 1800))  # 4.32 MP
    for size, cap in {"preview": 250_000, "medium": 1_500_000, "hd": 4_000_000}.items():
        before = api.api_available(account_id)
        answer = post(
            api, key, data={"size": size, "image_file_b64": base64.b64encode(photo).decode()}
        )
        assert answer.status_code == 200, answer.text
        width, height = int(answer.headers["x-width"]), int(answer.headers["x-height"])
        assert 0.99 * cap < width * height <= cap and abs(width / height - 4 / 3) < 0.01
        charged = cost_of(width, height, (Feature.api,))
        assert api.api_available(account_id) == before - charged
        whole, _, rest = answer.headers["x-credits-charged"].partition(".")
        assert int(whole) * 1000 + int((rest + "000")[:3]) == charged


def test_background_colour_gives_a_jpeg_and_zip_gives_colour_and_alpha(api, keyed) -> None:  # type: ignore[no-untyped-def]
    _, key = keyed
    photo = {"image_file": ("disc.png", disc_photo(), "image/png")}
    coloured = post(api, key, files=photo, data={"bg_color": "green"})
    assert coloured.status_code == 200, coloured.text
    assert coloured.headers["content-type"] == "image/jpeg"
    corner = png(coloured.content).convert("RGB").getpixel((2, 2))
    assert corner[1] > 100 and corner[0] < 40 and corner[2] < 40  # green, where the wall was

    bundle = post(api, key, files=photo, data={"format": "zip"})
    assert bundle.status_code == 200 and bundle.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(bundle.content)) as archive:
        assert sorted(archive.namelist()) == ["alpha.png", "color.jpg"]
        colour = png(archive.read("color.jpg"))
        alpha = png(archive.read("alpha.png"))
    assert colour.mode == "RGB" and alpha.mode == "L" and colour.size == alpha.size == (400, 300)

    mask = post(api, key, files=photo, data={"channels": "alpha", "format": "png"})
    assert mask.status_code == 200 and png(mask.content).mode == "L"

    webp = post(api, key, files=photo, data={"format": "webp"})
    assert webp.headers["content-type"] == "image/webp" and png(webp.content).format == "WEBP"

    blue = io.BytesIO()
    Image.new("RGB", (64, 64), (20, 40, 220)).save(blue, format="PNG")
    backed = post(api, key, files={**photo, "bg_image_file": ("bg.png", blue.getvalue())})
    assert backed.status_code == 200, backed.text
    assert backed.headers["content-type"] == "image/jpeg"
    red, green, blue_value = png(backed.content).convert("RGB").getpixel((2, 2))
    assert blue_value > 180 and red < 60 and green < 80


def test_crop_scale_position_and_roi_place_the_subject(api, keyed) -> None:  # type: ignore[no-untyped-def]
    _, key = keyed
    photo = {"image_file": ("disc.png", disc_photo((400, 300)), "image/png")}
    whole = post(api, key, files=photo)
    box = [int(whole.headers[f"x-foreground-{side}"]) for side in ("left", "top", "width")]
    cropped = post(api, key, files=photo, data={"crop": "true", "crop_margin": "10px"})
    assert cropped.status_code == 200, cropped.text
    assert int(cropped.headers["x-width"]) == box[2] + 20
    assert int(cropped.headers["x-foreground-left"]) == 10

    halved = post(api, key, files=photo, data={"scale": "50%", "position": "0% 0%"})
    assert halved.status_code == 200, halved.text
    assert (int(halved.headers["x-width"]), int(halved.headers["x-height"])) == (400, 300)
    assert int(halved.headers["x-foreground-left"]) <= 1
    assert int(halved.headers["x-foreground-top"]) <= 1
    assert int(halved.headers["x-foreground-height"]) in range(148, 153)  # 50% of 300

    left_half = post(api, key, files=photo, data={"roi": "0% 0% 50% 100%"})
    assert left_half.status_code == 200, left_half.text
    assert (
        int(left_half.headers["x-foreground-left"]) + int(left_half.headers["x-foreground-width"])
        <= 200
    )


ERROR_CASES = [
    ("missing_source", {"data": {"size": "preview"}}),
    ("multiple_sources", {"data": {"image_file_b64": "eA==", "image_url": "https://x.test/a"}}),
    (
        "failed_to_read_image",
        {"data": {"image_file_b64": base64.b64encode(b"not a photo").decode()}},
    ),
    ("failed_to_read_image", {"data": {"image_file_b64": "%%% not base64"}}),
    ("invalid_bg_color", {"photo": True, "data": {"bg_color": "#12345"}}),
    ("invalid_bg_color", {"photo": True, "data": {"bg_color": "notacolour"}}),
    ("invalid_crop_margin", {"photo": True, "data": {"crop": "true", "crop_margin": "60%"}}),
    ("invalid_crop_margin", {"photo": True, "data": {"crop_margin": "1px 2px 3px"}}),
    ("invalid_size", {"photo": True, "data": {"size": "huge"}}),
    ("invalid_format", {"photo": True, "data": {"format": "gif"}}),
    ("invalid_channels", {"photo": True, "data": {"channels": "rgb"}}),
    ("invalid_scale", {"photo": True, "data": {"scale": "5%"}}),
    ("invalid_position", {"photo": True, "data": {"position": "left"}}),
    ("invalid_roi", {"photo": True, "data": {"roi": "0 0 10"}}),
    ("roi_exceeds_bounds", {"photo": True, "data": {"roi": "0px 0px 5000px 10px"}}),
    ("multiple_bg_sources", {"photo": True, "data": {"bg_color": "red", "bg_image_url": "x"}}),
    ("unknown_foreground", {"photo": True, "data": {"roi": "0px 0px 12px 12px"}}),
    ("url_not_allowed", {"data": {"image_url": "http://127.0.0.1:9/photo.jpg"}}),
    ("url_not_allowed", {"data": {"image_url": "http://10.1.2.3/photo.jpg"}}),
    ("url_not_allowed", {"data": {"image_url": "http://169.254.169.254/latest/meta-data"}}),
    ("url_not_allowed", {"data": {"image_url": "http://[::1]:8080/photo.jpg"}}),
    ("invalid_url", {"data": {"image_url": "file:///etc/passwd"}}),
]


@pytest.mark.parametrize(("code", "case"), ERROR_CASES, ids=[c for c, _ in ERROR_CASES])
def test_every_error_is_reported_as_remove_bg_does_and_costs_nothing(
    api: ApiServer, keyed: tuple[int, str], code: str, case: dict
) -> None:
    account_id, key = keyed
    before = api.api_available(account_id)
    files = {"image_file": ("disc.png", disc_photo(), "image/png")} if case.get("photo") else None
    answer = post(api, key, data=case["data"], files=files)
    assert_error(answer, 400, code)
    assert api.api_available(account_id) == before


def test_a_body_over_the_cap_is_refused_declared_or_not(db, settings, clock) -> None:  # type: ignore[no-untyped-def]
    with open_api(db, settings, clock, max_upload_bytes=100_000) as api:
        account_id, key = api.account_with_key("big@example.com", api_credits=5_000)
        before = api.api_available(account_id)
        cap = body_cap(api.settings)
        form = "multipart/form-data; boundary=cutoutboundary"
        # Declared over the cap and never sent: the answer comes at once, the body unread.
        address = urlsplit(api.url)
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
        connection.putrequest("POST", REMOVEBG)
        for name, value in (
            ("X-Api-Key", key),
            ("Content-Type", form),
            ("Content-Length", str(cap + 1)),
        ):
            connection.putheader(name, value)
        connection.endheaders()
        answer = connection.getresponse()
        assert answer.status == 400
        assert json.loads(answer.read())["errors"][0]["code"] == "file_too_large"
        connection.close()

        # Sent without a length (chunked) and longer than the cap: refused once past it.
        def body() -> Iterator[bytes]:
            yield (
                b'--cutoutboundary\r\nContent-Disposition: form-data; name="image_file"; '
                b'filename="big.jpg"\r\nContent-Type: image/jpeg\r\n\r\n\xff\xd8'
            )
            for _ in range(cap // 65_536 + 2):
                yield b"\0" * 65_536

        answer = post(api, key, content=body(), headers={"Content-Type": form})
        assert_error(answer, 400, "file_too_large")
        assert api.api_available(account_id) == before


def test_url_encoded_forms_are_read_within_bounds(api, keyed) -> None:  # type: ignore[no-untyped-def]
    account_id, key = keyed
    before = api.api_available(account_id)
    # A base64 photo (its '+', '/' and '=' escaped) beside an escaped colour is read exactly.
    photo = base64.b64encode(disc_photo()).decode()
    assert "+" in photo or "/" in photo
    answer = post(
        api, key, data={"image_file_b64": photo, "bg_color": "#00ff00", "size": "preview"}
    )
    assert answer.status_code == 200, answer.text
    corner = png(answer.content).convert("RGBA").getpixel((0, 0))
    assert max(abs(a - b) for a, b in zip(corner, (0, 255, 0, 255), strict=True)) <= 2
    charged = before - api.api_available(account_id)
    assert charged == 500
    # Thousands of escapes no option needs: refused by name, not decoded at any cost.
    spelled = "".join(f"%{byte:02X}" for byte in b"aGVsbG8=" * 1_000)
    answer = post(
        api,
        key,
        content=f"image_file_b64={spelled}".encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_error(answer, 400, "invalid_request")
    assert "percent-escapes" in answer.json()["errors"][0]["detail"]
    fields = "&".join(f"f{n}=1" for n in range(65))
    answer = post(
        api, key, content=fields, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert_error(answer, 400, "invalid_request")
    assert "64 fields" in answer.json()["errors"][0]["detail"]
    assert api.api_available(account_id) == before - charged


def test_size_limits_are_reported_by_their_codes(api, keyed) -> None:  # type: ignore[no-untyped-def]
    account_id, key = keyed
    before = api.api_available(account_id)
    too_big = b"\xff\xd8" + b"\0" * (api.settings.max_upload_bytes + 10)
    assert_error(post(api, key, files={"image_file": ("big.jpg", too_big)}), 400, "file_too_large")
    buffer = io.BytesIO()
    Image.new("L", (6000, 5000)).save(buffer, format="PNG")  # 30 MP, over the 25 MP limit
    answer = post(api, key, files={"image_file": ("huge.png", buffer.getvalue())})
    assert_error(answer, 400, "resolution_too_high")
    assert api.api_available(account_id) == before


def test_keys_and_credits_are_checked(db, settings, clock, api, keyed) -> None:  # type: ignore[no-untyped-def]
    account_id, key = keyed
    photo = {"image_file": ("disc.png", disc_photo(), "image/png")}
    assert_error(post(api, None, files=photo), 403, "auth_failed")
    assert_error(post(api, "co_not-a-real-key", files=photo), 403, "auth_failed")
    operator.revoke_api_key(db=db, clock=clock, email="caller@example.com", key=key[:10])
    assert_error(post(api, key, files=photo), 403, "auth_failed")

    with open_api(db, settings, clock, trial_credits=0) as broke:
        poor_id, poor_key = broke.account_with_key("poor@example.com")
        assert_error(post(broke, poor_key, files=photo), 402, "insufficient_credits")
        assert broke.api_available(poor_id) == 0

    wrong_method = httpx.get(api.url + REMOVEBG)
    assert_error(wrong_method, 405, "method_not_allowed")


def test_the_rate_limit_refuses_a_burst_then_resets(db, settings, clock) -> None:  # type: ignore[no-untyped-def]
    with open_api(db, settings, clock, api_megapixel_images_per_minute=3) as api:
        account_id, key = api.account_with_key("burst@example.com", api_credits=10_000)
        photo = {"image_file": ("disc.png", disc_photo(), "image/png")}  # 0.12 MP: one unit
        remaining = [post(api, key, files=photo).headers["x-ratelimit-remaining"] for _ in "abc"]
        assert remaining == ["2", "1", "0"]
        before = api.api_available(account_id)
        refused = post(api, key, files=photo)
        assert_error(refused, 429, "rate_limit_exceeded")
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert api.api_available(account_id) == before
        clock.advance(timedelta(seconds=int(refused.headers["retry-after"])))
        assert post(api, key, files=photo).status_code == 200


class _Photos(BaseHTTPRequestHandler):
    """A local web server with a photo and a chain of redirects, for image_url."""

    photo = b""

    def do_GET(self) -> None:  # noqa: N802 - the standard library's name
        if self.path.startswith("/hop/"):
            left = int(self.path.rsplit("/", 1)[1])
            self.send_response(302)
            self.send_header("Location", "/photo.png" if left == 0 else f"/hop/{left - 1}")
            self.end_headers()
            return
        self.send_response(200 if self.path == "/photo.png" else 404)
        self.send_header("Content-Type", "image/png")
        self.end_headers()
        self.wfile.write(self.photo if self.path == "/photo.png" else b"")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def photo_site() -> Iterator[str]:
    _Photos.photo = disc_photo()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Photos)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_image_url_is_fetched_when_private_addresses_are_allowed(
    db, settings, clock, photo_site
) -> None:  # type: ignore[no-untyped-def]
    with open_api(db, settings, clock, api_allow_private_urls=True) as api:
        account_id, key = api.account_with_key("fetcher@example.com", api_credits=10_000)
        fetched = post(api, key, json={"image_url": photo_site + "/hop/4"})  # 5 redirects
        assert fetched.status_code == 200, fetched.text
        assert png(fetched.content).size == (400, 300)
        before = api.api_available(account_id)
        too_many = post(api, key, json={"image_url": photo_site + "/hop/5"})
        assert_error(too_many, 400, "failed_to_download")
        assert_error(
            post(api, key, json={"image_url": photo_site + "/gone"}), 400, "failed_to_download"
        )
        assert api.api_available(account_id) == before


def test_the_same_local_server_is_refused_by_default(api, keyed, photo_site) -> None:  # type: ignore[no-untyped-def]
    _, key = keyed
    assert_error(
        post(api, key, json={"image_url": photo_site + "/photo.png"}), 400, "url_not_allowed"
    )


def test_account_reports_the_api_wallet(api, keyed) -> None:  # type: ignore[no-untyped-def]
    account_id, key = keyed
    answer = httpx.get(api.url + "/v1.0/account", headers={"X-Api-Key": key})
    assert answer.status_code == 200
    attributes = answer.json()["data"]["attributes"]
    credits = attributes["credits"]
    assert credits["total"] == 60  # the 10-credit trial serves both wallets, plus 50 API credits
    assert credits["subscription"] == 0 and credits["payg"] == 60 and credits["enterprise"] == 0
    assert set(attributes["api"]) == {"free_calls", "sizes"}
    assert_error(httpx.get(api.url + "/v1.0/account"), 403, "auth_failed")


def test_any_origin_may_call_the_api(api, keyed) -> None:  # type: ignore[no-untyped-def]
    _, key = keyed
    preflight = httpx.options(
        api.url + REMOVEBG,
        headers={
            "Origin": "https://tool.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-api-key",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "x-api-key" in preflight.headers["access-control-allow-headers"].lower()
    answer = httpx.get(
        api.url + "/v1.0/account", headers={"X-Api-Key": key, "Origin": "https://tool.example"}
    )
    assert answer.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in answer.headers
    assert "X-Credits-Charged" in answer.headers["access-control-expose-headers"]


def test_semitransparency_and_shadow_change_the_result(api, keyed) -> None:  # type: ignore[no-untyped-def]
    _, key = keyed
    photo = {"image_file": ("astronaut.jpg", photo_bytes(), "image/jpeg")}
    hard = post(api, key, files=photo, data={"semitransparency": "false"})
    assert hard.status_code == 200, hard.text
    assert set(np.unique(np.asarray(png(hard.content))[..., 3])) <= {0, 255}

    disc = {"image_file": ("disc.png", disc_photo(), "image/png")}
    flat = post(api, key, files=disc, data={"bg_color": "white", "format": "png"})
    shaded = post(api, key, files=disc, data={"bg_color": "white", "add_shadow": "true"})
    assert shaded.status_code == 200, shaded.text
    plain = np.asarray(png(flat.content).convert("L"), dtype=int)
    shadow = np.asarray(png(shaded.content).convert("L"), dtype=int)
    assert (shadow < plain - 10).sum() > 100  # darker pixels around the subject: its shadow


def test_a_body_that_cannot_be_read_is_a_clear_400(api, keyed) -> None:  # type: ignore[no-untyped-def]
    _, key = keyed
    for content_type, body in (
        ("multipart/form-data", b"--x\r\nnot a part"),
        ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: nonsense\r\n\r\n"),
        ("application/json", b"{not json"),
        ("application/json", b"[1, 2]"),
        ("text/plain", b"image_url=https://example.com/a.jpg"),
    ):
        answer = post(api, key, content=body, headers={"Content-Type": content_type})
        assert_error(answer, 400, "invalid_request")
