"""A bounded load test of `synthtext serve` on loopback: REQUESTS jobs from CLIENTS concurrent clients,
for each worker count; prints completed/failed, p50/p95 latency from request to finished video,
throughput, and the server's memory (resident at the start and end, after each quarter of the
jobs, and its peak). The server gives each worker its share of the cores (torch threads).

    python benchmarks/bench_app.py [--model models:/synthtext-generator@champion] [--requests 20]
                                   [--clients 4] [--workers 1 2] [--queue 2]

Every accepted job must end done or failed with a reason (nothing lost); a 429 is retried after
its Retry-After. Each run uses a fresh output folder, so no job is shared with an earlier run.

    python benchmarks/bench_app.py --live [--trials 3] [--at-once] [--paste-back] [--seconds 60]
                                   [--chromium /usr/bin/chromium]

Live playback, warm (one job made first), 256 px: for each trial, the time from submitting a job to the first
fragment of ``GET /api/videos/{id}/live`` (read over HTTP), and from "Make the video" on the page to its
``playing`` event in headless Chromium (and to the page's first bytes of the stream, and its ``waiting``
stalls); each trial a text of its own (no job shared). ``--at-once``: the page plays at the first fragment,
as it does where the server's recent videos were made at least 1.5 times faster than they play. For each
HTTP trial also the stream's pace: its video length, the time it came in, and the delay a player starting at
the first fragment needs to play without a stall. ``--paste-back``, ``--seconds``: pasted back at the photo's
size, a text of that length.

    python benchmarks/bench_app.py --load [--clients 4] [--jobs 48]

A team server under load (one worker, the server's own queue and per-token cap): CLIENTS clients, each with
a token of its own, submit JOBS short texts in all (a 429 retried after its Retry-After) and each reads the
live stream of every one of its jobs. Prints every job's end (count by status, as each client's own listing
shows), the server's resident memory sampled every second (start, peak, end, and the mean of each quarter
of the run: flat means no growth trend), and the time to each job's first live fragment, from its
submission and from its start, p50/p95.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
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


def bearer(token: str | None) -> dict:
    return {"Authorization": f"Bearer {token}"} if token else {}


def get(url: str, token: str | None = None):
    with urllib.request.urlopen(urllib.request.Request(url, headers=bearer(token)), timeout=60) as answer:
        return json.loads(answer.read())


def rss_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return 0


def post(url: str, fields: dict, token: str | None = None) -> tuple[int, dict, dict]:
    request = urllib.request.Request(url, data=urllib.parse.urlencode(fields).encode(), method="POST",
                                     headers=bearer(token))
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read()), dict(answer.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), dict(error.headers)


def submit(base: str, fields: dict, token: str | None, refused: list[int], lock) -> tuple[dict, float]:
    """POST a video job, waiting out 429s (each counted in ``refused``) as Retry-After says: the job
    and the time its accepted submission was sent."""
    while True:
        began = time.perf_counter()
        status, job, headers = post(f"{base}/api/videos", fields, token)
        if status != 429:
            break
        with lock:
            refused[0] += 1
        time.sleep(float(headers.get("Retry-After", 1)))
    assert status == 202, job
    return job, began


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
                job, _ = submit(base, fields, None, refused, lock)
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


def box_list(data: bytes, at: int = 0, end: int | None = None) -> list[tuple[bytes, int, int]]:
    """The boxes in ``data[at:end]``: (type, start of its contents, end); one cut off at the end is left out."""
    found, end = [], len(data) if end is None else end
    while at + 8 <= end:
        size, kind = int.from_bytes(data[at:at + 4], "big"), data[at + 4:at + 8]
        head = 16 if size == 1 else 8
        if size == 1 and at + 16 <= end:
            size = int.from_bytes(data[at + 8:at + 16], "big")
        if size < 8 or at + size > end:
            break
        found.append((kind, at + head, at + size))
        at += size
    return found


def video_start(data: bytes, moof: tuple[bytes, int, int]) -> int | None:
    """The decode time (in the track's timescale) at which a fragment's video (track 1) starts: its tfdt."""
    for kind, at, end in box_list(data, moof[1], moof[2]):
        if kind != b"traf":
            continue
        inner = {k: (a, e) for k, a, e in box_list(data, at, end)}
        track = int.from_bytes(data[inner[b"tfhd"][0] + 4:inner[b"tfhd"][0] + 8], "big") if b"tfhd" in inner else 0
        if track == 1 and b"tfdt" in inner:
            a = inner[b"tfdt"][0]
            return int.from_bytes(data[a + 4:a + (12 if data[a] == 1 else 8)], "big")
    return None


def video_timescale(data: bytes, moov: tuple[bytes, int, int]) -> int:
    """The timescale of the first track (the video) in a moov: its mdhd's."""
    at = data.index(b"mdhd", moov[1]) + 4
    return int.from_bytes(data[at + (20 if data[at] == 1 else 12):][:4], "big")


def first_fragment(base: str, job: dict, began: float, token: str | None = None,
                   timeline: list | None = None) -> float | None:
    """Seconds from ``began`` (a ``time.perf_counter()``) until the live stream holds its first complete
    fragment (moof + mdat); the stream is then read to its end. None: no fragment came. ``timeline``, if
    given, gets (seconds from ``began``, seconds of video the stream held then) at each fragment: the video
    up to the start of its newest fragment (a fragment's end is known when the next begins)."""
    data, at, offset, scale = b"", None, 0, None
    request = urllib.request.Request(f"{base}{job['live_url']}", headers=bearer(token))
    with urllib.request.urlopen(request, timeout=600) as stream:
        while chunk := stream.read1(1 << 16):
            data += chunk
            for box in box_list(data, offset):
                offset = box[2]
                if box[0] == b"moov":
                    scale = video_timescale(data, box)
                elif box[0] == b"moof" and timeline is not None and scale:
                    start = video_start(data, box)
                    if start is not None:
                        timeline.append((time.perf_counter() - began, start / scale))
                elif box[0] == b"mdat" and at is None:
                    at = time.perf_counter() - began
    return at


LONG_SENTENCES = ["The first thing on the list is the new garden behind the library.",
                  "It took the whole summer, and many of you helped to plant it.",
                  "Next spring there will be flowers, vegetables and a small pond.",
                  "The second thing is the reading club that meets every Thursday.",
                  "Anyone is welcome to join, and the coffee is always free.",
                  "Finally, please remember to close the gate when you leave the garden."]


def live_text(number: int, seconds: float | None) -> str:
    """Trial ``number``'s text: ``LIVE_TEXT`` (about 9 s of speech), or about ``seconds`` of speech."""
    if not seconds:
        return LIVE_TEXT.format(number=number)
    words, sentences = 0, [f"Trial {number}."]
    while words < 3.3 * seconds:  # the default voice speaks about 3.3 of these words a second, pauses included
        sentences.append(LONG_SENTENCES[len(sentences) % len(LONG_SENTENCES)])
        words += len(sentences[-1].split())
    return " ".join(sentences)


def lag(timeline: list[tuple[float, float]]) -> tuple[float, float, float]:
    """From a stream's (arrival, video held) pairs: (the video's length as far as known, the seconds from the
    first fragment to the last, the delay after the first fragment that a player needs to play without a
    stall: before fragment k arrives the player is at (arrival_k - arrival_0 - delay) and holds video up to
    its start)."""
    first = timeline[0][0]
    need = max(0.0, *((at - first) - held for at, held in timeline))
    return timeline[-1][1], timeline[-1][0] - first, need


def live(model: str, trials: int, chromium: str, at_once: bool = False, paste_back: bool = False,
         seconds: float | None = None) -> None:
    sys.path.insert(0, str(ROOT))
    from tests.test_serve import DevTools

    with tempfile.TemporaryDirectory() as folder, server_on(model, folder) as (base, _):
        status, photo, _ = post(f"{base}/api/photos", {"sample": PHOTO})
        assert status == 201, photo
        pasted = {"paste_back": "true"} if paste_back else {}
        warm = post(f"{base}/api/videos", {"photo": photo["photo"], "emotion": "HAP", "text": "Warming up.",
                                           **pasted})[1]
        first_fragment(base, warm, time.perf_counter())  # the model, voice and landmarks loaded: warm
        fragments, lags = [], []
        for number in range(trials):
            began, timeline = time.perf_counter(), []
            status, job, _ = post(f"{base}/api/videos", {"photo": photo["photo"], "emotion": "HAP",
                                                         "text": live_text(number, seconds), **pasted})
            assert status == 202, job
            fragments.append(first_fragment(base, job, began, timeline=timeline))
            lags.append(lag(timeline))
        playing, steps, stalls = [], [], []
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
            page.js(f"document.getElementById('paste-back').checked = {json.dumps(paste_back)}")
            for number in range(trials):
                if at_once:  # as if this server's recent videos were made fast enough: play at the first fragment
                    page.js(f"madePace[{json.dumps(paste_back)}] = PLAY_AT_ONCE_PACE")
                page.js(f"document.getElementById('text').value = {json.dumps(live_text(100 + number, seconds))};"
                        " document.getElementById('text').dispatchEvent(new Event('input'));"
                        " document.getElementById('submit').click()")
                stats = page.wait("window.liveStats.playing !== null && window.liveStats", timeout=900)
                playing.append((stats["playing"] - stats["submitted"]) / 1000)
                steps.append([None if stats[k] is None else (stats[k] - stats["submitted"]) / 1000
                              for k in ("posted", "firstBytes", "buffered", "started")])
                page.wait("document.getElementById('status').textContent.startsWith('Done')", timeout=900)
                try:  # played to its end: every stall counted
                    page.wait("document.getElementById('player').ended", timeout=120 + 2 * (seconds or 10))
                    stalls.append(page.js("window.liveStats.stalls"))
                except AssertionError:
                    stalls.append("not played to its end")
        finally:
            browser.terminate()
            browser.wait(timeout=30)
    told = (", the page told to play at once" if at_once else "") + (f", a text of about {seconds:.0f} s"
                                                                     if seconds else "")
    size = "pasted back at the photo's size" if paste_back else "256 px"
    print(f"live, warm, {size}, {trials} trials{told}: submit -> first fragment "
          f"{', '.join(f'{t:.2f}' for t in fragments)} s (median {statistics.median(fragments):.2f}); "
          f"'Make the video' -> playing in headless Chromium {', '.join(f'{t:.2f}' for t in playing)} s "
          f"(median {statistics.median(playing):.2f}); 'waiting' stalls {stalls}")
    for number, times in enumerate(steps):
        posted, first_bytes, buffered, started = (f"{t:.2f}" if t is not None else "-" for t in times)
        print(f"  page trial {number}: job posted {posted} s, stream's first bytes {first_bytes} s, first fragment "
              f"buffered {buffered} s, play() {started} s, playing {playing[number]:.2f} s")
    for number, (length, made, need) in enumerate(lags):
        print(f"  stream trial {number}: {length:.1f} s of video came in {made:.1f} s after its first fragment "
              f"(made at {length / max(made, 1e-9):.2f}x real time); a player starting at the first fragment "
              f"needs a delay of {need:.2f} s to play without a stall")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def load(model: str, clients: int, jobs: int) -> None:
    """The load run (see the module's text); prints its figures."""
    with tempfile.TemporaryDirectory() as folder:
        tokens = {f"client{k}": secrets.token_urlsafe(24) for k in range(clients)}
        tokens_file = Path(folder) / "tokens.txt"
        tokens_file.write_text("".join(f"{name}:{token}\n" for name, token in tokens.items()))
        with server_on(model, f"{folder}/out", "--tokens", str(tokens_file)) as (base, server):
            photos = {}
            for name, token in tokens.items():  # each client its own photo
                status, photo, _ = post(f"{base}/api/photos", {"sample": PHOTO}, token)
                assert status == 201, photo
                photos[name] = photo["photo"]
            memory, sampling = [], threading.Event()

            def sample() -> None:
                while not sampling.wait(1.0):
                    memory.append(rss_kb(server.pid, "VmRSS") / 1024)

            numbers, lock = iter(range(jobs)), threading.Lock()
            refused, submitted, streams = [0], {}, []  # submitted: job id -> (client, submit time)
            fragments: dict[str, float | None] = {}

            def watch(job: dict, began: float, token: str) -> None:
                try:
                    at = first_fragment(base, job, began, token)
                except OSError:
                    at = None
                with lock:
                    fragments[job["id"]] = None if at is None else began + at

            def client(name: str) -> None:
                token = tokens[name]
                for number in numbers:
                    fields = {"photo": photos[name], "emotion": "HAP",
                              "text": f"{SENTENCES[number % len(SENTENCES)]} Number {number}."}
                    job, began = submit(base, fields, token, refused, lock)
                    thread = threading.Thread(target=watch, args=(job, began, token))
                    thread.start()
                    with lock:
                        submitted[job["id"]] = (name, began, time.time() - time.perf_counter())
                        streams.append(thread)

            memory.append(rss_kb(server.pid, "VmRSS") / 1024)
            sampler = threading.Thread(target=sample)
            sampler.start()
            began = time.perf_counter()
            threads = [threading.Thread(target=client, args=(name,)) for name in tokens]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            for thread in list(streams):
                thread.join()
            listed = {name: get(f"{base}/api/videos", token) for name, token in tokens.items()}
            seconds = time.perf_counter() - began
            sampling.set()
            sampler.join()
            memory.append(rss_kb(server.pid, "VmRSS") / 1024)
            peak_hwm = rss_kb(server.pid, "VmHWM") / 1024
    mine = {job["id"]: job for jobs_of in listed.values() for job in jobs_of}
    counts: dict[str, int] = {}
    for job_id in submitted:
        status = mine[job_id]["status"] if job_id in mine else "missing"
        counts[status] = counts.get(status, 0) + 1
    foreign = sum(submitted.get(job["id"], ("",))[0] != name for name, jobs_of in listed.items() for job in jobs_of)
    from_submit = [fragments[j] - submitted[j][1] for j in submitted if fragments.get(j) is not None]
    from_start = [fragments[j] + submitted[j][2] - mine[j]["started"] for j in submitted
                  if fragments.get(j) is not None and mine.get(j, {}).get("started")]
    quarters = [statistics.mean(memory[len(memory) * k // 4:max(len(memory) * (k + 1) // 4, len(memory) * k // 4 + 1)])
                for k in range(4)]
    print(f"load: {clients} clients (a token each), {jobs} jobs, {seconds:.0f} s; jobs by status "
          f"{dict(sorted(counts.items()))} ({refused[0]} submissions answered 429, retried; {foreign} jobs listed "
          f"to a client that did not submit them); live streams with a fragment {len(from_submit)} of {len(submitted)}")
    print(f"server RSS ({len(memory)} samples, 1 s apart): start {memory[0]:.0f} MB, peak {max(memory):.0f} MB "
          f"(VmHWM {peak_hwm:.0f} MB), end {memory[-1]:.0f} MB; mean of each quarter of the run "
          f"{', '.join(f'{m:.0f}' for m in quarters)} MB")
    if from_submit:
        print(f"first live fragment: from submission p50 {percentile(from_submit, 0.5):.2f} s, p95 "
              f"{percentile(from_submit, 0.95):.2f} s (the queue's wait included); from the job's start p50 "
              f"{percentile(from_start, 0.5):.2f} s, p95 {percentile(from_start, 0.95):.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models:/synthtext-generator@champion")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--queue", type=int, default=2, help="the server's --queue (small: some requests get 429)")
    parser.add_argument("--live", action="store_true", help="time live playback instead of the load test")
    parser.add_argument("--at-once", action="store_true", help="--live: the page plays at the first fragment, "
                        "as where the server's recent videos were made fast enough (its own judgement skipped)")
    parser.add_argument("--paste-back", action="store_true", help="--live: pasted back at the photo's size")
    parser.add_argument("--seconds", type=float, help="--live: a text of about this many seconds of speech")
    parser.add_argument("--load", action="store_true", help="the team-server load run: tokens, live streams, memory")
    parser.add_argument("--jobs", type=int, default=48, help="--load: jobs in all")
    parser.add_argument("--trials", type=int, default=3, help="--live: jobs timed")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium", help="--live: the browser")
    args = parser.parse_args()
    if args.live:
        live(args.model, args.trials, args.chromium, args.at_once, args.paste_back, args.seconds)
        return
    if args.load:
        load(args.model, args.clients, args.jobs)
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
