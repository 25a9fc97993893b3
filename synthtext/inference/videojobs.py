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

import json
import threading
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from synthtext.data.clipfile import audio_length
from synthtext.data.frames import emotion_grid, fit_frames
from synthtext.data.landmarks import make_backend
from synthtext.data.media import load_speech, write_video, write_wav_atomic
from synthtext.inference import infer, render
from synthtext.inference.infer import load_generator
from synthtext.inference.jobs import Job, Options
from synthtext.inference.live import Blocks, LiveWriter, SentenceSpeech, animate_block, block_batch, plan_sentences
from synthtext.inference.markup import (
    Segment,
    emotion_track,
    intensity_amount,
    parse_markup,
    voice_level,
)
from synthtext.inference.selfcheck import SelfCheck, attach_evaluator
from synthtext.inference.tts.engines import make_engine, synthesize_text
from synthtext.ops.codedeps import code_version
from synthtext.ops.errors import SynthTextError
from synthtext.ops.files import write_json_atomic
from synthtext.ops.hashing import file_md5, stable_hash

GRID_CELL_MAX = 480  # longest side of one cell of an --all-emotions grid
REST_SECONDS = 0.3  # pause between emotions in a grid
LONG_SENTENCES = 8  # a text of this many sentences (about 30 s) or more shows a progress bar of its sentences
CODE_VERSION = code_version("synthtext.inference.videojobs")  # the code this process runs: hashed once, not per job


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
        return render.paste_back(animation, face, options.feather) if options.paste_back else \
            render.face_frames(animation, face, size)

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
                                           options.overlap, face.landmarks, block_batch(index)):
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
