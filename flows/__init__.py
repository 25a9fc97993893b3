"""Prefect flows: wiring, caching, task runners. The computation lives in ``synthtext``.

Importing this package (before Prefect) keeps per-task log lines out of the progress bars and
turns off the local server's telemetry, unless the user has set these already.
"""

import os

os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
