"""The release check and the README's model table (synthtext.evaluation.release)."""

import json

import pytest
import yaml

from synthtext.evaluation.release import TABLE_END, TABLE_START, check, compare_metrics, model_table, write_table
from synthtext.ops.errors import SynthTextError

METRICS = {"generated": {"emotion_accuracy": 0.80, "psnr": 30.0}, "evaluate_run_id": "abc",
           "targets": {"generated": {"emotion_accuracy": {"target": 0.85, "value": 0.80, "pass": False}}},
           "outside_judge": {"calibration": {"present": True, "accuracy": 0.5},
                             "heldout_face": {"accuracy": 0.4},
                             "targets": {"heldout_face": {"HAP_hits": {"target": 2, "value": 3, "pass": True}}}}}


def _release(folder, md5: str, metrics: dict):
    folder.mkdir()
    lock = {"schema": "2.0", "stages": {"train_gan": {"outs": [{"path": "models/generator", "md5": md5}]}}}
    (folder / "dvc.lock").write_text(yaml.safe_dump(lock))
    (folder / "metrics").mkdir()
    (folder / "metrics" / "evaluate.json").write_text(json.dumps(metrics))
    return folder / "dvc.lock", folder / "metrics"


def test_same_models_reproduce_bit_for_bit(tmp_path):
    ours = _release(tmp_path / "ours", "aa.dir", METRICS)
    theirs = _release(tmp_path / "theirs", "aa.dir", {})
    assert check(*theirs, *ours).startswith("reproduced bit for bit")


def test_other_models_pass_only_within_the_tolerance(tmp_path):
    near = json.loads(json.dumps(METRICS))
    near["generated"]["emotion_accuracy"] = 0.83  # within 0.06
    near["generated"]["psnr"] = 31.0  # within 8 %
    near["outside_judge"]["calibration"] = {"present": False}  # the machine's folders: not compared
    theirs = _release(tmp_path / "theirs", "aa.dir", METRICS)
    assert "within tolerance" in check(*theirs, *_release(tmp_path / "near", "bb.dir", near))
    far = json.loads(json.dumps(METRICS))
    far["generated"]["psnr"] = 25.0
    with pytest.raises(SynthTextError, match="generated.psnr: 25 here, 30 committed"):
        check(*theirs, *_release(tmp_path / "far", "bb.dir", far))
    assert compare_metrics({"a": {"x": 1.0}}, {"a": {}}) == ["a.x: only in this run"]


def test_a_lock_without_models_is_refused(tmp_path):
    lock, metrics = _release(tmp_path / "theirs", "aa.dir", METRICS)
    lock.write_text("schema: '2.0'\nstages: {}\n")
    with pytest.raises(SynthTextError, match="records no model outputs"):
        check(lock, metrics, *_release(tmp_path / "ours", "aa.dir", METRICS))


def test_the_readme_table_is_written_from_the_metrics(tmp_path, capsys):
    table = model_table(METRICS)
    assert "| own evaluator: emotion_accuracy (validation) | 0.800 | 0.850 | FAIL |" in table
    assert "| outside judge: accuracy on the real actor | 0.500 | | |" in table
    assert "HAP_hits (held-out, 256 px) | 3 | 2 | pass" in table
    readme, metrics = tmp_path / "README.md", tmp_path / "evaluate.json"
    metrics.write_text(json.dumps(METRICS))
    readme.write_text(f"# x\n{TABLE_START}\nold\n{TABLE_END}\nafter\n")
    write_table(readme, metrics)
    text = readme.read_text()
    assert "old" not in text and table in text and text.endswith("after\n")
    readme.write_text("no markers")
    with pytest.raises(SynthTextError, match="no model table markers"):
        write_table(readme, metrics)
