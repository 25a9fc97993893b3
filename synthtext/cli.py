"""The ``synthtext`` command line: user input in, flows run, one clear line on a mistake."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from synthtext.app.access import add_serve_options
from synthtext.ops.config import CorpusParams, RunnerParams
from synthtext.ops.errors import SynthTextError
from synthtext.ops.tracking import CHAMPION_URI


def _inspect(args: argparse.Namespace) -> None:
    from synthtext.data.clipfile import read_clip
    from synthtext.data.preview import align_preview

    for path in args.clips:
        if not Path(path).is_file():
            raise SynthTextError(f"{path}: no such file")
        clip = read_clip(path)
        seconds = len(clip.video) / clip.attrs["fps"]
        print(f"{path}: {len(clip.video)} frames ({seconds:.2f} s) of {clip.video.shape[1]}x{clip.video.shape[2]}, "
              f"{len(clip.audio)} audio samples at {clip.attrs['sample_rate']} Hz")
        for key, value in clip.attrs.items():
            print(f"  {key}: {value}")
    if args.sheet:
        print(f"contact sheet: {align_preview(args.clips, args.sheet, frames=args.frames)}")


def _sample_corpus(args: argparse.Namespace) -> None:
    from flows.sample_corpus import run
    from synthtext.data.corpus.generate import check_output_folder, plan

    check_output_folder(Path(args.out))
    corpus = CorpusParams(identities=args.identities, sentences=args.sentences, intensity=args.intensity,
                          seed=args.seed, photos=args.photos, voice=args.voice)
    plan(corpus)  # bad sizes fail here, before a Prefect server starts
    fan, seconds = run(args.out, corpus, RunnerParams(kind="threads", workers=args.workers))
    frames = sum(r["frames"] for r in fan.results)
    print(f"{len(fan.results)} clips ({frames} frames) written to {args.out} in {seconds:.1f} s; "
          f"contact sheet: {Path(args.out) / 'contact_sheet.png'}")


def _add_video_options(command: argparse.ArgumentParser, orchestrate: bool) -> None:
    """The options ``generate`` and ``generate-batch`` share. ``orchestrate``: whether the jobs run as a
    Prefect flow by default. One video runs in this process (5.8 s cold against 15.9 s through Prefect,
    which starts a temporary server first); a batch file runs as a flow, whose runs the Prefect UI shows."""
    command.add_argument("--model", default=CHAMPION_URI,
                         help=f"a model folder (models/generator) or registry URI (default {CHAMPION_URI})")
    command.add_argument("--tts", default="piper", choices=["piper", "coqui"], help="speech engine")
    command.add_argument("--speed", type=float, default=1.0, help="speaking rate, x the voice's normal rate")
    command.add_argument("--seed", type=int, default=0, help="voice and motion noise seed (same seed, same video)")
    command.add_argument("--paste-back", action="store_true",
                         help="put the generated face back into the photo (output at the photo's resolution)")
    command.add_argument("--size", type=int, help="side of the output face video (default: twice the aligned crop)")
    command.add_argument("--language", default="en", help="coqui multilingual models: language code")
    command.add_argument("--references", help="coqui XTTS: folder with a reference clip per emotion (ANG.wav ...)")
    command.add_argument("--strict", action="store_true",
                         help="exit with status 2 when a video's face does not read as the emotion asked for")
    command.add_argument("--evaluator", help="an evaluator.json to check the videos with (default: the one stored "
                         "with the model; reports/evaluator.json after dvc repro)")
    command.add_argument("--head-motion", default="1.0", metavar="0..1",
                         help="how much the head moves with the speech: 0 still, 1 fully (default 1)")
    command.add_argument("--no-blinks", dest="blinks", action="store_false",
                         help="eyes that do not blink (default: natural blinking)")
    command.add_argument("--prefect", dest="orchestrate", action="store_true", default=orchestrate,
                         help="run the jobs as a Prefect flow (tasks, retries and runs in the Prefect UI)"
                         + (" (the default here)" if orchestrate else ""))
    command.add_argument("--no-prefect", dest="orchestrate", action="store_false",
                         help="run the jobs in this process without a Prefect server (faster start)"
                         + ("" if orchestrate else " (the default here)"))


def _options(args: argparse.Namespace):
    from synthtext.inference.jobs import Options

    if args.size is not None and (args.size < 16 or args.size % 2):
        raise SynthTextError(f"--size {args.size}: use an even number of pixels, at least 16")
    if args.evaluator and not Path(args.evaluator).is_file():
        raise SynthTextError(f"evaluator {args.evaluator} not found (reports/evaluator.json is written by evaluate)")
    return Options(tts=args.tts, speed=args.speed, seed=args.seed, paste_back=args.paste_back, size=args.size,
                   language=args.language, references=args.references, evaluator=args.evaluator)


def _report(summary: dict, strict: bool = False) -> int:
    """One line per job, a warning per segment whose face does not show the emotion asked for; the exit
    status says whether all of them worked (1: a job failed; with ``strict``, 2: a face did not show its
    emotion)."""
    results = summary["results"]
    skipped_check = {r["self_check"]["skipped"] for r in results if "skipped" in r.get("self_check", {})}
    for note in sorted(skipped_check):
        print(f"synthtext: note: the emotion self-check is skipped: {note}", file=sys.stderr)
    for r in results:
        where = f"row {r['row']}: " if r.get("row") else ""
        if r["status"] == "ok":
            times = ", ".join(f"{k} {v:.2f} s" for k, v in r["times"].items())
            print(f"{where}{r['out']}: {r['frames']} frames ({r['seconds']:.2f} s of speech) [{times}]")
            if r["faces"] > 1:
                print(f"synthtext: warning: {r['faces']} faces in the photo; used the largest", file=sys.stderr)
            for warning in r.get("warnings", []):
                print(f"synthtext: warning: {where}{warning}", file=sys.stderr)
        elif r["status"] == "skipped":
            print(f"{where}{r['out']}: up to date, skipped")
        else:
            print(f"synthtext: error: {where}{r['reason']}", file=sys.stderr)
    if any(r["status"] == "failed" for r in results):
        return 1
    return 2 if strict and any(r.get("warnings") for r in results) else 0


def _warm_up() -> None:
    """librosa loads its feature modules (and numba compiles their kernels) at the first log-mel: about
    5 s of a fresh process's first video. Started in a thread, it happens while the voice speaks and
    the face is found."""
    import numpy as np

    from synthtext.data.features import log_mel
    from synthtext.model import ModelConfig

    log_mel(np.zeros(1600, np.float32), ModelConfig())


def _run_jobs(jobs: list, model: str, options, orchestrate: bool, workers: int = 2) -> dict:
    """Through the Prefect flow (--prefect), or the same steps in this process."""
    import threading
    from dataclasses import asdict

    threading.Thread(target=_warm_up, daemon=True).start()

    if orchestrate:
        from flows.generate import run

        return run(jobs, model, options, workers=workers)
    from synthtext.inference.videojobs import make_videos

    return make_videos([asdict(j) for j in jobs], model, asdict(options))


def _run_live(job, model: str, options, port: int) -> dict:
    """The job made in this process, its video served while it is made at http://127.0.0.1:PORT/live (a
    fragmented MP4 that grows; printed first): open it in VLC or ffplay. Once the video is done, the
    players already reading get the rest, then the command ends."""
    import tempfile
    import threading
    import time
    from dataclasses import asdict

    from synthtext.inference.live import serve_growing_file
    from synthtext.inference.videojobs import make_videos

    threading.Thread(target=_warm_up, daemon=True).start()
    finished = threading.Event()
    with tempfile.TemporaryDirectory(prefix="synthtext-live-") as scratch:
        stream = Path(scratch) / "live.mp4"
        try:
            server = serve_growing_file(stream, finished, port)
        except OSError as exc:
            raise SynthTextError(f"--live-port {port}: cannot listen there ({exc.strerror}): give another port, "
                                 "or 0 for any free one") from exc
        print(f"live: http://127.0.0.1:{server.server_address[1]}/live (open it in VLC or ffplay while the video "
              "is made)", flush=True)
        try:
            return make_videos([asdict(job)], model, asdict(options), live=str(stream))
        finally:
            finished.set()
            end = time.monotonic() + 60
            while server.readers and time.monotonic() < end:  # the players reading get the end of the video
                time.sleep(0.1)
            server.shutdown()
            server.server_close()
            stream.unlink(missing_ok=True)


def _generate(args: argparse.Namespace) -> int:
    from synthtext.inference.infer import check_model_ref
    from synthtext.inference.jobs import make_job, parse_head_motion
    from synthtext.inference.markup import has_tags, parse_intensity, starts_with_tag
    from synthtext.inference.tts.text import read_text

    if args.all_emotions and args.emotion:
        raise SynthTextError("give --emotion or --all-emotions, not both")
    intensity, head_motion = parse_intensity(args.intensity), parse_head_motion(args.head_motion)
    options = _options(args)
    given = [name for name, value in (("--text", args.text), ("--text-file", args.text_file),
                                      ("--audio", args.audio)) if value is not None]
    if not given:
        raise SynthTextError("give --text, --text-file or --audio (recorded speech)")
    if args.audio is not None and any(has_tags(v) for v in (args.text or "",) if v):
        raise SynthTextError("emotion tags set the emotion of text the voice speaks; --audio has no text to tag: "
                             "use --emotion instead")
    if len(given) > 1:
        raise SynthTextError(f"give one of --text, --text-file and --audio, not {' and '.join(given)}")
    text = None if args.audio else read_text(args.text, args.text_file)
    if not args.all_emotions and not args.emotion and not starts_with_tag(text or ""):
        raise SynthTextError("give --emotion (ANG, DIS, FEA, HAP, NEU, SAD or a name) or --all-emotions, "
                             "or start the text with an emotion tag ([happy] ...)")
    if not 0 <= args.live_port <= 65535:
        raise SynthTextError(f"--live-port {args.live_port}: give a port 1..65535, or 0 for any free one")
    if args.live and args.all_emotions:
        raise SynthTextError("--live streams one clip as it is made; the six-emotion grid (--all-emotions) is made "
                             "all at once: drop one of them")
    job = make_job(args.image, text, args.emotion, args.out, intensity, args.voice, args.all_emotions,
                   audio=args.audio, head_motion=head_motion, blinks=args.blinks)
    if args.live:
        summary = _run_live(job, check_model_ref(args.model), options, args.live_port)
    else:
        summary = _run_jobs([job], check_model_ref(args.model), options, args.orchestrate)
    code = _report(summary, args.strict)
    if code == 0:
        print(f"video: {args.out} (speech: {Path(args.out).with_suffix('.wav')})")
    return code


def _generate_batch(args: argparse.Namespace) -> int:
    from synthtext.inference.infer import check_model_ref
    from synthtext.inference.jobs import parse_head_motion, read_jobs
    from synthtext.ops.files import write_json_atomic

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    options = _options(args)
    head_motion = parse_head_motion(args.head_motion)
    jobs, bad_rows = read_jobs(Path(args.jobs), out_dir, head_motion, args.blinks)
    summary = _run_jobs(jobs, check_model_ref(args.model), options, args.orchestrate, args.workers) \
        if jobs else {"results": [], "seconds": 0.0}
    summary["results"] = sorted(summary["results"] + bad_rows, key=lambda r: r["row"])
    write_json_atomic(out_dir / "batch_report.json", summary)
    code = _report(summary, args.strict)
    counts = {s: sum(r["status"] == s for r in summary["results"]) for s in ("ok", "skipped", "failed")}
    print(f"{len(summary['results'])} jobs: {counts['ok']} rendered, {counts['skipped']} up to date, "
          f"{counts['failed']} failed in {summary['seconds']:.1f} s; report: {out_dir / 'batch_report.json'}")
    return code


def _lineage(args: argparse.Namespace) -> int:
    import json

    from synthtext.ops import lineage

    repo = Path(args.repo)
    if args.clip:
        found = lineage.versions_with_clip(repo, args.clip)
        if args.json:
            print(json.dumps({"clip": args.clip, "versions": found}, indent=2))
            return 0
        if not found:
            print(f"no registered model version was trained on {args.clip}")
        for v in found:
            aliases = f" @{', @'.join(v['aliases'])}" if v["aliases"] else ""
            print(f"{v['model']} v{v['version']}{aliases} (run {v['run_id']})")
        return 0
    if not args.model:
        raise SynthTextError("give a model (models:/NAME@ALIAS, models:/NAME/VERSION or a folder) or --clip CLIP_ID")
    record, about = lineage.load_for(args.model, repo)
    report = lineage.check(repo, record)
    if args.json:
        print(json.dumps({"model": about, "lineage": record, "reproducible": not report.problems,
                          "ok": report.ok, "problems": report.problems}, indent=2))
        return 0 if not report.problems else 1
    print(_describe(about, record))
    if report.problems:
        print(f"NOT reproducible as recorded: {len(report.problems)} item(s) differ "
              f"({len(report.ok)} checked ok):")
        for problem in report.problems:
            print(f"  - {problem}")
        return 1
    print(f"reproducible as recorded: all {len(report.ok)} checks passed (dvc.lock, DVC cache, work tree, git)")
    return 0


def _describe(about: dict, record: dict) -> str:
    name = f"{about['model']} v{about['version']}" if "model" in about else about.get("folder", "?")
    aliases = f" (@{', @'.join(about['aliases'])})" if about.get("aliases") else ""
    lines = [f"{name}{aliases}: {record['stage']} run {about['run_id']}, git {record['commit'][:12]}"
             f"{' (uncommitted changes)' if record['dirty'] else ' (clean)'}"]
    lines.append(f"  params {record['stage']}: {record['params'].get(record['stage'])}")
    for path, md5 in record["inputs"].items():
        lines.append(f"  input {path}: {md5}")
    lines.append(f"  raw data {record['raw_source']}: {record['raw_md5']}; {len(record['train_clips'])} training clips")
    for stage, entry in record["upstream"].items():
        run = f", MLflow run {entry['mlflow_run_id']}" if entry.get("mlflow_run_id") else ""
        outs = ", ".join(f"{p} {m}" for p, m in entry["outs"].items())
        lines.append(f"  <- {stage}{run}: {outs}")
    return "\n".join(lines)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from synthtext.app.access import serve_settings
    from synthtext.app.server import create_app
    from synthtext.inference.infer import check_model_ref

    if args.workers < 1 or args.queue < 1:
        raise SynthTextError("--workers and --queue must be at least 1")
    team = serve_settings(args)  # a non-local --host without tokens is refused here, before anything loads
    voices = {"default": None, **{Path(v).stem: str(Path(v).resolve()) for v in args.voice}}
    for name, path in voices.items():
        if path and not Path(path).is_file():
            raise SynthTextError(f"voice {name}: {path} not found (give Piper .onnx files)")
    Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    app = create_app(check_model_ref(args.model), args.out_dir, args.repo, args.workers, args.queue, voices, **team)
    access = f"{len(team['tokens'])} tokens" if team["tokens"] else "no tokens: open to whoever reaches it"
    print(f"synthtext: serving {args.model} on http://{args.host}:{args.port}/ (API docs at /docs; {access}), "
          f"videos in {args.out_dir}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synthtext", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    inspect = commands.add_parser("inspect", help="print what an aligned clip file holds; draw a contact sheet")
    inspect.add_argument("clips", nargs="+", help="data/processed/clips/<clip>.h5 files")
    inspect.add_argument("--sheet", help="write a PNG contact sheet (frames with landmarks) here")
    inspect.add_argument("--frames", type=int, default=6, help="frames per clip on the sheet")
    inspect.set_defaults(run=_inspect)
    corpus = commands.add_parser("sample-corpus", help="generate a small corpus in CREMA-D's format (speech, "
                                 "lip motion, emotional faces, ground truth)")
    corpus.add_argument("--out", required=True, help="a new or empty folder (or an earlier sample corpus)")
    corpus.add_argument("--identities", type=int, default=4)
    corpus.add_argument("--sentences", type=int, default=CorpusParams.defaults()["sentences"],
                        help="CREMA-D sentences per identity (1-12)")
    corpus.add_argument("--intensity", default=CorpusParams.defaults()["intensity"], choices=["LO", "MD", "HI"])
    corpus.add_argument("--seed", type=int, default=CorpusParams.defaults()["seed"])
    corpus.add_argument("--photos", help="a folder of face photos, one speaker each (default: assets/faces)")
    corpus.add_argument("--voice", help="a Piper .onnx voice (default: the bundled en_US joe voice)")
    corpus.add_argument("--workers", type=int, default=2)
    corpus.set_defaults(run=_sample_corpus)

    generate = commands.add_parser("generate", help="a talking-face video from a photo, text and an emotion")
    generate.add_argument("--image", required=True, help="a face photo (any format OpenCV or Pillow reads)")
    generate.add_argument("--text", help="the words to speak; emotion tags change the emotion from that point on: "
                          "\"Great news! [sad] But I'm sorry about the dog.\" ([happy], [SAD], [anger:LO], "
                          "[happy:0.8])")
    generate.add_argument("--text-file", help="a .txt (UTF-8) or .pdf file with the words to speak (tags work too)")
    generate.add_argument("--audio", help="recorded speech to drive the face instead of the text (wav, mp3, flac, "
                          "ogg, m4a; any sample rate, mono or stereo); kept as it is in the video")
    generate.add_argument("--emotion", help="ANG DIS FEA HAP NEU SAD, or anger, disgust, fear, happiness, neutral, "
                          "sadness (any case); with tags in the text, the emotion of the untagged start (not "
                          "needed when the text starts with a tag)")
    generate.add_argument("--all-emotions", action="store_true",
                          help="all six in a 2x3 grid, each speaking in turn in its own voice")
    generate.add_argument("--intensity", default="HI", help="how strongly the face shows the emotion: LO, MD, HI "
                          "(0.5, 0.75, 1.0) or a number from 0.0 (neutral) to 1.5 (beyond the trained expression); "
                          "the voice takes the nearest of LO, MD, HI (default HI)")
    generate.add_argument("--voice", help="piper: a voice .onnx; coqui: a model name or folder")
    generate.add_argument("--out", required=True, help="the .mp4 to write (the .wav and a .json go beside it)")
    generate.add_argument("--live", action="store_true",
                          help="serve the video while it is made: prints http://127.0.0.1:PORT/live, a growing "
                               "fragmented MP4 to open in VLC or ffplay (runs in this process, without Prefect)")
    generate.add_argument("--live-port", type=int, default=0, help="the port of --live (default: any free one)")
    _add_video_options(generate, orchestrate=False)
    generate.set_defaults(run=_generate)

    batch = commands.add_parser("generate-batch", help="render every row of a jobs CSV (image, text or audio, "
                                "emotion[, intensity, voice, out, head_motion, blinks]) in parallel with one "
                                "loaded model; --head-motion and --no-blinks are the defaults of rows that leave "
                                "those empty")
    batch.add_argument("jobs", help="the jobs CSV; relative image paths are relative to it")
    batch.add_argument("--out-dir", required=True, help="where the videos and batch_report.json go")
    batch.add_argument("--workers", type=int, default=2, help="jobs rendered at once")
    _add_video_options(batch, orchestrate=True)
    batch.set_defaults(run=_generate_batch)

    lineage = commands.add_parser("lineage", help="the chain of stages, data, params and code behind a model; "
                                  "checks it can be reproduced as recorded")
    lineage.add_argument("model", nargs="?", help=f"{CHAMPION_URI}, models:/NAME/VERSION, "
                         "or a model folder")
    lineage.add_argument("--clip", help="instead: list the model versions whose training data contained this clip")
    lineage.add_argument("--json", action="store_true", help="machine-readable output")
    lineage.add_argument("--repo", default=".", help="the project folder (dvc.yaml, dvc.lock, mlflow.db)")
    lineage.set_defaults(run=_lineage)

    serve = commands.add_parser("serve", help="the web page and HTTP API for making videos (from the champion)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--model", default=CHAMPION_URI, help=f"a registry URI or model folder (default "
                       f"{CHAMPION_URI}: re-resolved for every job, so a newly promoted version is used at once)")
    serve.add_argument("--workers", type=int, default=1, help="videos rendered at once (default 1)")
    serve.add_argument("--queue", type=int, default=8, help="jobs that may wait; more are answered 429")
    serve.add_argument("--out-dir", default="data/app", help="photos, videos and the gallery index")
    serve.add_argument("--voice", action="append", default=[], help="an extra Piper .onnx voice (repeatable)")
    serve.add_argument("--repo", default=".", help="the project folder (mlflow.db, metrics/)")
    add_serve_options(serve)
    serve.set_defaults(run=_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except SynthTextError as exc:
        print(f"synthtext: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
