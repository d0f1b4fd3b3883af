"""schemathesis against the API's own OpenAPI description (/api/openapi.json), over real HTTP:
whatever it generates, the API never answers 5xx and answers as the description says."""

from __future__ import annotations

import subprocess

from app.usecases import operator
from tests.conftest import VENV_BIN
from tests.integration.api_harness import open_api

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    ]
)


def test_schemathesis_finds_no_server_error(db, settings, clock, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with open_api(db, settings, clock) as api:
        account_id, key = api.account_with_key("fuzz@example.com", api_credits=100_000)
        done = subprocess.run(
            [
                str(VENV_BIN / "schemathesis"),
                "run",
                api.url + "/api/openapi.json",
                "--url",
                api.url,
                "--header",
                f"X-Api-Key: {key}",
                "--checks",
                CHECKS,
                "--max-examples",
                "25",
                "--seed",
                "12",
                "--no-color",
            ],
            cwd=tmp_path,  # its report folder goes there
            capture_output=True,
            text=True,
            timeout=600,
        )
        print(done.stdout[-3000:])
        assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
        assert "Tested: 2" in done.stdout, done.stdout[-3000:]  # both operations exercised
        assert operator.check_ledger(db=db) == []
        assert api.api_available(account_id) <= 110_000  # the trial and the pack, at most
