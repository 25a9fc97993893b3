"""params.yaml, typed: one frozen pydantic model per section (``synthtext.ops.params.Section``: unknown
keys, wrong types, values out of their choices or range stop with one line naming the key), the shared
``generator`` block of the two generator stages, the table of training stages, and the loader.

Defaults, one source: params.yaml is what the pipeline runs with, and every model's defaults ARE
params.yaml's values (tests/test_config.py checks ``Params() == load_params()``), so a section built in
code (``AlignParams(size=...)``, the CLI, tests) starts from what the pipeline runs with; a change of a
value goes into both, and the test says where they part. ``TrainParams`` is one stage's full set of
training parameters; its defaults are what ``pretrain_emotion`` runs with (its keys the file leaves out
take them too). The generator stages' keys live in three sections: ``generator`` (``GeneratorParams``,
the 19 keys both stages share, written once: ``decoder`` among them, as train_gan starts from
pretrain_generator's model), and ``pretrain_generator`` / ``train_gan`` with the keys of their own;
``Params.training`` merges them into a TrainParams. Dicts appear only where Prefect or torchrun need JSON:
``as_dict`` on the way out, ``from_dict`` (the same checks) on the way in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import Field, model_validator

from synthtext import INTENSITIES
from synthtext.ops.errors import SynthTextError
from synthtext.ops.params import FILE, Section, unknown

RUNNER_KINDS = ("threads", "processes", "dask")
LANDMARK_BACKENDS = ("dlib", "face_alignment")  # each implemented in synthtext.data.landmarks.BACKENDS
DEVICES = ("auto", "cpu", "cuda", "mps")  # auto: cuda, then mps, then cpu
PROFILE_NAMES = ("paper", "cpu", "tiny")  # each defined in synthtext.model.config.PROFILES
DECODERS = ("motion", "pixels")
PERCEPTUAL_NETS = ("emotion", "vgg19")
REFERENCES = ("clip", "neutral", "mixed")  # where a training window's reference frame comes from
EVALUATE_REFERENCES = ("neutral", "clip")
VIDEO_MODES = ("encode", "copy")
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")

Positive = Annotated[int, Field(ge=1)]
Count = Annotated[int, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Weight = Annotated[float, Field(ge=0.0)]
Rate = Annotated[float, Field(gt=0.0)]
Names = Annotated[tuple[str, ...], Field(strict=False)]  # YAML gives a list


# ---------------------------------------------------------------- the sections, in params.yaml's order


class DataParams(Section):
    """The ``data`` section."""

    SECTION: ClassVar[str] = "data"

    source: str = "data/raw/sample"  # raw clips, searched recursively; the default is the sample corpus


class CorpusParams(Section):
    """The ``sample`` section: the generated corpus."""

    SECTION: ClassVar[str] = "sample"

    identities: Positive = 12
    sentences: Positive = 2
    intensity: Literal[INTENSITIES] = "HI"  # of the five non-neutral emotions (neutral clips are XX)
    seed: int = 0
    photos: str | None = "assets/faces"  # a folder of face photos, one person each; None: the bundled ones
    voice: str | None = None  # a Piper .onnx voice; default: the bundled en_US joe voice


class RunnerParams(Section):
    """The ``runner`` section: how per-clip tasks run in parallel (results do not depend on it)."""

    SECTION: ClassVar[str] = "runner"

    kind: Literal[RUNNER_KINDS] = "threads"
    workers: Count | None = 2  # parallel clips; None (or 0): the task runner's own default
    dask_address: str | None = None  # an existing Dask scheduler (tcp://host:8786); None: a local cluster


class ConvertParams(Section):
    """The ``convert_fps`` section."""

    SECTION: ClassVar[str] = "convert_fps"

    fps: Positive = 25
    sample_rate: Positive = 16000
    # encode: H.264 mp4 at fps. copy: the source's video stream unchanged (.mkv, no decode or encode)
    # plus the frames fps keeps, which align picks while decoding: same frames, one lossy step less
    video: Literal[VIDEO_MODES] = "encode"
    crf: Annotated[int, Field(ge=0, le=51)] = 18  # encode only
    preset: Literal[X264_PRESETS] = "veryfast"  # encode only: x264's speed/size trade-off
    min_audio_db: float = -50.0  # quieter than this (RMS dBFS) counts as silent


class AlignParams(Section):
    """The ``align`` section."""

    SECTION: ClassVar[str] = "align"

    size: Positive = 128
    mode: Literal[0, 1] = 1  # 1: one transform from the first frame; 0: per-frame transforms, smoothed
    backend: Literal[LANDMARK_BACKENDS] = "dlib"
    detect_upsample: Count = 1  # 0: no upsampling where a face of ~80 px and up is found (4x faster)
    smooth_sigma: Weight = 2.0  # mode 0: Gaussian smoothing of landmarks over time, in frames
    max_gap: Count = 5  # longest run of face-less frames that is filled by interpolation
    max_missing: Fraction = 0.2  # reject a clip when more than this fraction of frames has no face
    min_frames: Positive = 32  # one training window
    max_shape_error: Rate = 0.12  # re-detect when the rigid-point fit error exceeds this (IOD units)
    max_jump: Rate = 0.35  # re-detect when the face moves more than this between frames (IOD units)
    compression: Literal["gzip", "lzf"] | None = None  # of the HDF5 frames: None is 12x faster than gzip


class SplitParams(Section):
    """The ``split`` section."""

    SECTION: ClassVar[str] = "split"

    val_ratio: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.25  # fraction of actors held out for validation
    seed: int = 0


class ComputeParams(Section):
    """The ``compute`` section: where the training stages run."""

    SECTION: ClassVar[str] = "compute"

    device: Literal[DEVICES] = "auto"
    nproc: Positive = 1  # > 1: DDP through torchrun


class TrainParams(Section):
    """One training stage's parameters: the ``pretrain_emotion`` section, and what ``Params.training``
    makes of ``generator`` plus ``pretrain_generator`` or ``train_gan``. Defaults: pretrain_emotion's."""

    SECTION: ClassVar[str] = "training"
    SET_ELSEWHERE: ClassVar[dict[str, str]] = {"device": "set compute.device instead"}

    profile: Literal[PROFILE_NAMES] = "cpu"
    decoder: Literal[DECODERS] | None = None  # motion | pixels; None: the profile's (motion, or pixels for paper)
    steps: Positive = 200
    batch: Positive = 8
    lr: Rate = 1e-3  # generator / classifier
    lr_d: Rate = 1e-4  # discriminators in the GAN stage
    workers: Count = 0  # DataLoader worker processes
    checkpoint_every: Positive = 50
    log_every: Positive = 10
    image_every: Positive = 50
    seed: int = 0
    device: Literal[DEVICES] = "auto"  # compute.device
    rec: Weight = 1.0
    perceptual: Weight = 0.1
    perceptual_net: Literal[PERCEPTUAL_NETS] = "emotion"
    vgg19_weights: str | None = None
    aux: Weight = 0.1
    disc_frame: Weight = 0.01
    disc_emo: Weight = 0.001
    gp: Weight = 10.0
    coarse: Weight = 1.0  # motion decoder: L1 of 4x4-block averages
    smooth: Weight = 0.05  # motion decoder: total variation of the motion field
    mask_prior: Weight = 1.0  # motion decoder: (1 - mask) outside the mouth
    landmark_flow: Weight = 1.0  # motion decoder: the field at the frame's landmarks points to the reference's
    landmark_points: Weight = 1.0  # motion decoder: its landmark displacements are the true ones (pixels)
    expression_lr: Rate = 10.0  # motion decoder: the expression table's learning rate, in multiples of lr
    reference: Literal[REFERENCES] = "neutral"  # neutral (a neutral clip of the same actor) | clip | mixed
    still_head: bool = True  # windows moved into the reference's head pose (see ClipWindows)


class GeneratorParams(Section):
    """The ``generator`` section: the keys pretrain_generator and train_gan share, written once."""

    SECTION: ClassVar[str] = "generator"

    profile: Literal[PROFILE_NAMES] = "cpu"
    batch: Positive = 4
    workers: Count = 0
    log_every: Positive = 10
    rec: Weight = 1.0
    perceptual: Weight = 0.1
    perceptual_net: Literal[PERCEPTUAL_NETS] = "emotion"
    vgg19_weights: str | None = None
    aux: Weight = 0.1
    decoder: Literal[DECODERS] = "motion"  # both stages' (train_gan starts from pretrain_generator's model)
    coarse: Weight = 1.0
    smooth: Weight = 0.05
    mask_prior: Weight = 1.0
    landmark_flow: Weight = 1.0
    landmark_points: Weight = 1.0
    expression_lr: Rate = 10.0
    still_head: bool = True
    reference: Literal[REFERENCES] = "neutral"
    seed: int = 0

    @model_validator(mode="before")
    @classmethod
    def _stage_keys_live_in_stages(cls, values: Any) -> Any:
        for key in values if isinstance(values, Mapping) else ():
            if key in TrainParams.model_fields and key not in cls.model_fields and key != "device":
                raise ValueError(f"{key} is a key of each stage, not shared: set it in pretrain_generator "
                                 "and train_gan")
        return values


class _GeneratorStage(Section):
    """A generator stage's own keys; the shared ones belong to ``generator``, and ``decoder`` must match."""

    SET_ELSEWHERE: ClassVar[dict[str, str]] = {"device": "set compute.device instead"}

    @model_validator(mode="before")
    @classmethod
    def _shared_keys_live_in_generator(cls, values: Any) -> Any:
        for key in values if isinstance(values, Mapping) else ():
            if key == "decoder":
                raise ValueError("decoder must match between pretrain_generator and train_gan (train_gan "
                                 "starts from pretrain_generator's model): set it once, as generator.decoder")
            if key in GeneratorParams.model_fields:
                raise ValueError(f"{key} is shared by pretrain_generator and train_gan: set generator.{key} instead")
        return values


class PretrainGeneratorParams(_GeneratorStage):
    """The ``pretrain_generator`` section: its own keys (the rest: ``generator``)."""

    SECTION: ClassVar[str] = "pretrain_generator"

    steps: Positive = 600
    lr: Rate = 3e-4
    checkpoint_every: Positive = 50
    image_every: Positive = 50


class TrainGanParams(_GeneratorStage):
    """The ``train_gan`` section: its own keys (the rest: ``generator``)."""

    SECTION: ClassVar[str] = "train_gan"

    steps: Positive = 80
    lr: Rate = 1e-4
    lr_d: Rate = 1e-4
    checkpoint_every: Positive = 25
    image_every: Positive = 25
    disc_frame: Weight = 0.01
    disc_emo: Weight = 0.001
    gp: Weight = 10.0


class EvaluateParams(Section):
    """The ``evaluate`` section."""

    SECTION: ClassVar[str] = "evaluate"

    seconds: Rate = 2.0  # of each validation clip (and of the speech each held-out photo speaks)
    max_clips: Positive | None = 6  # validation clips, spread over the people and emotions; None: every clip
    sample_clips: Positive = 3  # clips in each per-emotion sample video and sheet
    reference: Literal[EVALUATE_REFERENCES] = "neutral"  # the speaker's neutral clip's first frame | clip (its own)
    photos: str | None = "assets/heldout"  # photos of people in neither split; None: none
    photo_clips: Positive = 1  # each photo speaks the speech of this many validation clips
    size: Positive = 256  # the aligned face's size for held-out photos
    face_frames: Positive = 4  # frames per video for identity and re-detection
    syncnet_weights: str | None = None  # SyncNet's published state_dict: adds LSE-D / LSE-C
    inception: str | None = None  # a TorchScript Inception feature extractor: adds FID
    seed: int = 0


class PromoteParams(Section):
    """The ``promote`` section: the gate from candidate to champion (see synthtext/evaluation/promote.py)."""

    SECTION: ClassVar[str] = "promote"

    metrics: Names = ("sync_r", "emotion_accuracy")  # each must beat the champion by margin
    margin: float = 0.0
    against_static: bool = True  # and these and static_floor be no worse than the static baseline
    static_floor: Names = ("ssim",)
    max_identity: Weight | None = 0.45  # median identity distance on the held-out photos; None: not checked
    # With a value: max_identity holds for the held-out NEU videos, and all videos may be as far as the real
    # clips from their neutral frame plus this (expression moves the descriptor); None: all within max_identity
    identity_over_real: Weight | None = 0.05
    outside_judge: bool = True  # the outside judge reads the held-out photos' emotions better than chance


class RetrainParams(Section):
    """The ``retrain`` section: the scheduled retraining flow (flows/retrain.py)."""

    SECTION: ClassVar[str] = "retrain"

    cron: str = "0 3 * * 1"  # Mondays 03:00
    timezone: str = "UTC"
    push: bool = False  # dvc push after a retrain


# ---------------------------------------------------------------- the training stages


@dataclass(frozen=True)
class TrainingStage:
    """Where a training stage writes its model, the models it starts from, and the registered model it
    becomes (a ``synthtext.ops.tracking.MODEL_NAMES`` kind; None: not registered)."""

    out_dir: str
    registers: str | None = None
    emotion_dir: str | None = None
    generator_dir: str | None = None

    def folders(self) -> dict[str, str]:
        """``out_dir`` and the folders of the models it starts from, by role."""
        named = {"out_dir": self.out_dir, "emotion_dir": self.emotion_dir, "generator_dir": self.generator_dir}
        return {role: folder for role, folder in named.items() if folder}


TRAINING_STAGES: dict[str, TrainingStage] = {
    "pretrain_emotion": TrainingStage("models/emotion", registers="emotion"),
    "pretrain_generator": TrainingStage("models/generator_pre", emotion_dir="models/emotion"),
    "train_gan": TrainingStage("models/generator", registers="generator", emotion_dir="models/emotion",
                               generator_dir="models/generator_pre"),
}
"""The training stages in pipeline order; each reads the params.yaml section of its name (TrainParams)."""


# ---------------------------------------------------------------- the whole file

GENERATOR_STAGES = {"pretrain_generator": PretrainGeneratorParams, "train_gan": TrainGanParams}
"""The training stages whose parameters are ``generator`` plus their own section."""


@dataclass(frozen=True)
class Params:
    """params.yaml: one attribute per section; a section the file leaves out has its defaults (which are
    params.yaml's values). ``training(stage)``: one training stage's TrainParams."""

    data: DataParams = field(default_factory=DataParams)
    sample: CorpusParams = field(default_factory=CorpusParams)
    runner: RunnerParams = field(default_factory=RunnerParams)
    convert_fps: ConvertParams = field(default_factory=ConvertParams)
    align: AlignParams = field(default_factory=AlignParams)
    split: SplitParams = field(default_factory=SplitParams)
    compute: ComputeParams = field(default_factory=ComputeParams)
    pretrain_emotion: TrainParams = field(default_factory=TrainParams)
    generator: GeneratorParams = field(default_factory=GeneratorParams)
    pretrain_generator: PretrainGeneratorParams = field(default_factory=PretrainGeneratorParams)
    train_gan: TrainGanParams = field(default_factory=TrainGanParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)
    promote: PromoteParams = field(default_factory=PromoteParams)
    retrain: RetrainParams = field(default_factory=RetrainParams)
    raw: dict = field(default_factory=dict, compare=False, repr=False)
    """The file as YAML read it: what DVC records in dvc.lock, so lineage records and the params hash of
    retraining are computed from it, not from the defaults filled in."""

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Params:
        """Every section of ``raw`` (params.yaml as read) through its model's checks."""
        if not isinstance(raw, Mapping):
            raise SynthTextError(f"{FILE} must map section names to sections, not {raw!r}")
        sections = section_classes()
        built = {}
        for name, values in raw.items():
            if name not in sections:
                raise unknown("section", str(name), list(sections))
            values = {} if values is None else values
            if not isinstance(values, Mapping):
                raise SynthTextError(f"{FILE}: section {name} must map keys to values, not {values!r}")
            built[name] = sections[name].from_dict(values, name, in_file=True)
        return cls(**built, raw=dict(raw))

    def training(self, stage: str) -> TrainParams:
        """The parameters of training stage ``stage`` (a key of ``TRAINING_STAGES``): its section, and for
        the generator stages the ``generator`` block under it."""
        if stage not in TRAINING_STAGES:
            raise SynthTextError(f"{stage} is not a training stage: use one of {', '.join(TRAINING_STAGES)}")
        if stage not in GENERATOR_STAGES:
            return getattr(self, stage)
        merged = {**self.generator.as_dict(), **getattr(self, stage).as_dict()}
        return TrainParams.from_dict(merged, stage)


def section_classes() -> dict[str, type[Section]]:
    """Each params.yaml section's name -> its model."""
    return {name: f.default_factory for name, f in Params.__dataclass_fields__.items() if name != "raw"}


def load_params(path: str | Path = FILE) -> Params:
    """params.yaml, checked and typed."""
    path = Path(path)
    if not path.is_file():
        raise SynthTextError(f"{path} not found: run stages from the repository root")
    with open(path) as f:
        return Params.from_dict(yaml.safe_load(f) or {})
