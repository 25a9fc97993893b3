"""params.yaml, typed: every section has one dataclass, typos and wrong types stop with one clear line,
sections cross Prefect and torchrun as dicts and come back checked, and no default lives twice."""

import json
from dataclasses import asdict, fields

import pytest
import yaml

import stages
from synthtext.data import landmarks
from synthtext.model import PROFILES, profile
from synthtext.model.train.data import ClipWindows
from synthtext.ops import tracking
from synthtext.ops.config import (
    LANDMARK_BACKENDS,
    PROFILE_NAMES,
    TRAINING_STAGES,
    Params,
    PromoteParams,
    TrainParams,
    load_params,
    section_classes,
)
from synthtext.ops.errors import SynthTextError
from tests.conftest import REPO

RAW = yaml.safe_load((REPO / "params.yaml").read_text())


def write_params(tmp_path, **changes):
    """A copy of the repository's params.yaml with ``changes`` (section -> {key: value}) merged in."""
    raw = {name: dict(values or {}) for name, values in RAW.items()}
    for name, values in changes.items():
        raw.setdefault(name, {}).update(values)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_the_repositorys_params_load_with_their_values():
    params = load_params(REPO / "params.yaml")
    for name, values in RAW.items():
        section = getattr(params, name)
        for key, value in (values or {}).items():
            loaded = getattr(section, key)
            assert (list(loaded) if isinstance(loaded, tuple) else loaded) == value, f"{name}.{key}"
    assert params.raw == RAW


def test_each_section_class_covers_the_files_keys_and_the_file_covers_each_class():
    classes = section_classes()
    assert set(RAW) == set(classes)
    for name, cls in classes.items():
        assert set(RAW[name] or {}) <= set(cls.file_keys()), name
    for cls in set(classes.values()):
        in_file = set().union(*(set(RAW[name] or {}) for name, c in classes.items() if c is cls))
        assert set(cls.file_keys()) == in_file, f"{cls.__name__}: {set(cls.file_keys()) ^ in_file}"


def test_training_stages_are_one_table():
    assert list(TRAINING_STAGES) == [name for name, cls in section_classes().items() if cls is TrainParams]
    assert {s.registers for s in TRAINING_STAGES.values()} - {None} <= set(tracking.MODEL_NAMES)
    assert tracking.CHAMPION_URI == f"models:/{tracking.MODEL_NAMES['generator']}@champion"


@pytest.mark.parametrize(("changes", "message"), [
    ({"evaluate": {"max_clip": 3}}, "unknown key evaluate.max_clip (did you mean max_clips?)"),
    ({"evalute": {"seconds": 2.0}}, "unknown section evalute (did you mean evaluate?)"),
    ({"train_gan": {"lr": "1e-4"}}, "train_gan.lr must be a number, not the text '1e-4' (YAML reads an exponent"),
    ({"align": {"min_frames": "32"}}, "align.min_frames must be a whole number, not the text '32'"),
    ({"retrain": {"push": "yes"}}, "retrain.push must be true or false, not the text 'yes'"),
    ({"promote": {"metrics": "sync_r"}}, "promote.metrics must be a list of text, not the text 'sync_r'"),
    ({"runner": {"kind": "thread"}}, "runner.kind must be one of threads, processes, dask, not 'thread'"),
    ({"pretrain_generator": {"reference": "neutrl"}}, "pretrain_generator.reference must be one of clip, neutral"),
    ({"train_gan": {"device": "cpu"}}, "train_gan.device is not a key of train_gan: set compute.device instead"),
])
def test_a_mistake_in_params_yaml_stops_with_one_line_naming_it(tmp_path, changes, message):
    path = write_params(tmp_path, **changes)
    with pytest.raises(SynthTextError) as raised:
        load_params(path)
    assert str(raised.value).startswith(f"params.yaml: {message}")


def test_stages_turn_a_params_mistake_into_one_line_and_exit_1(tmp_path, monkeypatch, capsys):
    write_params(tmp_path, evaluate={"max_clip": 3})
    monkeypatch.setattr(stages, "ROOT", tmp_path)
    with pytest.raises(SystemExit) as exited:
        stages.main(lambda params: "ran")
    assert exited.value.code == 1
    assert capsys.readouterr().err == "error: params.yaml: unknown key evaluate.max_clip (did you mean max_clips?)\n"


def test_sections_round_trip_through_json_and_come_back_checked():
    params = load_params(REPO / "params.yaml")
    for stage in TRAINING_STAGES:
        sent = json.loads(json.dumps(asdict(params.training(stage))))
        assert TrainParams.from_dict(sent, stage) == params.training(stage)
    assert PromoteParams.from_dict(json.loads(json.dumps(asdict(params.promote)))) == params.promote
    with pytest.raises(SynthTextError, match="train_gan.reference must be one of"):
        TrainParams.from_dict({**asdict(params.train_gan), "reference": "other"}, "train_gan")
    with pytest.raises(SynthTextError, match="unknown key train_gan.stepz"):
        TrainParams.from_dict({"stepz": 3}, "train_gan")


def test_sections_left_out_take_the_class_defaults():
    assert Params.from_dict({}) == Params()
    assert Params.from_dict({"runner": None}).runner == Params().runner


def test_training_windows_follow_train_params_defaults():
    windows = ClipWindows([], profile("tiny"))
    assert (windows.reference, windows.still_head) == (TrainParams().reference, TrainParams().still_head)


def test_choices_name_what_the_code_implements():
    assert set(PROFILE_NAMES) == set(PROFILES)
    assert set(LANDMARK_BACKENDS) == set(landmarks.BACKENDS)
    for cls in section_classes().values():
        assert set(cls.CHOICES) <= {f.name for f in fields(cls)}, cls.__name__
