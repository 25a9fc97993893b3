"""Video jobs: each (photo, text, emotion) becomes an mp4 + wav + a JSON sidecar.

A job's face blinks and its head moves with the speech unless told otherwise (``Job.blinks``,
``Job.head_motion``: ``synthtext.inference.life``); its intensity is a named point (LO, MD, HI) or a number
0..1.5 (``synthtext.inference.markup``: the face's amount of the emotion, the voice's nearest level).

The model is loaded once for all jobs; a job whose video already exists with the same inputs
(photo bytes, text, emotion, intensity, voice, head motion, blinks, options, model weights, and the
code it runs: the import closure of this module, ``synthtext.ops.codedeps``) is skipped; a job that fails
is reported with its reason and does not stop the others. ``flows/generate.py`` runs the jobs as
Prefect tasks; without Prefect they run one by one in this process.
"""

from __future__ import annotations

import csv
import json
import math
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from synthtext import EMOTIONS, parse_emotion
from synthtext.data.clipfile import audio_length
from synthtext.data.frames import emotion_grid, fit_frames
from synthtext.data.landmarks import make_backend
from synthtext.data.media import load_speech, write_video, write_wav_atomic
from synthtext.inference import infer
from synthtext.inference.infer import load_generator, read_image
from synthtext.inference.life import Life
from synthtext.inference.live import FIRST_BATCH, Blocks, LiveWriter, SentenceSpeech, animate_block, plan_sentences
from synthtext.inference.markup import (
    Intensity,
    Segment,
    emotion_track,
    has_tags,
    intensity_amount,
    parse_intensity,
    parse_markup,
    starts_with_tag,
    voice_level,
)
from synthtext.inference.selfcheck import SelfCheck, attach_evaluator
from synthtext.inference.tts.engines import make_engine, synthesize_text
from synthtext.inference.tts.text import read_text
from synthtext.ops.codedeps import code_version
from synthtext.ops.errors import SynthTextError
from synthtext.ops.files import write_json_atomic
from synthtext.ops.hashing import file_md5, stable_hash

GRID_CELL_MAX = 480  # longest side of one cell of an --all-emotions grid
REST_SECONDS = 0.3  # pause between emotions in a grid
LONG_SENTENCES = 8  # a text of this many sentences (about 30 s) or more shows a progress bar of its sentences
CODE_VERSION = code_version("synthtext.inference.videojobs")  # the code this process runs: hashed once, not per job


@dataclass
class Options:
    tts: str = "piper"
    speed: float = 1.0
    seed: int = 0
    paste_back: bool = False
    size: int | None = None  # output side for crops (default: twice the model's aligned crop size)
    overlap: int | None = None  # window overlap in frames (default a quarter window)
    feather: float = 0.1
    language: str = "en"  # coqui multilingual models
    references: str | None = None  # coqui XTTS: folder with one reference clip per emotion (ANG.wav, ...)
    evaluator: str | None = None  # an evaluator.json to check the videos with, instead of the model's own


@dataclass
class Job:
    image: str
    text: str
    emotions: list[str]  # one, or all six for a grid
    out: str
    intensity: Intensity = "HI"  # LO, MD, HI or a number 0..1.5 (markup.parse_intensity)
    voice: str | None = None
    row: int = 0
    audio: str | None = None  # recorded speech that drives the face instead of the text's synthesized speech
    head_motion: float = 1.0  # 0 (still) .. 1: the head moves with the speech
    blinks: bool = True

    @property
    def life(self) -> Life:
        return Life(blinks=self.blinks, head_motion=self.head_motion)


def parse_head_motion(value: str | float | None, default: float = 1.0) -> float:
    """Head motion as a user gives it (a number 0..1; empty: ``default``), checked."""
    if value is None or isinstance(value, str) and not value.strip():
        return default
    try:
        amount = float(value)
    except ValueError:
        raise SynthTextError(f"head motion {value!r} is not a number: use 0 (still) to 1") from None
    if not (math.isfinite(amount) and 0.0 <= amount <= 1.0):
        raise SynthTextError(f"head motion {value!r} is out of range: use 0 (still) to 1")
    return amount


def parse_blinks(value: str | bool | None, default: bool = True) -> bool:
    """Blinks on or off as a user gives them (yes/no, true/false, on/off, 1/0; empty: ``default``)."""
    if value is None or isinstance(value, bool):
        return default if value is None else value
    word = value.strip().lower()
    if not word:
        return default
    if word in ("1", "true", "yes", "on", "y"):
        return True
    if word in ("0", "false", "no", "off", "n"):
        return False
    raise SynthTextError(f"blinks {value!r}: use yes or no (true/false, on/off, 1/0)")


def make_job(image: str, text: str | None, emotion: str | None, out: str, intensity: Intensity | None = "HI",
             voice: str | None = None, all_emotions: bool = False, row: int = 0, audio: str | None = None,
             head_motion: float = 1.0, blinks: bool = True) -> Job:
    """A validated job: known emotion and intensity, some text (emotion tags checked) or a readable
    recording, an existing image, a writable output, head motion 0..1. Text that starts with an emotion
    tag needs no ``emotion``: its tags say every word's."""
    tagged = not audio and not all_emotions and not (emotion or "").strip() and starts_with_tag(text or "")
    emotions = list(EMOTIONS) if all_emotions else ["NEU" if tagged else parse_emotion(emotion or "")]
    intensity = parse_intensity(intensity)
    head_motion = parse_head_motion(head_motion)
    if audio:
        if text and has_tags(text):
            raise SynthTextError("emotion tags set the emotion of text the voice speaks; recorded speech (audio) "
                                 "has no text to tag: use the emotion setting instead")
        if text:
            raise SynthTextError("give text or a recording (audio), not both")
        load_speech(audio)  # missing, corrupt, empty or silent: said now, before a model is loaded
        text = ""
    else:
        text = read_text(text=text or "")
        segments = parse_markup(text, emotions[0], intensity)
        if all_emotions and len(segments) > 1 or all_emotions and has_tags(text):
            raise SynthTextError("emotion tags and all six emotions do not mix: drop the tags or the grid")
        if tagged:  # the default emotion colours no word: the job is the first tag's
            emotions = [segments[0].emotion]
    read_image(image)  # missing or corrupt: said now, before a model is loaded
    check_output(Path(out))
    return Job(image=str(image), text=text, emotions=emotions, out=str(out), intensity=intensity,
               voice=voice or None, row=row, audio=str(audio) if audio else None, head_motion=head_motion,
               blinks=bool(blinks))


def check_output(out: Path) -> None:
    """The output must be an .mp4 in an existing folder where files can be created (tried, not guessed:
    permission bits say nothing on read-only mounts or for root)."""
    if out.suffix.lower() != ".mp4":
        raise SynthTextError(f"output {out} must end in .mp4")
    folder = out.parent
    if not folder.is_dir():
        raise SynthTextError(f"output folder {folder} does not exist")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".synthtext-probe-"):
            pass
    except OSError as exc:
        raise SynthTextError(f"output folder {folder} is not writable ({exc.strerror})") from exc


def read_jobs(csv_path: Path, out_dir: Path, head_motion: float = 1.0,
              blinks: bool = True) -> tuple[list[Job], list[dict]]:
    """Rows of a jobs CSV (image, text or audio, emotion[, intensity, voice, out, head_motion, blinks]) ->
    jobs, plus the rows that are wrong on their face (reported, not run). Relative image and audio paths
    are relative to the CSV. The text may carry emotion tags (the emotion may then be empty if the text
    starts with one). An empty or missing head_motion or blinks is ``head_motion``/``blinks``."""
    if not csv_path.is_file():
        raise SynthTextError(f"jobs file {csv_path} not found")
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = {c.strip().lower() for c in reader.fieldnames or []}
        missing = {"image", "emotion"} - columns
        if "text" not in columns and "audio" not in columns:
            missing.add("text (or audio)")
        if missing:
            raise SynthTextError(f"{csv_path} lacks the column(s) {', '.join(sorted(missing))} "
                                 "(needs image, text or audio, emotion; optional intensity, voice, out, "
                                 "head_motion, blinks)")
        rows = [{(k or "").strip().lower(): (v or "").strip() for k, v in row.items()} for row in reader]
    if not rows:
        raise SynthTextError(f"{csv_path} has no jobs")
    jobs, failed = [], []
    for number, row in enumerate(rows, start=1):
        image = Path(row["image"]).expanduser()
        image = image if image.is_absolute() else csv_path.parent / image
        name = row.get("out") or f"{number:03d}_{image.stem}_{row['emotion'].upper() or 'X'}.mp4"
        audio = Path(row["audio"]).expanduser() if row.get("audio") else None
        audio = audio if audio is None or audio.is_absolute() else csv_path.parent / audio
        try:
            jobs.append(make_job(str(image), row.get("text") or None, row["emotion"], str(out_dir / name),
                                 row.get("intensity") or "HI", row.get("voice") or None, row=number,
                                 audio=str(audio) if audio else None,
                                 head_motion=parse_head_motion(row.get("head_motion"), head_motion),
                                 blinks=parse_blinks(row.get("blinks"), blinks)))
        except SynthTextError as exc:
            failed.append({"row": number, "status": "failed", "reason": str(exc), "out": str(out_dir / name)})
    return jobs, failed


# ---------------------------------------------------------------- one job


def job_key(job: Job, options: Options, model_md5: str) -> str:
    recording = file_md5(job.audio) if job.audio else None
    checker = file_md5(options.evaluator) if options.evaluator else None
    return stable_hash(file_md5(job.image), job.text, job.emotions, job.intensity, job.voice, asdict(options),
                       model_md5, CODE_VERSION, recording, checker, job.head_motion, job.blinks)


def sidecar_path(out: Path) -> Path:
    return out.with_suffix(".json")


def is_done(job: Job, key: str) -> bool:
    out, side = Path(job.out), sidecar_path(Path(job.out))
    if not (out.is_file() and out.with_suffix(".wav").is_file() and side.is_file()):
        return False
    try:
        return json.loads(side.read_text()).get("inputs_key") == key
    except ValueError:
        return False


def make_video(job: Job, model, engine, options: Options, key: str, progress=None, backend=None,
               live: str | Path | None = None) -> dict:
    """Speak (or read the recording), prepare the face, generate, encode, check. Writes OUT.wav, OUT.mp4
    and OUT.json, each atomically, and with ``live`` a fragmented MP4 there that grows while the video is
    made (``synthtext.inference.live``: written in place, to be read as it grows; the caller removes it).
    ``progress(step, fraction)``, if given, is called as each step (tts, face, generate, encode) begins,
    and during generation with the share of the video done; ``backend``, a loaded landmark backend to
    reuse (loading dlib's predictor takes about a second). A long text also shows a progress bar.

    The text's emotion tags (``synthtext.inference.markup``) make segments: each is spoken with its emotion's
    prosody (at the nearest named level to its intensity), and the face's emotion follows them, at its
    intensity's amount, changing smoothly at each border. The speech is made sentence by sentence, each
    just before its frames, and the frames block by block, a sentence each (``synthtext.inference.live``): the
    first sentence's frames are encoded (and can be watched) before the rest is spoken. The face blinks
    and the head moves as the job says (``Job.life``), scheduled from the speech and the seed. With the model's
    stored evaluator, every segment of the video is read back (``synthtext.inference.selfcheck``): the result
    and the sidecar say what each segment asked for and what the face shows."""
    times = {}
    report = progress or (lambda step, fraction=0.0: None)
    report("tts")
    start = time.perf_counter()
    fps = model.cfg.fps
    speaker = None
    if job.audio:
        recorded, rate = load_speech(job.audio)
        segments = [Segment("", job.emotions[0], job.intensity)]
    elif len(job.emotions) == 1:
        segments = parse_markup(job.text, job.emotions[0], job.intensity)
        speaker = SentenceSpeech(engine, segments, plan_sentences(segments, options.seed), options.speed)
        speaker.get(0)  # the first sentence now; each other one just before its frames
        rate = engine.sample_rate
    else:
        segments = None
        speech = {e: synthesize_text(engine, job.text, e, voice_level(job.intensity), options.speed, options.seed)
                  for e in job.emotions}
        rate = next(iter(speech.values())).sample_rate
    times["tts"] = time.perf_counter() - start
    report("face")
    start = time.perf_counter()
    backend = backend or make_backend(model.preprocess["landmark_backend"],
                                      int(model.preprocess.get("detect_upsample", 1)))
    face = infer.prepare_face(job.image, model.preprocess, backend)
    times["face"] = time.perf_counter() - start
    size = options.size or 2 * face.crop.shape[0]  # twice the aligned crop unless --size says otherwise
    evaluator = model.evaluator

    def frames_of(animation: infer.Animation) -> np.ndarray:
        return infer.paste_back(animation, face, options.feather) if options.paste_back else \
            infer.face_frames(animation, face, size)

    out = Path(job.out)
    report("generate")
    verdicts: list = []
    check = None  # the grid's six clips are not checked: each is one emotion by construction
    if segments is not None:  # one clip: block by block, generated pieces straight into the encoder (flat memory)
        sentences = speaker.sentences if speaker is not None else []
        count = len(sentences) if speaker is not None else 1
        blocks = Blocks(segments, rate, fps, options.seed, job.life, model.cfg.decoder == "motion")
        checked_spans: list[tuple[str, int, int]] = []  # the self-check's segments, as they become known
        times["generate"] = times["encode"] = times["check"] = 0.0
        bar = tqdm(total=count, desc=out.name, unit="sentence", disable=count < LONG_SENTENCES, leave=False)
        with LiveWriter(out, fps, rate, live) as writer, bar:
            for index in range(count):
                start = time.perf_counter()
                if speaker is None:
                    block = blocks.add(recorded, 0, last=True)
                else:
                    following = sentences[index + 1].segment if index + 1 < count else None
                    block = blocks.add(speaker.get(index), sentences[index].segment, last=following is None,
                                       next_segment=following)
                checked_spans[:] = [(seg.emotion, a, b) for seg, a, b in blocks.spans]
                writer.add_audio(block.audio)  # before its frames: the encoder never waits for the speech
                for piece in animate_block(model.generator, block, rate, face.crop, options.seed + index,
                                           options.overlap, face.landmarks, FIRST_BATCH if index == 0 else 16):
                    chunk = frames_of(piece)
                    times["generate"] += time.perf_counter() - start
                    start = time.perf_counter()
                    writer.write(chunk)
                    times["encode"] += time.perf_counter() - start
                    start = time.perf_counter()
                    if evaluator is not None:
                        check = check or SelfCheck(evaluator, backend, face, checked_spans, pasted=options.paste_back)
                        check.observe(chunk)
                        times["check"] += time.perf_counter() - start
                    report("generate", (index + (writer.frames - block.first) / (block.end - block.first)) / count)
                    start = time.perf_counter()
                bar.update(1)
            report("encode")
            start = time.perf_counter()
        audio = recorded if speaker is None else blocks.audio
        write_wav_atomic(out.with_suffix(".wav"), audio, rate)  # after the video: a killed job leaves neither
        times["encode"] += time.perf_counter() - start
        if speaker is not None:
            times["tts"] = speaker.seconds  # every sentence's, the later ones spoken between the blocks
        if check is not None:
            start = time.perf_counter()
            verdicts = check.verdicts(fps)
            times["check"] += time.perf_counter() - start
        else:
            del times["check"]
        segment_list = [{"emotion": seg.emotion, "intensity": seg.intensity, "text": seg.text, "first_frame": a,
                         "end_frame": b} for seg, a, b in blocks.spans]
        for entry, verdict in zip(segment_list, verdicts, strict=False):
            entry.update(shown=verdict.shown, confidence=round(verdict.confidence, 3), match=verdict.match)
        total = writer.frames
    else:  # the six-emotion grid: every clip at once, side by side in turn
        start = time.perf_counter()
        clips = {e: fit_frames(frames_of(infer.animate(model.generator, s.audio, s.sample_rate, face.crop,
                                                 emotion_condition([(Segment("", e, job.intensity), 0, 1)], 1, fps),
                                                 options.seed, options.overlap, life=job.life,
                                                 landmarks=face.landmarks)), GRID_CELL_MAX)
                 for e, s in speech.items()}
        times["generate"] = time.perf_counter() - start
        report("encode")
        start = time.perf_counter()
        gap = int(round(REST_SECONDS * fps))
        video, grid_segments = emotion_grid(clips, gap)
        audio = np.concatenate([_pad(speech[e].audio, len(clips[e]) + gap, fps, rate) for e in clips])
        write_wav_atomic(out.with_suffix(".wav"), audio, rate)
        write_video(out, video, fps, audio, rate)
        times["encode"] = time.perf_counter() - start
        total = len(video)
        segment_list = [{"emotion": e, "intensity": job.intensity, "first_frame": a, "end_frame": b}
                        for e, a, b in grid_segments]
    warnings = [v.warning() for v in verdicts if not v.match]
    checked = {"evaluator": model.evaluator_note, "segments": len(verdicts), "mismatches": len(warnings)} \
        if check is not None else {"skipped": "the six-emotion grid is not checked" if segments is None else
                                   model.evaluator_note}
    write_json_atomic(sidecar_path(out), {
        "inputs_key": key, "image": job.image, "text": job.text, "audio": job.audio, "emotions": job.emotions,
        "intensity": job.intensity, "head_motion": job.head_motion, "blinks": job.blinks,
        "voice": None if job.audio else job.voice or "default",
        "tts": None if job.audio else engine.name, "options": asdict(options),
        "model": model.source, "model_md5": model.md5, "frames": total, "fps": fps, "sample_rate": rate,
        "seconds": round(len(audio) / rate, 3), "faces_in_photo": face.faces, "self_check": checked,
        "segments": segment_list, "warnings": warnings})
    return {"row": job.row, "status": "ok", "out": str(out), "frames": total, "faces": face.faces,
            "seconds": round(len(audio) / rate, 3), "times": times, "segments": segment_list,
            "warnings": warnings, "self_check": checked}


def emotion_condition(spans: list[tuple[Segment, int, int]], frames: int, fps: float) -> str | np.ndarray:
    """What the generator is told: one emotion code when the whole clip is one emotion at full
    intensity, else per-frame weights (``markup.emotion_track``: smooth changes at the borders; an
    intensity of ``a`` weighs the emotion ``a`` and neutral ``1 - a``, negative above 1)."""
    if len(spans) == 1 and intensity_amount(spans[0][0].intensity) == 1.0:
        return spans[0][0].emotion
    return emotion_track([(seg.emotion, intensity_amount(seg.intensity), a, b) for seg, a, b in spans], frames, fps)


def _pad(audio: np.ndarray, frames: int, fps: int, rate: int) -> np.ndarray:
    samples = audio_length(frames, rate, fps)
    return np.pad(audio, (0, max(0, samples - len(audio))))[:samples]


def make_video_safely(job: Job, model, engine, options: Options, key: str, progress=None,
                      backend=None, live: str | Path | None = None) -> dict:
    """``make_video``, with a user-caused failure returned as a result instead of raised."""
    try:
        return make_video(job, model, engine, options, key, progress, backend, live)
    except SynthTextError as exc:
        return failed(job, str(exc))


def failed(job: Job, reason: str) -> dict:
    return {"row": job.row, "status": "failed", "reason": reason, "out": job.out}


_ENGINE_LOCK = threading.Lock()


def engine_for(engines: dict, voice: str | None, opts: Options):
    with _ENGINE_LOCK:
        if voice not in engines:
            extra = {"language": opts.language, "references": opts.references} if opts.tts == "coqui" else {}
            engines[voice] = make_engine(opts.tts, voice, **extra)
        return engines[voice]


def make_videos(jobs: list[dict], model_ref: str, options: dict, repo: str = ".", submit=None,
                live: str | None = None) -> dict:
    """Load the model once and one engine per distinct voice, skip jobs that are up to date, make the
    rest: one by one here, or through ``submit(job, model, engine, options, key)`` returning a future
    (the Prefect flow's tasks). Results come back in job order. ``live``: where the video of a single job
    made here grows while it is made (``make_video``)."""
    start = time.perf_counter()
    opts = Options(**options)
    job_list = [Job(**j) for j in jobs]
    try:
        model = attach_evaluator(load_generator(model_ref, repo), opts.evaluator, repo)
    except SynthTextError as exc:
        return {"results": [failed(j, str(exc)) for j in job_list], "seconds": time.perf_counter() - start,
                "error": str(exc)}
    engines: dict[str | None, object] = {}
    results: dict[int, dict] = {}
    futures = {}
    for index, job in enumerate(job_list):
        try:
            engine = None if job.audio else engine_for(engines, job.voice, opts)  # a recording needs no voice
        except SynthTextError as exc:
            results[index] = failed(job, str(exc))
            continue
        key = job_key(job, opts, model.md5)
        if is_done(job, key):
            results[index] = {"row": job.row, "status": "skipped", "out": job.out, "reason": "up to date"}
        elif submit is not None:
            futures[index] = submit(job, model, engine, opts, key)
        else:
            results[index] = make_video_safely(job, model, engine, opts, key, live=live if len(job_list) == 1 else None)
    for index, future in tqdm(futures.items(), desc="videos", unit="video", disable=len(futures) < 2):
        try:
            results[index] = future.result()
        except Exception as exc:  # a bug or a broken machine: reported, the other jobs go on
            results[index] = failed(job_list[index], f"{type(exc).__name__}: {exc}")
    return {"results": [results[i] for i in range(len(job_list))], "seconds": time.perf_counter() - start,
            "model": model.source, "model_md5": model.md5}
