"""CREMA-D-scale prep: convert_fps + align throughput per worker count, worker memory, a full-corpus forecast.

    python benchmarks/bench_scale.py [--source DIR] [--clips 400] [--workers 1 2] [--profile 8]
                                     [--video encode] [--preset veryfast] [--compression null]
                                     [--detect-upsample 1] [--flows] [--copies-to DIR]

Copies the source clips (default data/raw/sample, else ../shared/realdata/crema-d) round-robin under
N unique CREMA-D names into a temporary raw folder. For each worker count it converts all N clips,
then aligns all N, in a process pool (one landmark backend per worker, OpenCV on one thread, malloc
on huge pages as in the stages' workers), calling convert_clip / align_clip directly (no Prefect, no
caches). Prints wall time, clips/s and frames/s per stage and combined; each worker's peak RSS after
its first, middle and last aligned clip (flat in N unless the worker leaks); the predicted minutes
for the full CREMA-D (7,442 clips averaging 2.54 s) against the 20-minute target; and a cProfile
breakdown of one process converting and aligning K clips serially. With --flows it then runs the
stages' real flows (Prefect tasks of batches of clips, each clip's result cached, the processes
runner, reports and the contact sheet, against one local Prefect server) on the same clips, for what
the orchestration adds.

Per-clip costs (ffmpeg start-up, detection, file writes) weigh more on short clips, so the copies
match CREMA-D's mean duration: where the sources are shorter, some copies are a source played twice
(ffmpeg's concat demuxer, streams copied), enough of them to bring the mean to 2.54 s. The forecast
scales by frames and by clips, which then agree.

With --copies-to DIR it only writes the N copies to DIR: ``--clips 7442`` makes a corpus of CREMA-D's
size, names and mean duration, for timing the real thing (``data.source: DIR``, then ``dvc repro align``).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import NamedTuple

import cv2
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.runner import huge_pages_for_children  # noqa: E402
from synthtext import EMOTIONS, INTENSITIES  # noqa: E402
from synthtext.data import media  # noqa: E402
from synthtext.data.align import align_clip  # noqa: E402
from synthtext.data.convert import convert_clip, read_sidecar, video_input  # noqa: E402
from synthtext.data.landmarks import make_backend  # noqa: E402
from synthtext.data.naming import CREMA_SENTENCES, find_videos, parse_clip_name  # noqa: E402
from synthtext.ops.config import VIDEO_MODES, AlignParams, ConvertParams, RunnerParams  # noqa: E402
from synthtext.ops.errors import ClipRejected  # noqa: E402
from synthtext.ops.prefect_server import free_port, server_env, start_server, stop_server, wait_healthy  # noqa: E402

CREMA_CLIPS = 7442
CREMA_MEAN_S = 2.54  # mean CREMA-D clip duration
CREMA_DIR = ROOT.parent / "shared" / "realdata" / "crema-d"
TARGET_MIN = 20
FPS = ConvertParams().fps
# Profile groups: the cumulative time of these synthtext functions (none of them calls another).
GROUPS = {
    "ffmpeg conversion": [("media.py", "_split_av")],
    "decoding frames": [("media.py", "iter_frames")],
    "face detection": [("landmarks.py", "detect")],  # _DlibDetection.detect: the dlib HOG detector call
    "landmark prediction": [("landmarks.py", "landmarks")],  # DlibBackend.landmarks: the shape predictor call
    "warping": [("align.py", "warp_frame")],
    "HDF5 write": [("clipfile.py", "write_clip")],
    "audio read": [("media.py", "read_audio")],
}

_STATE: dict = {}  # per process: its landmark backend and how many clips it has done


def _init_worker(video: str = ConvertParams().video, preset: str = ConvertParams().preset,
                 compression: str | None = AlignParams().compression,
                 upsample: int = AlignParams().detect_upsample) -> None:
    cv2.setNumThreads(1)
    params = AlignParams(compression=compression, detect_upsample=upsample)
    _STATE.update(backend=make_backend(params.backend, params.detect_upsample), done=0, align=params,
                  convert=ConvertParams(video=video, preset=preset))


def _ready(_: int) -> int:
    time.sleep(0.5)  # keeps each worker busy so that every worker starts (and loads its backend) before timing
    return os.getpid()


def _done(frames: int) -> tuple[int, int, int, float]:
    _STATE["done"] += 1
    return os.getpid(), _STATE["done"], frames, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _convert(src: Path, out: Path) -> tuple[int, int, int, float]:
    try:
        frames = convert_clip(src, out, parse_clip_name(src).clip_id, _STATE["convert"], "-", "-")["frames"]
    except ClipRejected:
        frames = 0
    return _done(frames)


def _align(src: Path, out: Path) -> tuple[int, int, int, float]:
    name = parse_clip_name(src)
    sidecar = read_sidecar(out, name.clip_id)
    frames = 0
    if sidecar is not None:
        video, wav, start = video_input(out, sidecar)
        try:
            frames = align_clip(name, video, wav, out / f"{name.clip_id}.h5", _STATE["backend"], _STATE["align"],
                                FPS, "-", "-", start)["frames"]
        except ClipRejected:
            pass
    return _done(frames)


def crema_name(i: int) -> str:
    """The i-th unique CREMA-D name (91 actors x 12 sentences x 6 emotions x 4 levels)."""
    sentences = list(CREMA_SENTENCES)
    return (f"{1001 + i % 91}_{sentences[i // 91 % 12]}_{EMOTIONS[i // (91 * 12) % len(EMOTIONS)]}_"
            f"{INTENSITIES[i // (91 * 12 * len(EMOTIONS)) % len(INTENSITIES)]}")


def make_clips(sources: list[Path], n: int, raw: Path, mean_s: float = CREMA_MEAN_S,
               scratch: Path | None = None) -> tuple[list[Path], float]:
    """N copies in the new folder ``raw`` under unique CREMA-D names, round-robin over the sources;
    while the copies' mean duration is below ``mean_s``, the next copy is its source played twice
    (made in ``scratch``, default beside ``raw``). Returns the copies and their mean duration."""
    raw.mkdir(parents=True)
    durations = {src: media.probe(src).duration for src in sources}
    twice = doubled(sources, (scratch or raw.parent) / "twice") \
        if sum(durations.values()) / len(sources) < mean_s else {}
    clips, total = [], 0.0
    for i in tqdm(range(n), desc="copying clips", leave=False):
        src = sources[i % len(sources)]
        if src in twice and total + durations[src] < mean_s * (i + 1) - durations[src] / 2:
            src, seconds = twice[src], 2 * durations[src]
        else:
            seconds = durations[src]
        total += seconds
        clips.append(raw / f"{crema_name(i)}{src.suffix.lower()}")
        shutil.copyfile(src, clips[-1])
    return clips, total / n


def doubled(sources: list[Path], folder: Path) -> dict[Path, Path]:
    """Each source played twice in one file (ffmpeg's concat demuxer, streams copied)."""
    folder.mkdir()
    out = {}
    for src in sources:
        listing = folder / f"{src.stem}.txt"
        listing.write_text(f"file '{src.resolve()}'\n" * 2)
        out[src] = folder / src.name
        subprocess.run([media.ffmpeg_exe(), "-hide_banner", "-v", "error", "-f", "concat", "-safe", "0",
                        "-i", str(listing), "-c", "copy", str(out[src])], check=True)
    return out


def run_stage(pool: ProcessPoolExecutor, fn, clips: list[Path], out: Path, desc: str) -> tuple[float, list]:
    started = time.perf_counter()
    futures = [pool.submit(fn, src, out) for src in clips]
    results = [f.result() for f in tqdm(as_completed(futures), total=len(futures), desc=desc, leave=False)]
    return time.perf_counter() - started, results


class StageRun(NamedTuple):
    """One stage's run over all the clips: wall seconds, clips and frames written, and, for the flows,
    the seconds of it that do not grow with the clips (start-up, worker processes, reports)."""

    seconds: float
    clips: int
    frames: int
    fixed: float | None = None


def print_rates(run: dict[str, StageRun]) -> None:
    """Wall time, clips/s and frames/s of convert, align and both."""
    conv, align = run["convert"], run["align"]
    print(rate("convert", conv.seconds, conv.clips, conv.frames))
    print(rate("align", align.seconds, align.clips, align.frames))
    print(rate("combined", conv.seconds + align.seconds, align.clips, align.frames))


def rate(what: str, seconds: float, clips: int, frames: int) -> str:
    return f"  {what:<9}: {seconds:7.1f} s, {clips / seconds:6.2f} clips/s, {frames / seconds:7.1f} frames/s"


def memory_report(results: list) -> None:
    by_pid = defaultdict(list)
    for pid, seq, _, rss in results:
        by_pid[pid].append((seq, rss))
    growth = []
    for pid, rows in sorted(by_pid.items()):
        rss = [r for _, r in sorted(rows)]  # the worker's peak RSS after each of its clips, in order
        half = max(len(rss) // 2 - 1, 0)
        growth.append(rss[-1] - rss[half])
        print(f"  worker {pid}: peak RSS {rss[0]:.0f} MB after its first aligned clip, {rss[half]:.0f} MB after "
              f"{half + 1}, {rss[-1]:.0f} MB after all {len(rss)}")
    # the first clips raise the peak to what the longest clip needs (its frames are kept for warping);
    # a leak keeps raising it after that
    print(f"  growth over the second half of the clips: {max(growth):+.1f} MB (largest over {len(growth)} workers)")


def bench_workers(workers: int, clips: list[Path], scratch: Path, settings: tuple) -> dict[str, StageRun]:
    """Convert then align all clips with ``workers`` processes; returns each stage's run."""
    out = Path(tempfile.mkdtemp(prefix=f"w{workers}-", dir=scratch))
    ctx = get_context("spawn")
    with huge_pages_for_children(), ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                                        initializer=_init_worker, initargs=settings) as pool:
        list(pool.map(_ready, range(workers)))
        t_conv, converted = run_stage(pool, _convert, clips, out, f"convert x{workers}")
        t_align, aligned = run_stage(pool, _align, clips, out, f"align x{workers}")
    shutil.rmtree(out)
    f_conv, f_align = sum(r[2] for r in converted), sum(r[2] for r in aligned)
    n_conv, n_align = sum(r[2] > 0 for r in converted), sum(r[2] > 0 for r in aligned)
    print(f"\n{workers} worker(s), {len(clips)} clips: {n_conv} converted ({f_conv} frames), {n_align} aligned "
          f"({f_align} frames)")
    run = {"convert": StageRun(t_conv, n_conv, f_conv), "align": StageRun(t_align, n_align, f_align)}
    print_rates(run)
    memory_report(aligned)
    return run


FEW = 6  # clips of the flows' first run, which measures their fixed cost (start-up, worker processes, reports)


def bench_flows(clips: list[Path], scratch: Path, settings: tuple, workers: int, kind: str) -> dict[str, StageRun]:
    """The convert_fps and align stages' own flows with the ``kind`` runner and ``workers`` (against the
    Prefect server ``prefect_server`` started), on the first FEW clips and then on all: returns each
    stage's run on all, its fixed part from the two runs (t = fixed + clips x per clip)."""
    from flows import align as align_flow  # imported here: Prefect reads its settings on import
    from flows import convert_fps as convert_flow

    video, preset, compression, upsample = settings
    runner = RunnerParams(kind=kind, workers=workers)
    align_params = AlignParams(compression=compression, detect_upsample=upsample)
    few = scratch / f"few-{kind}"
    few.mkdir()
    for clip in clips[:FEW]:
        (few / clip.name).symlink_to(clip)
    runs = []
    for raw in (few, clips[0].parent):
        out = Path(tempfile.mkdtemp(prefix="flows-", dir=scratch))
        started = time.perf_counter()
        converted = convert_flow.run(str(raw), str(out / "fps25"), ConvertParams(video=video, preset=preset), runner)
        t_conv = time.perf_counter() - started
        started = time.perf_counter()
        aligned = align_flow.run(str(out / "fps25"), str(out / "clips"), str(out / "report.json"),
                                 str(out / "metrics.json"), align_params, runner, preview_path=str(out / "preview.png"))
        runs.append({"convert": (t_conv, converted), "align": (time.perf_counter() - started, aligned)})
    result = {}
    for stage in ("convert", "align"):
        (t_few, fan_few), (t_all, fan_all) = (r[stage] for r in runs)
        per_clip = (t_all - t_few) / (len(fan_all.ok) - len(fan_few.ok))
        # too few clips for the difference to rise above the noise: take nothing as fixed (the upper bound)
        fixed = max(0.0, t_all - per_clip * len(fan_all.ok)) if per_clip > 0 else 0.0
        result[stage] = StageRun(t_all, len(fan_all.ok), sum(r["frames"] for r in fan_all.ok), fixed)
    conv, align = result["convert"], result["align"]
    print(f"\nthe stages' flows (Prefect, {kind} runner x{workers}), {len(clips)} clips: {conv.clips} converted, "
          f"{align.clips} aligned ({align.frames} frames); fixed cost (from a run on {FEW} clips): convert "
          f"{conv.fixed:.1f} s, align {align.fixed:.1f} s")
    print_rates(result)
    return result


@contextlib.contextmanager
def prefect_server(home: Path):
    """One local Prefect server (API only) for the flows, as `make demo` runs one."""
    port = free_port()
    server = start_server(home, port)
    url = f"http://127.0.0.1:{port}/api"
    os.environ.update({**server_env(home), "PREFECT_API_URL": url})
    try:
        if not wait_healthy(url, server):
            sys.exit("the Prefect server did not start")
        yield
    finally:
        stop_server(server)


def profile(clips: list[Path], scratch: Path, settings: tuple) -> None:
    """cProfile one process converting and aligning ``clips`` serially; print time per group."""
    _init_worker(*settings)
    out = Path(tempfile.mkdtemp(prefix="profile-", dir=scratch))
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for src in tqdm(clips, desc="profiling", leave=False):
        _convert(src, out)
        _align(src, out)
    profiler.disable()
    wall = time.perf_counter() - started
    shutil.rmtree(out)
    stats = pstats.Stats(profiler).stats  # (file, line, function) -> (calls, ncalls, tottime, cumtime, callers)
    total = sum(tt for _, _, tt, _, _ in stats.values())
    print(f"\nprofile of 1 process, {len(clips)} clips converted + aligned serially: {wall:.1f} s wall, "
          f"{total:.1f} s profiled")
    rest = total
    for group, functions in GROUPS.items():
        seconds = sum(ct for (file, _, func), (_, _, _, ct, _) in stats.items()
                      if any(file.endswith(f"synthtext{os.sep}{f}") and func == fn for f, fn in functions))
        rest -= seconds
        print(f"  {group:<20}: {seconds:7.2f} s {100 * seconds / total:5.1f}%")
    print(f"  {'other':<20}: {rest:7.2f} s {100 * rest / total:5.1f}%")


def crema_mean_duration() -> float | None:
    """Mean duration of the real CREMA-D clips in ../shared/realdata/crema-d, when present."""
    files = sorted(CREMA_DIR.glob("*.flv")) if CREMA_DIR.is_dir() else []
    return sum(media.probe(f).duration for f in files) / len(files) if files else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=ROOT / "data" / "raw" / "sample")
    parser.add_argument("--clips", type=int, default=400)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--profile", type=int, default=8, help="clips to profile serially (0: skip)")
    parser.add_argument("--video", default=ConvertParams().video, choices=VIDEO_MODES, help="convert_fps.video")
    parser.add_argument("--preset", default=ConvertParams().preset, help="convert_fps.preset (x264)")
    parser.add_argument("--compression", default=AlignParams().compression, type=lambda v: None if v == "null" else v,
                        help="align.compression: null | gzip | lzf")
    parser.add_argument("--detect-upsample", type=int, default=AlignParams().detect_upsample,
                        help="align.detect_upsample (0: faces of 80 px and up, 4x faster detection)")
    parser.add_argument("--flows", nargs="*", choices=("threads", "processes", "dask"),
                        help="also run the stages' own flows (Prefect) with these runners (none named: processes)")
    parser.add_argument("--copies-to", type=Path, metavar="DIR",
                        help="only write the N copies to the new folder DIR and stop: a corpus of CREMA-D's size "
                             "and names for a real `dvc repro` (data.source: DIR)")
    args = parser.parse_args()
    settings = (args.video, args.preset, args.compression, args.detect_upsample)
    source = args.source if args.source.is_dir() or args.source != parser.get_default("source") else CREMA_DIR
    sources = find_videos(source)
    if not sources:
        sys.exit(f"no clips in {source}")
    if args.copies_to:
        if args.copies_to.exists():
            sys.exit(f"{args.copies_to} exists: name a new folder")
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
            clips, mean = make_clips(sources, args.clips, args.copies_to, scratch=Path(tmp))
        print(f"{len(clips)} clips (mean {mean:.2f} s) in {args.copies_to}")
        return
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        scratch = Path(tmp)
        clips, clips_mean = make_clips(sources, args.clips, scratch / "raw")
        print(f"{len(clips)} clips from {len(sources)} source clips in {source} (mean {clips_mean:.2f} s); "
              f"convert_fps.video "
              f"{args.video}, preset {args.preset}, align.compression {args.compression}, "
              f"align.detect_upsample {args.detect_upsample}")
        runs = {f"{w} worker(s)": bench_workers(w, clips, scratch, settings) for w in args.workers}
        if args.flows is not None:
            with prefect_server(scratch / "prefect"):
                for kind in args.flows or ["processes"]:
                    runs[f"flows, {kind} x{max(args.workers)}"] = bench_flows(clips, scratch, settings,
                                                                              max(args.workers), kind)
        if args.profile:
            profile(clips[:args.profile], scratch, settings)
    measured = crema_mean_duration()
    print(f"\nmean clip duration: the benchmark's clips {clips_mean:.2f} s; CREMA-D {CREMA_MEAN_S:.2f} s"
          + (f" (the real CREMA-D clips in {CREMA_DIR}: {measured:.2f} s)" if measured else ""))
    frames = CREMA_CLIPS * CREMA_MEAN_S * FPS
    print(f"predicted full CREMA-D ({CREMA_CLIPS} clips x {CREMA_MEAN_S:.2f} s = {frames:,.0f} frames at {FPS} fps), "
          f"target {TARGET_MIN} min:")
    for label, run in runs.items():
        conv, align = (frames * run[k].seconds / run[k].frames / 60 for k in ("convert", "align"))
        by_clips = sum(CREMA_CLIPS * r.seconds / r.clips for r in run.values()) / 60
        print(f"  {label}: convert {conv:5.1f} + align {align:5.1f} = {conv + align:5.1f} min by frames "
              f"({verdict(conv + align)}); {by_clips:5.1f} min by clips")
        if run["align"].fixed is not None:  # a flows run: its fixed cost counted once, not once per 150 clips
            once = sum(r.fixed + CREMA_CLIPS * (r.seconds - r.fixed) / r.clips for r in run.values()) / 60
            print(f"  {label}, the fixed cost counted once: {once:5.1f} min ({verdict(once)})")


def verdict(minutes: float) -> str:
    return "within" if minutes <= TARGET_MIN else f"{minutes / TARGET_MIN:.2f}x over"


if __name__ == "__main__":
    main()
