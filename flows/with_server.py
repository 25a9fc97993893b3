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
import subprocess
import sys
from pathlib import Path

from synthtext.ops.prefect_server import free_port, server_env, start_server, stop_server, wait_healthy

ROOT = Path(__file__).resolve().parents[1]


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
