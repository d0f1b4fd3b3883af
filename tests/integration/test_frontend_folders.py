"""`make test` next to a `make run` in the same checkout: the browser tests' production build
has a frontend folder of its own, so the app `make run` serves keeps its pages and their
connection to its own port."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from tests.conftest import SERVED_WEB_DIR, TEST_WEB_DIR, frontend_folder_state


def test_the_test_build_leaves_the_served_apps_frontend_folder_alone(live_app) -> None:  # type: ignore[no-untyped-def]
    # The test server was built and started (the fixture waited for its pages), yet not one
    # file of `.web`, what `make run` serves, was written or created...
    assert frontend_folder_state(SERVED_WEB_DIR) == live_app.served_web_before
    # ...because the build went to the test folder, pointing its pages at the test server.
    port = urlsplit(live_app.url).port
    endpoints = json.loads((TEST_WEB_DIR / "env.json").read_text())
    assert urlsplit(endpoints["EVENT"]).port == port
    assert urlsplit(endpoints["PING"]).port == port
