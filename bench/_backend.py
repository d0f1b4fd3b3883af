"""What the benches that drive Cutout's real backend share: a free port, the backend process
(`reflex run --env prod --backend-only` on 127.0.0.1) and a percentile."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_backend(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    """The production backend in a session of its own (stop it with os.killpg)."""
    return subprocess.Popen(
        [
            str(REPO / ".venv" / "bin" / "reflex"),
            "run",
            "--env",
            "prod",
            "--backend-only",
            "--backend-port",
            str(port),
            "--backend-host",
            "127.0.0.1",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]
