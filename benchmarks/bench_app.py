"""A bounded load test of `synthtext serve` on loopback: REQUESTS jobs from CLIENTS concurrent clients,
for each worker count; prints completed/failed, p50/p95 latency from request to finished video,
throughput, and the server's memory (resident at the start and end, after each quarter of the
jobs, and its peak). The server gives each worker its share of the cores (torch threads).

    python benchmarks/bench_app.py [--model models:/synthtext-generator@champion] [--requests 20]
                                   [--clients 4] [--workers 1 2] [--queue 2]

Every accepted job must end done or failed with a reason (nothing lost); a 429 is retried after
its Retry-After. Each run uses a fresh output folder, so no job is shared with an earlier run.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHOTO = "grace_hopper.jpg"
SENTENCES = ["Don't forget a jacket, it is cold outside today.", "The train leaves at seven from the north station.",
             "Please close the door behind you when you leave.", "We will meet again after the long summer break."]


def rss_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return 0


def post(url: str, fields: dict) -> tuple[int, dict, dict]:
    request = urllib.request.Request(url, data=urllib.parse.urlencode(fields).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read()), dict(answer.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), dict(error.headers)


def run(model: str, workers: int, requests: int, clients: int, queue: int) -> dict:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as folder:
        server = subprocess.Popen([sys.executable, "-m", "flows.cli", "serve", "--model", model, "--port", str(port),
                                   "--workers", str(workers), "--queue", str(queue), "--out-dir", folder], cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            for _ in range(600):
                try:
                    urllib.request.urlopen(f"{base}/api/voices", timeout=2)
                    break
                except OSError:
                    time.sleep(0.2)
            status, photo, _ = post(f"{base}/api/photos", {"sample": PHOTO})
            assert status == 201, photo
            start_rss = rss_kb(server.pid, "VmRSS")
            latencies, failures, refused, lock, memory = [], [], [0], threading.Lock(), []
            numbers = iter(range(requests))

            def client() -> None:
                for number in numbers:
                    fields = {"photo": photo["photo"], "emotion": "HAP",
                              "text": f"{SENTENCES[number % len(SENTENCES)]} Number {number}."}
                    began = time.perf_counter()
                    while True:
                        status, job, headers = post(f"{base}/api/videos", fields)
                        if status != 429:
                            break
                        with lock:
                            refused[0] += 1
                        time.sleep(float(headers.get("Retry-After", 1)))
                    assert status == 202, job
                    while job["status"] not in ("done", "failed"):
                        time.sleep(0.05)
                        job = json.loads(urllib.request.urlopen(f"{base}{job['url']}", timeout=30).read())
                    with lock:
                        (latencies if job["status"] == "done" else failures).append(
                            time.perf_counter() - began if job["status"] == "done" else job["error"])
                        memory.append(rss_kb(server.pid, "VmRSS") / 1024)  # after each finished job

            began = time.perf_counter()
            threads = [threading.Thread(target=client) for _ in range(clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            seconds = time.perf_counter() - began
            end_rss, peak = rss_kb(server.pid, "VmRSS"), rss_kb(server.pid, "VmHWM")
            listed = json.loads(urllib.request.urlopen(f"{base}/api/videos", timeout=30).read())
        finally:
            server.terminate()
            server.wait(timeout=120)
    ordered = sorted(latencies)
    return {"workers": workers, "completed": len(latencies), "failed": len(failures), "reasons": failures,
            "refused_429": refused[0], "unfinished": sum(j["status"] not in ("done", "failed") for j in listed),
            "p50": statistics.median(ordered) if ordered else None,
            "p95": ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))] if ordered else None,
            "per_minute": 60 * len(latencies) / seconds, "rss_start_mb": start_rss / 1024,
            "rss_end_mb": end_rss / 1024, "rss_peak_mb": peak / 1024,
            "rss_quarters_mb": [memory[max(0, len(memory) * k // 4 - 1)] for k in (1, 2, 3, 4)] if memory else []}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models:/synthtext-generator@champion")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--queue", type=int, default=2, help="the server's --queue (small: some requests get 429)")
    args = parser.parse_args()
    for workers in args.workers:
        r = run(args.model, workers, args.requests, args.clients, args.queue)
        print(f"workers {workers}: {r['completed']} completed, {r['failed']} failed, {r['unfinished']} unfinished, "
              f"{r['refused_429']} answered 429 (retried); latency request->video p50 {r['p50']:.2f} s, "
              f"p95 {r['p95']:.2f} s; {r['per_minute']:.1f} videos/min; server RSS {r['rss_start_mb']:.0f} MB "
              f"at start, {r['rss_end_mb']:.0f} MB at end, peak {r['rss_peak_mb']:.0f} MB; after each quarter of "
              f"the jobs {', '.join(f'{m:.0f}' for m in r['rss_quarters_mb'])} MB")
        for reason in r["reasons"]:
            print(f"  failed: {reason}")


if __name__ == "__main__":
    main()
