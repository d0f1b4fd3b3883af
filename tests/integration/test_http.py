"""The running app over real HTTP: private results, the server-side upload cap, start-up checks."""

from __future__ import annotations

import subprocess
import sys

import httpx

from app.state.cutout import CutoutState
from tests.conftest import REPO, app_env


def test_result_files_need_their_owner(live_app) -> None:  # type: ignore[no-untyped-def]
    for path in ("/files/abc/cutout.png", "/files/abc/before.jpg", "/files/abc/original"):
        response = httpx.get(live_app.url + path, cookies={"cutout_owner": "someone"})
        assert response.status_code == 404
        assert response.json() == {"error": "Not found."}


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
