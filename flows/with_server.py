"""Run a command with one local Prefect server for all the flows it starts.

    python -m flows.with_server dvc repro

Without ``PREFECT_API_URL`` every process that runs a flow starts (and stops) a temporary server of
its own, 7-8 s of CPU each time: `dvc repro` runs one process per stage. This starts one server on a
free loopback port (its database in ``PREFECT_HOME``, default ``.prefect/``), runs the command with
``PREFECT_API_URL`` pointing at it, and stops the server when the command ends; the exit status is
the command's. When ``PREFECT_API_URL`` is already set, the command simply runs against that server.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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


def main(command: list[str]) -> int:
    if not command:
        raise SystemExit("usage: python -m flows.with_server COMMAND [ARGS...]")
    if os.environ.get("PREFECT_API_URL"):
        return subprocess.call(command)
    home = Path(os.environ.get("PREFECT_HOME", ROOT / ".prefect"))
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    log = home / "server.log"
    with log.open("w") as out:
        server = start_server(home, port, out)
    try:
        if not wait_healthy(url, server):
            raise SystemExit(f"error: the Prefect server did not start (see {log})")
        print(f"Prefect server for this run: {url} (log: {log})", flush=True)
        return subprocess.call(command, env={**os.environ, **server_env(home), "PREFECT_API_URL": url})
    finally:
        stop_server(server)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
