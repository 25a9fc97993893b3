"""``reports/``: one page a person opens to judge a model — the metrics table with both baselines,
and per emotion a short sample video (real | static | generated) and a still contact sheet."""

from __future__ import annotations

import html
from pathlib import Path

import cv2
import numpy as np

from synthtext import EMOTIONS
from synthtext.files import write_png_atomic, write_text_atomic
from synthtext.infer import label, resize_frames

EMOTION_NAMES = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happiness", "NEU": "neutral",
                 "SAD": "sadness"}
ROWS = [("emotion_accuracy", "evaluator emotion accuracy (6 conditions)", "higher"),
        ("sync_r", "mouth-speech correlation at best offset", "higher"),
        ("sync_offset", "best offset, frames", "near 0"),
        ("gt_opening_r", "mouth opening vs ground truth (sample corpus)", "higher"),
        ("psnr", "PSNR, dB", "higher"), ("ssim", "SSIM", "higher"),
        ("psnr_mouth", "PSNR mouth, dB", "higher"), ("ssim_mouth", "SSIM mouth", "higher"),
        ("m_lmd", "M-LMD (IOD units)", "lower"), ("f_lmd", "F-LMD (IOD units)", "lower"),
        ("face_found", "frames with a face found", "higher"),
        ("lse_d", "LSE-D (SyncNet distance)", "lower"), ("lse_c", "LSE-C (SyncNet confidence)", "higher"),
        ("fid", "FID (Inception)", "lower")]


def sample_video(rows: list[dict], emotion: str, out: Path, cell: int = 128) -> None:
    """Rows of clips, columns real | static | generated under ``emotion``; the first clip's speech."""
    from synthtext.media import write_video

    frames = min(len(r["real"]) for r in rows)
    grid = []
    for t in range(frames):
        lines = []
        for r in rows:
            cells = [label(resize_frames(r[k][t:t + 1], cell)[0], name)
                     for k, name in (("real", "real"), ("static", "static"), ("generated", f"gen {emotion}"))]
            lines.append(np.concatenate(cells, axis=1))
        grid.append(np.concatenate(lines, axis=0))
    first = rows[0]
    audio = first["audio"][:int(round(frames * first["sample_rate"] / first["fps"]))]
    write_video(out, np.stack(grid), first["fps"], audio, first["sample_rate"])
    # A still from the middle of the clip, shown by the page before the video plays.
    write_png_atomic(out.with_suffix(".poster.png"), cv2.cvtColor(grid[frames // 2], cv2.COLOR_RGB2BGR))


def contact_sheet(rows: list[dict], out: Path, columns: int = 6, cell: int = 96) -> None:
    """Generated frames spread over each clip, one row per clip, the reference frame leading."""
    lines = []
    for r in rows:
        picks = np.linspace(0, len(r["generated"]) - 1, columns).round().astype(int)
        cells = [label(resize_frames(r["static"][:1], cell)[0], "ref")]
        cells += [resize_frames(r["generated"][i:i + 1], cell)[0] for i in picks]
        lines.append(np.concatenate(cells, axis=1))
    write_png_atomic(out, cv2.cvtColor(np.concatenate(lines, axis=0), cv2.COLOR_RGB2BGR))


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    return f"{value:.3f}" if isinstance(value, float) else html.escape(str(value))


def write_index(folder: Path, table: dict[str, dict], promotion: dict, per_emotion: dict[str, dict],
                confusion: np.ndarray, about: dict) -> Path:
    """``index.html``: the table (columns: generated, static, real[, champion]), the gate's decision,
    per-emotion accuracy, the confusion matrix and the sample videos and sheets."""
    columns = [c for c in ("generated", "static", "real", "champion") if c in table]
    head = "".join(f"<th>{c}</th>" for c in columns)
    body = "".join(
        f"<tr><td>{html.escape(text)}</td>{''.join(f'<td>{_cell(table[c].get(key))}</td>' for c in columns)}"
        f"<td class=dir>{better}</td></tr>" for key, text, better in ROWS)
    decision = "promoted to <b>champion</b>" if promotion.get("promoted") else "<b>not</b> promoted"
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in promotion.get("reasons", []))
    emo_rows = "".join(f"<tr><td>{e} ({EMOTION_NAMES[e]})</td><td>{_cell(per_emotion[e]['generated'])}</td>"
                       f"<td>{_cell(per_emotion[e]['real'])}</td></tr>" for e in EMOTIONS)
    conf = "".join(f"<tr><th>{EMOTIONS[i]}</th>{''.join(f'<td>{v}</td>' for v in row)}</tr>"
                   for i, row in enumerate(confusion))
    samples = "".join(
        f"<section><h3>{e} — {EMOTION_NAMES[e]}</h3>"
        f"<video controls preload=metadata poster='emotion_{e}.poster.png' src='emotion_{e}.mp4'></video>"
        f"<img src='emotion_{e}.png' alt='generated frames, {EMOTION_NAMES[e]}'></section>" for e in EMOTIONS)
    facts = "".join(f"<li>{html.escape(k)}: {html.escape(str(v))}</li>" for k, v in about.items())
    page = f"""<!doctype html>
<html lang=en><head><meta charset=utf-8><title>SynthText evaluation</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1200px; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: 4px 10px; text-align: right; }}
td:first-child {{ text-align: left; }} td.dir {{ color: #777; text-align: left; }}
section {{ display: inline-block; vertical-align: top; margin: 0 1.5em 1.5em 0; }}
video, img {{ display: block; max-width: 560px; margin-top: 4px; }}
</style></head><body>
<h1>SynthText evaluation</h1>
<ul>{facts}</ul>
<h2>Metrics (validation speakers)</h2>
<p>generated: the candidate generator; static: the reference frame repeated (a model that learned
nothing); real: the recorded video (the ceiling). Emotion accuracy is that of an independent
evaluator trained on real clips only; generated videos are made under each of the six emotions.</p>
<table><tr><th>metric</th>{head}<th>better</th></tr>{body}</table>
<h2>Promotion</h2><p>The candidate was {decision}.</p><ul>{reasons}</ul>
<h2>Evaluator accuracy by emotion condition</h2>
<table><tr><th>emotion</th><th>generated</th><th>real</th></tr>{emo_rows}</table>
<h2>Confusion matrix (generated; rows: condition, columns: evaluator)</h2>
<table><tr><th></th>{''.join(f'<th>{e}</th>' for e in EMOTIONS)}</tr>{conf}</table>
<h2>Samples per emotion</h2>
<p>Each video: real | static | generated under the emotion, for validation clips, with the first clip's
speech. Each sheet: the reference frame, then generated frames across the clip.</p>
{samples}
</body></html>
"""
    path = folder / "index.html"
    write_text_atomic(path, page)
    return path
