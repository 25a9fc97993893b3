"""``reports/``: one page a person opens to judge a model — the metric table (rows from
``synthtext.evaluation.table.METRICS``) with both baselines and the held-out photos, the targets, the
gate's decision, per emotion a short sample video (real | static | generated) and a contact sheet,
and for each held-out photo the six emotions at peak mouth opening at the photo's own resolution."""

from __future__ import annotations

import html
from pathlib import Path

import cv2
import numpy as np

from synthtext import EMOTIONS
from synthtext.data.clipfile import audio_length
from synthtext.data.frames import contact_sheet, label, resize_frames
from synthtext.data.media import write_video
from synthtext.evaluation.table import HELDOUT_COLUMNS, entries, figure_text, target_text
from synthtext.ops.files import write_png_atomic, write_text_atomic

EMOTION_NAMES = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happiness", "NEU": "neutral",
                 "SAD": "sadness"}
COLUMNS = {"generated": "generated", "static": "static", "real": "real", "champion": "champion", **HELDOUT_COLUMNS}


def sample_video(rows: list[dict], emotion: str, out: Path, cell: int = 128) -> None:
    """Rows of clips, columns real | static | generated under ``emotion``; the first clip's speech."""
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
    audio = first["audio"][:audio_length(frames, first["sample_rate"], first["fps"])]
    write_video(out, np.stack(grid), first["fps"], audio, first["sample_rate"])
    # A still from the middle of the clip, shown by the page before the video plays.
    write_png_atomic(out.with_suffix(".poster.png"), cv2.cvtColor(grid[frames // 2], cv2.COLOR_RGB2BGR))


def generated_sheet(rows: list[dict], out: Path, columns: int = 6, cell: int = 96) -> None:
    """Generated frames spread over each clip, one row per clip, the reference frame leading."""
    lines = []
    for r in rows:
        picks = np.linspace(0, len(r["generated"]) - 1, columns).round().astype(int)
        cells = [label(resize_frames(r["static"][:1], cell)[0], "ref")]
        cells += [resize_frames(r["generated"][i:i + 1], cell)[0] for i in picks]
        lines.append(cells)
    contact_sheet(lines, out)


def heldout_sheet(region: np.ndarray, peaks: dict[str, np.ndarray], out: Path) -> None:
    """The photo's face region, then each emotion at peak mouth opening, side by side, all at the
    photo's own resolution (pasted-back frames, not rescaled)."""
    cells = [label(region, "photo")] + [label(peaks[e], f"{e} {EMOTION_NAMES[e]}") for e in EMOTIONS if e in peaks]
    write_png_atomic(out, cv2.cvtColor(np.concatenate(cells, axis=1), cv2.COLOR_RGB2BGR))


def filmstrip(strips: dict[str, np.ndarray], out: Path) -> None:
    """One row of frames per moment (``blink``, ``vowel``): consecutive frames side by side, labelled."""
    rows = [np.concatenate([label(f, f"{name} {i - len(frames) // 2:+d}") for i, f in enumerate(frames)], axis=1)
            for name, frames in strips.items()]
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    write_png_atomic(out, cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))


def heldout_video(clips: dict[str, np.ndarray], audio: np.ndarray, sample_rate: int, fps: float, out: Path,
                  columns: int = 3) -> None:
    """The six emotions in a grid, speaking the same speech at once (pasted-back face regions)."""
    names = [e for e in EMOTIONS if e in clips]
    frames = min(len(clips[e]) for e in names)
    height, width = clips[names[0]].shape[1:3]
    rows = -(-len(names) // columns)
    grid = np.zeros((frames, rows * height, columns * width, 3), np.uint8)
    for cell, name in enumerate(names):
        r, c = divmod(cell, columns)
        grid[:, r * height:(r + 1) * height, c * width:(c + 1) * width] = \
            [label(f, f"{name} {EMOTION_NAMES[name]}") for f in clips[name][:frames]]
    write_video(out, grid, fps, audio[:audio_length(frames, sample_rate, fps)], sample_rate)


def _cell(value, check: dict | None = None) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "<td>–</td>"
    text = f"{value:.3f}" if isinstance(value, float) else html.escape(str(value))
    if check is None:
        return f"<td>{text}</td>"
    mark = "pass" if check["pass"] else "fail"
    return f"<td class={mark} title='target {check['target']:.3f}: {mark}'>{text} {'✓' if check['pass'] else '✗'}</td>"


def metric_table(table: dict[str, dict], targets: dict[str, dict]) -> str:
    """The metric table: a row per entry of ``METRICS`` that any column measured."""
    columns = [c for c in COLUMNS if c in table]
    head = "".join(f"<th>{html.escape(COLUMNS[c])}</th>" for c in columns)
    body = "".join(
        f"<tr><td>{html.escape(m.label)}</td>"
        f"{''.join(_cell(table[c].get(m.name), targets.get(c, {}).get(m.name)) for c in columns)}"
        f"<td class=dir>{'closer to 0' if m.better == 'near0' else m.better}</td>"
        f"<td class=dir>{html.escape(target_text(m))}</td></tr>"
        for m in entries() if any(m.name in table[c] for c in columns))
    return f"<table><tr><th>metric</th>{head}<th>better</th><th>target</th></tr>{body}</table>"


def breakdown_table(parts: dict[str, dict[str, dict]], first: str) -> str:
    """Held-out metrics by photo or by emotion, at both sizes."""
    rows = [m for m in entries() if "heldout" in m.groups]
    head = "".join(f"<th>{html.escape(m.name)}<br>{k}</th>" for k in ("face", "photo") for m in rows)
    body = "".join(f"<tr><td>{html.escape(name)}</td>"
                   f"{''.join(_cell(part[k].get(m.name)) for k in ('face', 'photo') for m in rows)}</tr>"
                   for name, part in parts.items())
    return f"<table><tr><th>{first}</th>{head}</tr>{body}</table>"


def write_index(folder: Path, table: dict[str, dict], promotion: dict, per_emotion: dict[str, dict],
                confusion: np.ndarray, about: dict, targets: dict[str, dict] | None = None,
                heldout: dict | None = None, outside: str = "") -> Path:
    """``index.html``: the table (columns: generated, static, real[, champion][, held-out]), the gate's
    decision, per-emotion accuracy, the confusion matrix, the held-out photos (``heldout``: the
    breakdown of ``heldout_breakdown``; sheets and videos named ``heldout_<photo>``) and
    the sample videos and sheets."""
    decision = "promoted to <b>champion</b>" if promotion.get("promoted") else "<b>not</b> promoted"
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in promotion.get("reasons", []))
    emo_rows = "".join(f"<tr><td>{e} ({EMOTION_NAMES[e]})</td>{_cell(per_emotion[e]['generated'])}"
                       f"{_cell(per_emotion[e]['real'])}</tr>" for e in EMOTIONS)
    conf = "".join(f"<tr><th>{EMOTIONS[i]}</th>{''.join(f'<td>{v}</td>' for v in row)}</tr>"
                   for i, row in enumerate(confusion))
    samples = "".join(
        f"<section><h3>{e} — {EMOTION_NAMES[e]}</h3>"
        f"<video controls preload=metadata poster='emotion_{e}.poster.png' src='emotion_{e}.mp4'></video>"
        f"<img src='emotion_{e}.png' alt='generated frames, {EMOTION_NAMES[e]}'></section>" for e in EMOTIONS)
    facts = "".join(f"<li>{html.escape(k)}: {html.escape(str(v))}</li>" for k, v in about.items())
    held = ""
    if heldout:
        photos = "".join(
            f"<figure><figcaption>{html.escape(name)}</figcaption>"
            f"<a href='heldout_{html.escape(name)}.png'><img class=sheet src='heldout_{html.escape(name)}.png' "
            f"alt='{html.escape(name)}: the photo and the six emotions at peak mouth opening'></a>"
            f"<video controls preload=metadata src='heldout_{html.escape(name)}.mp4'></video></figure>"
            for name in heldout["photos"])
        held = f"""<h2>Held-out photos (people the model never saw)</h2>
<p>Each photo speaks the speech of validation clips in all six emotions, as the aligned face
(<i>face</i>) and pasted back into the photo at its own resolution (<i>photo</i>). Each sheet: the
photo's face region, then each emotion at its widest mouth opening, pixel for pixel at the photo's
resolution (open the image at full size to judge sharpness). Each video: the six emotions speaking
the first clip's speech at once.</p>
{photos}
<h3>By photo</h3>{breakdown_table(heldout["photos"], "photo")}
<h3>By emotion condition</h3>{breakdown_table(heldout["emotions"], "emotion")}"""
    page = f"""<!doctype html>
<html lang=en><head><meta charset=utf-8><title>SynthText evaluation</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1400px; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: 4px 10px; text-align: right; }}
td:first-child {{ text-align: left; }} td.dir {{ color: #777; text-align: left; }}
td.pass {{ background: #e6f4e6; }} td.fail {{ background: #f8e3e3; }}
section {{ display: inline-block; vertical-align: top; margin: 0 1.5em 1.5em 0; }}
video, img {{ display: block; max-width: 560px; margin-top: 4px; }}
img.sheet {{ max-width: 100%; }} figure {{ margin: 0 0 2em 0; }}
</style></head><body>
<h1>SynthText evaluation</h1>
<ul>{facts}</ul>
<h2>Metrics</h2>
<p>Validation people — generated: the candidate generator; static: the reference frame repeated (a
model that learned nothing); real: the recorded video (the ceiling). Held-out: photos of people in
neither split. Emotion accuracy is that of an independent evaluator trained on real clips only;
generated videos are made under each of the six emotions. Identity: distance of dlib's face
descriptors to the reference (under 0.6: the same person). ✓ / ✗: against the targets (information;
the promotion gate is below).</p>
{metric_table(table, targets or {})}
<h2>Promotion</h2><p>The candidate was {decision}.</p><ul>{reasons}</ul>
{held}
{outside}
<h2>Evaluator accuracy by emotion condition (validation people)</h2>
<table><tr><th>emotion</th><th>generated</th><th>real</th></tr>{emo_rows}</table>
<h2>Confusion matrix (generated; rows: condition, columns: evaluator)</h2>
<table><tr><th></th>{''.join(f'<th>{e}</th>' for e in EMOTIONS)}</tr>{conf}</table>
<h2>Samples per emotion (validation people)</h2>
<p>Each video: real | static | generated under the emotion, for validation clips, with the first clip's
speech. Each sheet: the reference frame, then generated frames across the clip.</p>
{samples}
</body></html>
"""
    path = folder / "index.html"
    write_text_atomic(path, page)
    return path


def _figure(value) -> str:
    if isinstance(value, list):
        return ", ".join(_figure(v) for v in value) or "–"
    return html.escape(figure_text(value))


def _checks_table(checks: dict[str, dict]) -> str:
    rows = "".join(f"<tr><td>{html.escape(name)}</td><td>{_figure(c['value'])}</td><td>{_figure(c['target'])}</td>"
                   f"<td class={'pass' if c['pass'] else 'fail'}>{'✓' if c['pass'] else '✗'}</td></tr>"
                   for name, c in checks.items())
    return f"<table><tr><th>target</th><th>value</th><th>wanted</th><th></th></tr>{rows}</table>"


def outside_html(judged: dict | None, lively: dict | None, strip: str | None) -> str:
    """The outside judge's readings (calibration on real faces, held-out photos per emotion) and the
    liveliness measures next to the real clips', with a filmstrip around a blink and a wide vowel."""
    parts = []
    if judged:
        cal = judged["calibration"]
        if cal.get("present"):
            cal_rows = "".join(f"<tr><td>{e}</td><td>{r['read']}</td><td>{r['probability']:.2f}</td>"
                               f"<td>{r['lift']:+.2f}</td></tr>" for e, r in cal["emotions"].items())
            calibration = (f"<p>On the real actor ({html.escape(cal['folder'])}): accuracy {cal['accuracy']:.2f}.</p>"
                           f"<table><tr><th>asked</th><th>read</th><th>p(asked)</th><th>lift over NEU</th></tr>"
                           f"{cal_rows}</table>")
        else:
            calibration = f"<p>{html.escape(cal['note'])}.</p>"
        kinds = [k for k in ("heldout_face", "heldout_photo") if k in judged]
        rows = "".join(
            f"<tr><td>{e}</td>" + "".join(
                f"<td>{judged[k]['emotions'][e]['hits']}/{judged[k]['emotions'][e]['photos']} "
                f"({', '.join(judged[k]['emotions'][e]['read'])})</td><td>{judged[k]['emotions'][e]['lift']:+.2f}</td>"
                for k in kinds) + "</tr>" for e in EMOTIONS)
        heads = "".join(f"<th>{COLUMNS[k]}: read as asked</th><th>lift over NEU</th>" for k in kinds)
        accuracy = ", ".join(f"{COLUMNS[k]} {judged[k]['accuracy']:.2f}" for k in kinds)
        parts.append(f"""<h2>Outside judge: a facial-expression reader trained by others on real faces</h2>
<p>{html.escape(judged.get("about", ""))}</p>{calibration}
<p>Held-out photos, accuracy over the six emotions: {accuracy}.</p>
<table><tr><th>asked</th>{heads}</tr>{rows}</table>
{"".join(f"<h3>{COLUMNS[k]}</h3>" + _checks_table(judged["targets"][k]) for k in kinds)}""")
    if lively:
        names = ["blinks_per_min", "blink_ms_median", "roll_std_deg", "yaw_std_deg", "pitch_std_deg", "jitter",
                 "open_mouth_frames", "mouth_sharpness", "teeth_share", "mouth_L", "mouth_a"]
        real = lively.get("real")
        head = "<th>measure</th>" + ("<th>real clips: median (range)</th>" if real else "")
        cols = [(f"{photo}, {kind}", measures) for photo, by_kind in lively["photos"].items()
                for kind, measures in by_kind.items()]
        head += "".join(f"<th>{html.escape(name)}</th>" for name, _ in cols)
        rows = ""
        for n in names:
            cells = ""
            if real:
                r = real.get(n, {})
                cells += f"<td>{_figure(r.get('median'))} ({_figure(r.get('min'))}–{_figure(r.get('max'))})</td>"
            cells += "".join(f"<td>{_figure(m.get(n))}</td>" for _, m in cols)
            rows += f"<tr><td>{n}</td>{cells}</tr>"
        note = "" if real else f"<p>{html.escape(lively.get('note', ''))}</p>"
        film = (f"<p>Filmstrip of one held-out video (pasted back): around a blink (top) and around the loudest "
                f"vowel (bottom), one frame each 40 ms.</p><img class=sheet src='{html.escape(strip)}' "
                f"alt='filmstrip around a blink and a wide vowel'>") if strip else ""
        checks = "".join(f"<h3>{html.escape(name)}</h3>" + _checks_table(c) for name, c in lively["targets"].items())
        parts.append(f"""<h2>Liveliness: blinks, head motion and the open mouth</h2>
<p>Each held-out photo speaks {lively.get("seconds", 0):.0f} s of speech in NEU with blinks and head motion on
(the defaults), measured from dlib's 68 points per frame as the real talking clips are
(<code>benchmarks/bench_liveliness.py</code> prints the same for any video).</p>{note}
<table><tr>{head}</tr>{rows}</table>{film}{checks}""")
    return "\n".join(parts)


def summary(metrics: dict) -> str:
    """The stage's printout: the headline figures, every target with pass or FAIL, the gate's decision."""
    gen, static, real = metrics["generated"], metrics["static"], metrics["real"]
    fig = lambda value: "–" if value is None else f"{value:.3f}"  # noqa: E731
    promoted = metrics["promotion"]
    lines = [f"evaluate: emotion accuracy {fig(gen.get('emotion_accuracy'))} (static "
             f"{fig(static.get('emotion_accuracy'))}, real {fig(real.get('emotion_accuracy'))}), sync r "
             f"{fig(gen.get('sync_r'))} (static {fig(static.get('sync_r'))}, real {fig(real.get('sync_r'))}); "
             f"v{promoted['candidate_version']} {'promoted to champion' if promoted['promoted'] else 'not promoted'}; "
             "report: reports/index.html",
             "targets (information; the gate's reasons are in the report):"]
    by_name = {m.name: m for m in entries()}
    for column, checks in metrics.get("targets", {}).items():
        for name, check in checks.items():
            entry = by_name[name]
            sign = {"higher": ">=", "lower": "<=", "near0": "|x| <="}[entry.better]
            if column == "generated" and entry.target == "static":
                sign = f"{'>' if entry.better == 'higher' else '<'} static"
            lines.append(f"  {COLUMNS[column]:<24} {name:<17} {check['value']:8.3f}  {sign} {check['target']:.3f}  "
                         f"{'pass' if check['pass'] else 'FAIL'}")
    for section in ("outside_judge", "liveliness"):
        for column, checks in metrics.get(section, {}).get("targets", {}).items():
            for name, check in checks.items():
                value = check["value"]
                shown = f"{value:8.3f}" if isinstance(value, float) else str(value)[:40]
                lines.append(f"  {section} {column:<20} {name:<17} {shown}  {check['target']}  "
                             f"{'pass' if check['pass'] else 'FAIL'}")
    return "\n".join(lines)
