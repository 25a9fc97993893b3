"""A bounded load test of `synthtext serve` on loopback: REQUESTS jobs from CLIENTS concurrent clients,
for each worker count; prints completed/failed, p50/p95 latency from request to finished video,
throughput, and the server's memory (resident at the start and end, after each quarter of the
jobs, and its peak). The server gives each worker its share of the cores (torch threads).

    python benchmarks/bench_app.py [--model models:/synthtext-generator@champion] [--requests 20]
                                   [--clients 4] [--workers 1 2] [--queue 2]

Every accepted job must end done or failed with a reason (nothing lost); a 429 is retried after
its Retry-After. Each run uses a fresh output folder, so no job is shared with an earlier run.

    python benchmarks/bench_app.py --live [--trials 3] [--chromium /usr/bin/chromium]

Live playback, warm (one job made first), 256 px: for each trial, the time from submitting a job to the
first fragment of ``GET /api/videos/{id}/live`` (read over HTTP), and from "Make the video" on the page
to its ``playing`` event in headless Chromium; each trial a text of its own (no job shared).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
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
    with tempfile.TemporaryDirectory() as folder, \
            server_on(model, folder, "--workers", str(workers), "--queue", str(queue)) as (base, server):
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
    ordered = sorted(latencies)
    return {"workers": workers, "completed": len(latencies), "failed": len(failures), "reasons": failures,
            "refused_429": refused[0], "unfinished": sum(j["status"] not in ("done", "failed") for j in listed),
            "p50": statistics.median(ordered) if ordered else None,
            "p95": ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))] if ordered else None,
            "per_minute": 60 * len(latencies) / seconds, "rss_start_mb": start_rss / 1024,
            "rss_end_mb": end_rss / 1024, "rss_peak_mb": peak / 1024,
            "rss_quarters_mb": [memory[max(0, len(memory) * k // 4 - 1)] for k in (1, 2, 3, 4)] if memory else []}


LIVE_TEXT = ("Good morning, and thank you all for coming here today. We have a lot to talk about, so let us begin. "
             "The garden behind the library took the whole summer to plant. Trial {number}.")


@contextlib.contextmanager
def server_on(model: str, folder: str, *options: str):
    """``synthtext serve`` on a free port of 127.0.0.1 (one worker unless ``options`` say), ready: yields
    (base URL, process)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "synthtext.cli", "serve", "--model", model, "--port", str(port),
                               "--out-dir", folder, *options], cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.STDOUT)
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"{base}/api/voices", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        yield base, server
    finally:
        server.terminate()
        server.wait(timeout=120)


def first_fragment(base: str, job: dict, began: float) -> float:
    """Seconds from ``began`` until the live stream holds its first complete fragment (moof + mdat); the
    stream is then read to its end."""
    data, at = b"", None
    with urllib.request.urlopen(f"{base}{job['live_url']}", timeout=300) as stream:
        while chunk := stream.read1(1 << 16):
            data += chunk
            if at is None:
                kinds, offset = [], 0
                while offset + 8 <= len(data):
                    size = int.from_bytes(data[offset:offset + 4], "big")
                    if size < 8 or offset + size > len(data):
                        break
                    kinds.append(data[offset + 4:offset + 8])
                    offset += size
                if b"mdat" in kinds:
                    at = time.perf_counter() - began
    return at


def live(model: str, trials: int, chromium: str) -> None:
    sys.path.insert(0, str(ROOT))
    from tests.test_serve import DevTools

    with tempfile.TemporaryDirectory() as folder, server_on(model, folder) as (base, _):
        status, photo, _ = post(f"{base}/api/photos", {"sample": PHOTO})
        assert status == 201, photo
        warm = post(f"{base}/api/videos", {"photo": photo["photo"], "emotion": "HAP", "text": "Warming up."})[1]
        first_fragment(base, warm, time.perf_counter())  # the model, voice and landmarks loaded: warm
        fragments = []
        for number in range(trials):
            began = time.perf_counter()
            status, job, _ = post(f"{base}/api/videos", {"photo": photo["photo"], "emotion": "HAP",
                                                         "text": LIVE_TEXT.format(number=number)})
            assert status == 202, job
            fragments.append(first_fragment(base, job, began))
        playing = []
        profile = Path(folder) / "chromium"
        browser = subprocess.Popen([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                    "--remote-debugging-port=0", f"--user-data-dir={profile}",
                                    "--autoplay-policy=no-user-gesture-required", "about:blank"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while not (profile / "DevToolsActivePort").is_file():
                time.sleep(0.2)
            port = (profile / "DevToolsActivePort").read_text().split()[0]
            targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list").read())
            page = DevTools(next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"])
            page("Page.enable")
            page("Page.navigate", url=f"{base}/")
            page.wait("document.readyState === 'complete' && document.querySelectorAll('#samples button').length")
            page.js(f"document.querySelector('#samples button[data-sample=\"{PHOTO}\"]').click()")
            page.wait("!document.getElementById('face-box').hidden")
            for number in range(trials):
                page.js(f"document.getElementById('text').value = {json.dumps(LIVE_TEXT.format(number=100 + number))};"
                        " document.getElementById('text').dispatchEvent(new Event('input'));"
                        " document.getElementById('submit').click()")
                stats = page.wait("window.liveStats.playing !== null && window.liveStats", timeout=300)
                playing.append((stats["playing"] - stats["submitted"]) / 1000)
                page.wait("document.getElementById('status').textContent.startsWith('Done')", timeout=300)
        finally:
            browser.terminate()
            browser.wait(timeout=30)
    print(f"live, warm, 256 px, {trials} trials: submit -> first fragment "
          f"{', '.join(f'{t:.2f}' for t in fragments)} s (median {statistics.median(fragments):.2f}); "
          f"'Make the video' -> playing in headless Chromium {', '.join(f'{t:.2f}' for t in playing)} s "
          f"(median {statistics.median(playing):.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models:/synthtext-generator@champion")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--queue", type=int, default=2, help="the server's --queue (small: some requests get 429)")
    parser.add_argument("--live", action="store_true", help="time live playback instead of the load test")
    parser.add_argument("--trials", type=int, default=3, help="--live: jobs timed")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium", help="--live: the browser")
    args = parser.parse_args()
    if args.live:
        live(args.model, args.trials, args.chromium)
        return
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
