"""Inference speed: time per step (TTS, face preparation, generation, encoding) for a ~3-second
sentence at the CLI's default 256 px and pasted back into the photo, warm (model and voice loaded)
and cold (a fresh `synthtext generate` process), plus how often the face is found again in the output
frames of the held-out photos (assets/heldout/, people the model never saw).

    python benchmarks/bench_generate.py [--model models/generator] [--repeats 3]
    python benchmarks/bench_generate.py --memory [--minutes 0.05 1 3 10]

``--memory``: peak resident memory and real-time factor of one `synthtext generate --no-prefect` process
(256 px) for speech of each length (the sentence repeated), each in a fresh process: the inference core
streams, so the peak should not grow with the length (target: 10 minutes within 1.5 GB).

Without --model it uses models/generator when `make demo` has made one, else a cpu-profile
generator with random weights (the same computation per frame). Targets: warm total at 256 px
<= 1.5 s (real-time factor <= 0.5), cold CLI <= 8 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PREFECT_HOME", str(ROOT / ".prefect"))

SENTENCE = "Don't forget a jacket, it is cold outside today."


HELDOUT = ROOT / "assets" / "heldout"
PHOTOS = sorted(p for p in HELDOUT.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))


def make_inputs(scratch: Path, model: str | None) -> tuple[Path, Path]:
    photo = PHOTOS[0]
    if model:
        return photo, Path(model)
    if (ROOT / "models" / "generator" / "model.pt").is_file():
        return photo, ROOT / "models" / "generator"
    import torch

    from synthtext.model import Generator
    from synthtext.model.config import profile
    from synthtext.model.io import save_model
    from synthtext.ops.files import write_json_atomic

    torch.manual_seed(0)
    folder = scratch / "generator"
    save_model(folder, Generator(profile("cpu")), profile("cpu"))
    write_json_atomic(folder / "preprocess.json", {"landmark_backend": "dlib", "size": 128})
    return photo, folder


def warm(photo: Path, model_dir: Path, repeats: int) -> dict:
    """Each step timed with everything loaded once (what a server or a batch pays per video)."""
    from synthtext.data.landmarks import make_backend
    from synthtext.data.media import write_video, write_wav_atomic
    from synthtext.inference import infer, render
    from synthtext.inference.tts.engines import make_engine, synthesize_text

    model = infer.load_generator(model_dir)
    engine = make_engine("piper")
    backend = make_backend(model.preprocess["landmark_backend"])
    times: dict[str, list[float]] = {"tts": [], "face": [], "generate": [], "frames": [], "encode": [],
                                     "paste_back": [], "encode_photo": []}
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(repeats + 1):  # the first round warms caches and is not counted
            t0 = time.perf_counter()
            speech = synthesize_text(engine, SENTENCE, "HAP", seed=None)
            t1 = time.perf_counter()
            face = infer.prepare_face(photo, model.preprocess, backend)
            t2 = time.perf_counter()
            animation = infer.animate(model.generator, speech.audio, speech.sample_rate, face.crop, "HAP")
            t3 = time.perf_counter()
            frames = render.face_frames(animation, face, 256)
            t4 = time.perf_counter()
            out = Path(scratch) / "warm.mp4"
            write_wav_atomic(out.with_suffix(".wav"), speech.audio, speech.sample_rate)
            write_video(out, frames, model.cfg.fps, speech.audio, speech.sample_rate)
            t5 = time.perf_counter()
            pasted = render.paste_back(animation, face)
            t6 = time.perf_counter()
            write_video(out, pasted, model.cfg.fps, speech.audio, speech.sample_rate)
            t7 = time.perf_counter()
            for key, value in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t7 - t6),
                                  strict=True):
                times[key].append(value)
    result = {k: statistics.median(v[1:]) for k, v in times.items()}
    result["speech_s"] = speech.seconds
    result["n_frames"] = len(frames)
    result["photo_size"] = f"{pasted.shape[2]}x{pasted.shape[1]}"
    return result


def cold(photo: Path, model_dir: Path | str, prefect: bool) -> float:
    """Wall time of one fresh `synthtext generate` process (imports, model and voice loading included)."""
    exe = Path(sys.executable).with_name("synthtext")
    with tempfile.TemporaryDirectory() as scratch:
        cmd = [str(exe), "generate", "--image", str(photo), "--text", SENTENCE, "--emotion", "HAP",
               "--model", str(model_dir), "--out", str(Path(scratch) / "cold.mp4")]
        start = time.perf_counter()
        subprocess.run(cmd + (["--prefect"] if prefect else []), check=True, capture_output=True, cwd=ROOT)
        return time.perf_counter() - start


def redetection(model_dir: Path, faces: list[Path], sizes=(128, 256, "photo")) -> dict:
    """Frames of generated videos (one per face photo) in which dlib finds a face again, per output size
    (256: the CLI's default, twice the aligned crop; photo: pasted back at the photo's resolution)."""
    from synthtext.data.landmarks import make_backend
    from synthtext.inference import infer, render
    from synthtext.inference.tts.engines import make_engine, synthesize_text

    model = infer.load_generator(model_dir)
    speech = synthesize_text(make_engine("piper"), SENTENCE, "ANG", seed=0)
    backend = make_backend("dlib")
    counts = {size: [0, 0] for size in sizes}
    for photo in faces:
        face = infer.prepare_face(photo, model.preprocess, backend)
        animation = infer.animate(model.generator, speech.audio, speech.sample_rate, face.crop, "ANG")
        for size in sizes:
            frames = (render.paste_back(animation, face) if size == "photo"
                      else render.face_frames(animation, face, size))
            counts[size][0] += sum(1 for frame in frames if backend.detect(frame))
            counts[size][1] += len(frames)
    return {size: (found, total) for size, (found, total) in counts.items()}


SENTENCE_SECONDS = 2.7  # how long the voice takes to say SENTENCE, near enough to pick a repeat count


def memory(photo: Path, model_dir: Path, minutes: list[float]) -> None:
    """Peak RSS (the largest of the process and its ffmpeg) and real-time factor per length of speech."""
    exe = Path(sys.executable).with_name("synthtext")
    for length in minutes:
        repeats = max(1, round(length * 60 / SENTENCE_SECONDS))
        with tempfile.TemporaryDirectory() as scratch:
            out = Path(scratch) / "long.mp4"
            text = " ".join([SENTENCE] * repeats)
            cmd = [str(exe), "generate", "--no-prefect", "--image", str(photo), "--text", text, "--emotion", "NEU",
                   "--model", str(model_dir), "--out", str(out)]
            start = time.perf_counter()
            process = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            _, status, usage = os.wait4(process.pid, 0)
            seconds = time.perf_counter() - start
            if status:
                raise SystemExit(f"{' '.join(cmd[:3])} failed: {process.stderr.read().decode()[-500:]}")
            speech = soundfile.info(str(out.with_suffix(".wav"))).duration
        print(f"{speech / 60:6.2f} min of speech: peak {usage.ru_maxrss / 1024 / 1024:5.2f} GB, {seconds:6.1f} s "
              f"(real-time factor {seconds / speech:.2f})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder (default: models/generator, else a random cpu-profile one)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory", action="store_true", help="peak memory for long speech instead")
    parser.add_argument("--minutes", type=float, nargs="+", default=[0.05, 1, 3, 10])
    args = parser.parse_args()
    if args.memory:
        with tempfile.TemporaryDirectory() as scratch:
            photo, model_dir = make_inputs(Path(scratch), args.model)
            print(f"model: {model_dir}; photo {photo.name}; 256 px, --no-prefect, one process per length")
            memory(photo, model_dir, args.minutes)
        return
    import torch

    from synthtext.ops.tracking import CHAMPION_URI

    with tempfile.TemporaryDirectory() as scratch:
        photo, model_dir = make_inputs(Path(scratch), args.model)
        print(f"model: {model_dir}; torch threads: {torch.get_num_threads()}; sentence: {SENTENCE!r}")
        w = warm(photo, model_dir, args.repeats)
        total = sum(w[k] for k in ("tts", "face", "generate", "frames", "encode"))
        print(f"warm, median of {args.repeats}: speech {w['speech_s']:.2f} s, {w['n_frames']} frames at 256x256, "
              f"photo {photo.name}")
        for key in ("tts", "face", "generate", "frames", "encode"):
            print(f"  {key:9s} {w[key]:6.3f} s")
        print(f"  total     {total:6.3f} s  (real-time factor {total / w['speech_s']:.2f}; target <= 1.5 s, 0.5)")
        pasted = total - w["frames"] - w["encode"] + w["paste_back"] + w["encode_photo"]
        print(f"pasted back at the photo's {w['photo_size']}: paste {w['paste_back']:.3f} s, encode "
              f"{w['encode_photo']:.3f} s, total {pasted:.3f} s (real-time factor {pasted / w['speech_s']:.2f})")
        direct = cold(photo, model_dir, prefect=False)
        print(f"cold CLI, --no-prefect:               {direct:5.1f} s  (target <= 8 s)")
        if (ROOT / "mlflow.db").is_file():
            registry = cold(photo, CHAMPION_URI, prefect=False)
            print(f"cold CLI, --no-prefect, model from the registry (@champion): {registry:5.1f} s")
        orchestrated = cold(photo, model_dir, prefect=True)
        where = os.environ.get("PREFECT_API_URL") or "a temporary local server started by the process"
        print(f"cold CLI, through the Prefect flow:    {orchestrated:5.1f} s  (Prefect API: {where})")
        for size, (found, frames) in redetection(model_dir, PHOTOS).items():
            where = "pasted back at the photo's size" if size == "photo" else f"at {size} px"
            print(f"face found again in {found}/{frames} output frames {where} "
                  f"({100 * found / max(frames, 1):.1f}%) over the {len(PHOTOS)} held-out photos")


if __name__ == "__main__":
    main()
