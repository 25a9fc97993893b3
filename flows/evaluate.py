"""Stage evaluate: the candidate generator on the validation speakers against a static and a real
baseline (and the current champion), on held-out photos of people in neither split, an independent
emotion evaluator, the promotion gate, and ``reports/index.html``. One MLflow run records the
metrics, the report and the gate's decision. The steps are ``synthtext.evaluation.stage``'s; this
module wires them."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from synthtext.evaluation import stage
from synthtext.evaluation.runs import add_fid, heldout_columns, heldout_photos, validation_columns
from synthtext.evaluation.table import check_targets
from synthtext.ops import tracking
from synthtext.ops.config import EvaluateParams, PromoteParams
from synthtext.ops.files import atomic_folder

train_evaluator = task(name="train-evaluator", cache_policy=NO_CACHE)(stage.train_evaluator)
evaluate_clips = task(name="evaluate-clips", cache_policy=NO_CACHE)(stage.evaluate_clips)
evaluate_photos = task(name="evaluate-photos", cache_policy=NO_CACHE)(stage.evaluate_photos)
outside_readings = task(name="outside-readings", cache_policy=NO_CACHE)(stage.outside_readings)


@flow(name="evaluate")
def evaluate_flow(repo: str, evaluate_params: dict, promote_params: dict, data_source: str) -> dict:
    """The evaluate stage: metrics, plots, report, promotion. Returns the metrics written. ``evaluate_params``
    and ``promote_params``: ``as_dict`` of EvaluateParams and PromoteParams; ``data_source``: data.source."""
    root = Path(repo)
    experiment = tracking.setup(root)  # a tracking server that is down: one clear error now, not after the work
    run = stage.prepare(root, EvaluateParams.from_dict(evaluate_params), PromoteParams.from_dict(promote_params),
                        data_source)
    settings, fid = run.settings, bool(run.settings.inception)
    run.tools = stage.instruments(run, train_evaluator(run.train_files, run.measurer, settings.seconds, settings.seed))
    run.results = evaluate_clips(run.val_files, run.references, run.model.generator, run.tools, settings.seconds,
                                 settings.seed, True, run.source, "evaluate: candidate", settings.sample_clips, fid)
    run.table = validation_columns(run.results)
    run.speeches = [r.speech for r in run.results[:max(1, settings.photo_clips)]]
    if settings.photos:
        run.photos = evaluate_photos(heldout_photos(root / settings.photos), run.speeches, run.model, run.tools,
                                     settings.size, settings.seed, stage.long_speech(run.all_val, stage.LONG_SECONDS))
        run.table.update(heldout_columns(run.photos))
    if run.photos:
        run.judged, run.lively = outside_readings(run.photos, run.tools.outside)

    name, candidate, champion = stage.registry_versions(run)
    if champion is not None and champion.version != candidate.version:
        with stage.champion_generator(champion) as previous:
            run.champion_results = evaluate_clips(run.val_files, run.references, previous, run.tools, settings.seconds,
                                                  settings.seed, False, run.source,
                                                  f"evaluate: champion v{champion.version}", fid=fid)
        run.table["champion"] = validation_columns(run.champion_results)["generated"]
    if fid:
        add_fid(run.table, run.results, root / settings.inception, run.champion_results)
    decision, promotion = stage.decide(run, candidate, champion)
    targets = check_targets(run.table)
    with atomic_folder(root / "reports") as reports:
        stage.write_reports(reports, run, name, candidate, promotion, targets)
        run_id = stage.record_run(run, experiment, reports, name, candidate, decision, promotion)
    return stage.write_metrics(run, targets, promotion, run_id)
