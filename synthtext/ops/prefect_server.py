"""A local Prefect server for the flows of one command (``python -m flows.with_server``), the benchmarks
and the tests: started on a free loopback port with its database in a folder, waited for, stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_healthy(url: str, server: subprocess.Popen, timeout: float = 120.0) -> bool:
    """Whether ``url``/health answered within ``timeout`` seconds while ``server`` (the process serving
    it) kept running."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            return True
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                return False
            time.sleep(0.5)


def server_env(home: Path) -> dict[str, str]:
    """The environment of a server whose database is in ``home`` (and of the command run against it)."""
    return {"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_ENABLED": "false"}


def start_server(home: Path, port: int, out=subprocess.DEVNULL) -> subprocess.Popen:
    """``prefect server start`` on loopback ``port`` with its database in ``home``, the API only
    (--no-services: no scheduler or late-run loops; they keep a quarter of a core busy and flows
    started against it need no more), in its own session so that ``stop_server`` stops all of it."""
    env = {**os.environ, **server_env(home)}
    return subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                             "--port", str(port), "--no-services", "--no-ui"],
                            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop_server(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
