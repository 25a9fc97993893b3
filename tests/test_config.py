"""params.yaml, typed: every section has one pydantic model whose defaults are the file's values, typos,
wrong types, values out of range and a second decoder stop with one clear line, sections cross Prefect and
torchrun as dicts and come back checked, and the generator stages share one block."""

import json

import pytest
import yaml

import stages
from synthtext.data import landmarks
from synthtext.model import PROFILES, profile
from synthtext.model.train.data import ClipWindows
from synthtext.ops import tracking
from synthtext.ops.config import (
    GENERATOR_STAGES,
    LANDMARK_BACKENDS,
    PROFILE_NAMES,
    TRAINING_STAGES,
    AlignParams,
    GeneratorParams,
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
    for cls in set(classes.values()) - {TrainParams}:  # TrainParams: pretrain_emotion sets some of its keys
        in_file = set().union(*(set(RAW[name] or {}) for name, c in classes.items() if c is cls))
        assert set(cls.file_keys()) == in_file, f"{cls.__name__}: {set(cls.file_keys()) ^ in_file}"


def test_training_stages_are_one_table():
    assert list(TRAINING_STAGES) == [name for name, cls in section_classes().items()
                                     if cls is TrainParams or name in GENERATOR_STAGES]
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
    ({"generator": {"reference": "neutrl"}}, "generator.reference must be one of clip, neutral"),
    ({"train_gan": {"device": "cpu"}}, "train_gan.device is not a key of train_gan: set compute.device instead"),
    ({"align": {"max_missing": 1.5}}, "align.max_missing must be at most 1.0, not 1.5"),
    ({"generator": {"batch": 0}}, "generator.batch must be at least 1, not 0"),
    ({"promote": {"metrics": ["sync_r", 3]}}, "promote.metrics must be a list of text, not a list holding 3"),
    ({"evaluate": {"max_clips": "all"}}, "evaluate.max_clips must be a whole number or null, not the text 'all'"),
    ({"train_gan": {"decoder": "pixels"}}, "train_gan.decoder must match between pretrain_generator and train_gan"),
    ({"pretrain_generator": {"batch": 8}}, "pretrain_generator.batch is shared by pretrain_generator and train_gan: "
                                           "set generator.batch instead"),
    ({"generator": {"steps": 5}}, "generator.steps is a key of each stage, not shared: set it in"),
    ({"generator": {"decodr": "motion"}}, "unknown key generator.decodr (did you mean decoder?)"),
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
        sent = json.loads(json.dumps(params.training(stage).as_dict()))
        assert TrainParams.from_dict(sent, stage) == params.training(stage)
    assert PromoteParams.from_dict(json.loads(json.dumps(params.promote.as_dict()))) == params.promote
    with pytest.raises(SynthTextError, match="train_gan.reference must be one of"):
        TrainParams.from_dict({**params.training("train_gan").as_dict(), "reference": "other"}, "train_gan")
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
        assert set(cls.CHOICES) <= set(cls.model_fields), cls.__name__


def test_the_defaults_are_params_yamls_values():
    """One source of values: every model's defaults are what params.yaml runs with."""
    params = load_params(REPO / "params.yaml")
    assert Params() == params
    for name, cls in section_classes().items():
        assert cls() == getattr(params, name), name
    for stage in TRAINING_STAGES:
        assert Params().training(stage) == params.training(stage), stage
    assert TrainParams() == params.training("pretrain_emotion")


def test_the_generator_stages_share_one_block():
    params = load_params(REPO / "params.yaml")
    shared = set(GeneratorParams.model_fields)
    assert "decoder" in shared and len(shared) == 19
    for stage, cls in GENERATOR_STAGES.items():
        assert not shared & set(cls.model_fields), stage
        trained = params.training(stage)
        assert {k: getattr(trained, k) for k in shared} == params.generator.as_dict()
        assert {k: getattr(trained, k) for k in cls.model_fields} == getattr(params, stage).as_dict()
    assert params.training("pretrain_generator").decoder == params.training("train_gan").decoder == "motion"


def test_sections_are_frozen_and_refuse_mistakes_in_code_with_one_line():
    with pytest.raises(ValueError):
        AlignParams().size = 64  # noqa: B018 (frozen: pydantic refuses the assignment)
    with pytest.raises(SynthTextError, match=r"^align.mode must be one of 0, 1, not 2$"):
        AlignParams(mode=2)
    with pytest.raises(SynthTextError, match="unknown key training.stepz"):
        TrainParams(stepz=3)


def test_a_second_decoder_stops_the_stage_with_one_line_and_exit_1(tmp_path, monkeypatch, capsys):
    write_params(tmp_path, train_gan={"decoder": "pixels"})
    monkeypatch.setattr(stages, "ROOT", tmp_path)
    with pytest.raises(SystemExit) as exited:
        stages.main(lambda params: "ran")
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: params.yaml: train_gan.decoder must match") and err.count("\n") == 1
    assert "Traceback" not in err and "pydantic" not in err
