"""The API inside the real app (`reflex run --env prod`): mounted beside the pages, reachable
from any origin while the rest keeps its strict CORS, its docs served without a CDN, and keys
an operator makes with `cutout-admin keys`."""

from __future__ import annotations

import subprocess

import httpx

from tests.conftest import REPO, VENV_BIN, app_env
from tests.integration.api_harness import photo_bytes

EVIL = "https://tool.example"


def admin(live_app, *args: str) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    env = app_env(live_app.data_dir)
    if live_app.database_url:  # the scaled pass: the app serves from PostgreSQL
        env["DATABASE_URL"] = live_app.database_url
    return subprocess.run(
        [str(VENV_BIN / "cutout-admin"), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_an_operators_key_removes_a_background_in_the_running_app(live_app) -> None:  # type: ignore[no-untyped-def]
    email = "api-live@example.com"
    made = admin(live_app, "users", "create", "--email", email, "--password", "a long passphrase")
    assert made.returncode == 0, made.stderr
    created = admin(live_app, "keys", "create", "--email", email, "--name", "script")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("co_") and "shown only this once" in created.stderr

    answer = httpx.post(
        live_app.url + "/v1.0/removebg",
        headers={"X-Api-Key": key, "Origin": EVIL},
        files={"image_file": ("astronaut.jpg", photo_bytes(), "image/jpeg")},
        timeout=120,
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-credits-charged"] == "0.5"
    assert answer.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in answer.headers

    listed = admin(live_app, "keys", "list", "--email", email)
    assert key[:10] in listed.stdout and key not in listed.stdout
    assert "never used" not in listed.stdout
    revoked = admin(live_app, "keys", "revoke", "--email", email, key[:10])
    assert revoked.returncode == 0, revoked.stderr
    again = httpx.get(live_app.url + "/v1.0/account", headers={"X-Api-Key": key})
    assert again.status_code == 403 and again.json()["errors"][0]["code"] == "auth_failed"
    checked = admin(live_app, "ledger", "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_only_the_api_is_open_to_other_origins(live_app) -> None:  # type: ignore[no-untyped-def]
    preflight = {"Origin": EVIL, "Access-Control-Request-Method": "POST"}
    api = httpx.options(live_app.url + "/v1.0/removebg", headers=preflight)
    assert api.status_code == 204 and api.headers["access-control-allow-origin"] == "*"
    page = httpx.options(live_app.url + "/ping", headers=preflight)
    assert page.status_code == 400 and "access-control-allow-origin" not in page.headers

    wrong_method = httpx.get(live_app.url + "/v1.0/removebg")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["errors"][0]["code"] == "method_not_allowed"


def test_the_docs_are_served_from_the_app_itself(live_app) -> None:  # type: ignore[no-untyped-def]
    docs = httpx.get(live_app.url + "/api/docs")
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    assert "https://" not in docs.text  # nothing from a CDN
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "init.js"):
        assert httpx.get(live_app.url + "/api/docs/assets/" + asset).status_code == 200
    described = httpx.get(live_app.url + "/api/openapi.json").json()
    assert set(described["paths"]) == {"/v1.0/removebg", "/v1.0/account"}
