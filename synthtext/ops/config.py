"""params.yaml, typed: one frozen dataclass per section, holding that section's defaults (what applies
where the file leaves a key out), the table of training stages, and the loader.

``load_params`` refuses what a typo would otherwise turn into a silent default: an unknown section or
key (naming the closest valid one) and a value of the wrong type. Values with a fixed set of choices are
checked whenever a section is built, from the file or in code. Dicts appear only where Prefect or
torchrun need JSON: ``dataclasses.asdict`` on the way out, ``from_dict`` (the same checks) on the way in.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Self

import yaml

from synthtext import INTENSITIES
from synthtext.ops.errors import SynthTextError

FILE = "params.yaml"

RUNNER_KINDS = ("threads", "processes", "dask")
LANDMARK_BACKENDS = ("dlib", "face_alignment")  # each implemented in synthtext.data.landmarks.BACKENDS
DEVICES = ("auto", "cpu", "cuda", "mps")  # auto: cuda, then mps, then cpu
PROFILE_NAMES = ("paper", "cpu", "tiny")  # each defined in synthtext.model.config.PROFILES
DECODERS = ("motion", "pixels")
PERCEPTUAL_NETS = ("emotion", "vgg19")
REFERENCES = ("clip", "neutral", "mixed")  # where a training window's reference frame comes from
EVALUATE_REFERENCES = ("neutral", "clip")


def _listed(choices: tuple) -> str:
    return ", ".join("null" if c is None else str(c) for c in choices)


def _check_choices(cls: type[Section], values: Mapping[str, Any], where: str) -> None:
    for name, allowed in cls.CHOICES.items():
        if name in values and values[name] not in allowed:
            raise SynthTextError(f"{where}.{name} must be one of {_listed(allowed)}, not {values[name]!r}")


_KINDS = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}


def _typed(where: str, value: Any, kind: Any) -> Any:
    """``value`` as the field type ``kind`` (bool, int, float, str, ``X | None``, ``tuple[X, ...]``)."""
    optional = typing.get_origin(kind) in (types.UnionType, typing.Union)
    if optional:
        if value is None:
            return None
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    if typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]
        if isinstance(value, list | tuple) and all(_fits(v, item) for v in value):
            return tuple(value)
        wanted = f"a list of {_KINDS[item]}"
    elif _fits(value, kind):
        return float(value) if kind is float else value
    else:
        wanted = _KINDS[kind]
    got = f"the text {value!r}" if isinstance(value, str) else f"{value!r}"
    hint = ""
    if kind is float and isinstance(value, str) and "e" in value.lower():
        try:
            float(value)
            hint = " (YAML reads an exponent without a dot as text: write 1.0e-4, not 1e-4)"
        except ValueError:
            pass
    raise SynthTextError(f"{FILE}: {where} must be {wanted}{' or null' if optional else ''}, not {got}{hint}")


def _fits(value: Any, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _unknown(what: str, name: str, valid: list[str]) -> SynthTextError:
    close = difflib.get_close_matches(name.rsplit(".", 1)[-1], valid, n=1)
    hint = f"did you mean {close[0]}?" if close else f"use one of {', '.join(valid)}"
    return SynthTextError(f"{FILE}: unknown {what} {name} ({hint})")


class Section:
    """What every section's dataclass shares: its choices checked when built, and ``from_dict``."""

    SECTION: ClassVar[str]
    CHOICES: ClassVar[dict[str, tuple]] = {}
    SET_ELSEWHERE: ClassVar[dict[str, str]] = {}
    """Fields that params.yaml sets in another section (field -> that key): not keys of this section."""

    def __post_init__(self) -> None:
        _check_choices(type(self), {name: getattr(self, name) for name in self.CHOICES}, self.SECTION)

    @classmethod
    def file_keys(cls) -> list[str]:
        """The keys this section may have in params.yaml."""
        return [f.name for f in fields(cls) if f.name not in cls.SET_ELSEWHERE]

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], section: str | None = None, *, in_file: bool = False) -> Self:
        """A section from a mapping (params.yaml's, or ``asdict`` of one that crossed a process or Prefect);
        unknown keys and wrong types stop with a SynthTextError that names them. ``in_file``: the keys
        params.yaml sets elsewhere (``SET_ELSEWHERE``) are refused too."""
        section = section or cls.SECTION
        valid = cls.file_keys() if in_file else [f.name for f in fields(cls)]
        for key in values:
            if key in cls.SET_ELSEWHERE and in_file:
                raise SynthTextError(f"{FILE}: {section}.{key} is not a key of {section}: set "
                                      f"{cls.SET_ELSEWHERE[key]} instead")
            if key not in valid:
                raise _unknown("key", f"{section}.{key}", valid)
        hints = typing.get_type_hints(cls)
        typed = {key: _typed(f"{section}.{key}", value, hints[key]) for key, value in values.items()}
        _check_choices(cls, typed, f"{FILE}: {section}")
        return cls(**typed)


# ---------------------------------------------------------------- the sections, in params.yaml's order


@dataclass(frozen=True)
class DataParams(Section):
    """The ``data`` section."""

    SECTION: ClassVar[str] = "data"

    source: str = "data/raw/sample"  # raw clips, searched recursively; the default is the sample corpus


@dataclass(frozen=True)
class CorpusParams(Section):
    """The ``sample`` section: the generated corpus."""

    SECTION: ClassVar[str] = "sample"
    CHOICES: ClassVar[dict[str, tuple]] = {"intensity": INTENSITIES}

    identities: int = 12
    sentences: int = 2
    intensity: str = "HI"  # of the five non-neutral emotions (neutral clips are XX, as in CREMA-D)
    seed: int = 0
    photos: str | None = None  # a folder of face photos, one person each; None: the bundled assets/faces
    voice: str | None = None  # a Piper .onnx voice; default: the bundled en_US joe voice


@dataclass(frozen=True)
class RunnerParams(Section):
    """The ``runner`` section: how per-clip tasks run in parallel (results do not depend on it)."""

    SECTION: ClassVar[str] = "runner"
    CHOICES: ClassVar[dict[str, tuple]] = {"kind": RUNNER_KINDS}

    kind: str = "threads"
    workers: int | None = None  # parallel clips; None (or 0): the task runner's own default
    dask_address: str | None = None  # an existing Dask scheduler (tcp://host:8786); None: a local cluster


VIDEO_MODES = ("encode", "copy")
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


@dataclass(frozen=True)
class ConvertParams(Section):
    """The ``convert_fps`` section."""

    SECTION: ClassVar[str] = "convert_fps"
    CHOICES: ClassVar[dict[str, tuple]] = {"preset": X264_PRESETS, "video": VIDEO_MODES}

    fps: int = 25
    sample_rate: int = 16000
    # encode: H.264 mp4 at fps. copy: the source's video stream unchanged (.mkv, no decode or encode)
    # plus the frames fps keeps, which align picks while decoding: same frames, one lossy step less
    video: str = "encode"
    crf: int = 18  # encode only
    preset: str = "veryfast"  # encode only: x264's speed/size trade-off (ultrafast: about 2x faster, 2.5x bigger)
    min_audio_db: float = -50.0  # quieter than this (RMS dBFS) counts as silent


@dataclass(frozen=True)
class AlignParams(Section):
    """The ``align`` section."""

    SECTION: ClassVar[str] = "align"
    CHOICES: ClassVar[dict[str, tuple]] = {"mode": (0, 1), "backend": LANDMARK_BACKENDS,
                                           "compression": (None, "gzip", "lzf")}

    size: int = 128
    mode: int = 1  # 1: one transform from the first frame; 0: per-frame transforms, smoothed
    backend: str = "dlib"
    detect_upsample: int = 1  # 0: no upsampling where a face of ~80 px and up is found (4x faster)
    smooth_sigma: float = 2.0  # mode 0: Gaussian smoothing of landmarks over time, in frames
    max_gap: int = 5  # longest run of face-less frames that is filled by interpolation
    max_missing: float = 0.2  # reject a clip when more than this fraction of frames has no face
    min_frames: int = 32  # one training window
    max_shape_error: float = 0.12  # re-detect when the rigid-point fit error exceeds this (IOD units)
    max_jump: float = 0.35  # re-detect when the face moves more than this between frames (IOD units)
    compression: str | None = None  # of the HDF5 frames: None (12x faster to write and read than gzip; 23% bigger)


@dataclass(frozen=True)
class SplitParams(Section):
    """The ``split`` section."""

    SECTION: ClassVar[str] = "split"

    val_ratio: float = 0.25  # fraction of actors held out for validation
    seed: int = 0


@dataclass(frozen=True)
class ComputeParams(Section):
    """The ``compute`` section: where the training stages run."""

    SECTION: ClassVar[str] = "compute"
    CHOICES: ClassVar[dict[str, tuple]] = {"device": DEVICES}

    device: str = "auto"
    nproc: int = 1  # > 1: DDP through torchrun


@dataclass(frozen=True)
class TrainParams(Section):
    """One training stage's section (``pretrain_emotion``, ``pretrain_generator``, ``train_gan``)."""

    SECTION: ClassVar[str] = "training"
    CHOICES: ClassVar[dict[str, tuple]] = {"profile": PROFILE_NAMES, "decoder": (None, *DECODERS),
                                           "perceptual_net": PERCEPTUAL_NETS, "reference": REFERENCES,
                                           "device": DEVICES}
    SET_ELSEWHERE: ClassVar[dict[str, str]] = {"device": "compute.device"}

    profile: str = "cpu"
    decoder: str | None = None  # motion | pixels; None: the profile's (motion, or pixels for paper)
    steps: int = 200
    batch: int = 4
    lr: float = 2e-4  # generator / classifier
    lr_d: float = 1e-4  # discriminators in the GAN stage
    workers: int = 2  # DataLoader worker processes
    checkpoint_every: int = 50
    log_every: int = 10
    image_every: int = 50
    seed: int = 0
    device: str = "auto"  # compute.device
    rec: float = 1.0
    perceptual: float = 0.1
    perceptual_net: str = "emotion"  # emotion | vgg19
    vgg19_weights: str | None = None
    aux: float = 0.1
    disc_frame: float = 0.01
    disc_emo: float = 0.001
    gp: float = 10.0
    coarse: float = 1.0  # motion decoder: L1 of 4x4-block averages
    smooth: float = 0.05  # motion decoder: total variation of the motion field
    mask_prior: float = 1.0  # motion decoder: (1 - mask) outside the mouth
    landmark_flow: float = 1.0  # motion decoder: the field at the frame's landmarks points to the reference's
    landmark_points: float = 1.0  # motion decoder: its landmark displacements are the true ones (pixels)
    expression_lr: float = 10.0  # motion decoder: the expression table's learning rate, in multiples of lr
    reference: str = "neutral"  # reference frame: neutral (a neutral clip of the same actor) | clip | mixed
    still_head: bool = True  # windows moved into the reference's head pose (see ClipWindows)


@dataclass(frozen=True)
class EvaluateParams(Section):
    """The ``evaluate`` section."""

    SECTION: ClassVar[str] = "evaluate"
    CHOICES: ClassVar[dict[str, tuple]] = {"reference": EVALUATE_REFERENCES}

    seconds: float = 2.0  # of each validation clip (and of the speech each held-out photo speaks)
    max_clips: int | None = None  # validation clips, spread over the people and emotions; None: every clip
    sample_clips: int = 3  # clips in each per-emotion sample video and sheet
    reference: str = "neutral"  # the first frame of the speaker's neutral clip | clip (its own)
    photos: str | None = None  # photos of people in neither split; None: none
    photo_clips: int = 1  # each photo speaks the speech of this many validation clips
    size: int = 256  # the aligned face's size for held-out photos
    face_frames: int = 4  # frames per video for identity and re-detection
    syncnet_weights: str | None = None  # SyncNet's published state_dict: adds LSE-D / LSE-C
    inception: str | None = None  # a TorchScript Inception feature extractor: adds FID
    seed: int = 0


@dataclass(frozen=True)
class PromoteParams(Section):
    """The ``promote`` section: the gate from candidate to champion (see synthtext/evaluation/promote.py)."""

    SECTION: ClassVar[str] = "promote"

    metrics: tuple[str, ...] = ("sync_r", "emotion_accuracy")  # each must beat the champion by margin
    margin: float = 0.0
    against_static: bool = True  # and these and static_floor be no worse than the static baseline
    static_floor: tuple[str, ...] = ("ssim",)
    max_identity: float | None = 0.45  # median identity distance on the held-out photos; None: not checked
    outside_judge: bool = True  # the outside judge reads the held-out photos' emotions better than chance


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class Params:
    """params.yaml: one attribute per section; a section the file leaves out has its defaults."""

    data: DataParams = field(default_factory=DataParams)
    sample: CorpusParams = field(default_factory=CorpusParams)
    runner: RunnerParams = field(default_factory=RunnerParams)
    convert_fps: ConvertParams = field(default_factory=ConvertParams)
    align: AlignParams = field(default_factory=AlignParams)
    split: SplitParams = field(default_factory=SplitParams)
    compute: ComputeParams = field(default_factory=ComputeParams)
    pretrain_emotion: TrainParams = field(default_factory=TrainParams)
    pretrain_generator: TrainParams = field(default_factory=TrainParams)
    train_gan: TrainParams = field(default_factory=TrainParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)
    promote: PromoteParams = field(default_factory=PromoteParams)
    retrain: RetrainParams = field(default_factory=RetrainParams)
    raw: dict = field(default_factory=dict, compare=False, repr=False)
    """The file as YAML read it: what DVC records in dvc.lock, so lineage records and the params hash of
    retraining are computed from it, not from the defaults filled in."""

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Params:
        """Every section of ``raw`` (params.yaml as read) through its dataclass's checks."""
        if not isinstance(raw, Mapping):
            raise SynthTextError(f"{FILE} must map section names to sections, not {raw!r}")
        sections = section_classes()
        built = {}
        for name, values in raw.items():
            if name not in sections:
                raise _unknown("section", str(name), list(sections))
            values = {} if values is None else values
            if not isinstance(values, Mapping):
                raise SynthTextError(f"{FILE}: section {name} must map keys to values, not {values!r}")
            built[name] = sections[name].from_dict(values, name, in_file=True)
        return cls(**built, raw=dict(raw))

    def training(self, stage: str) -> TrainParams:
        """The section of training stage ``stage`` (a key of ``TRAINING_STAGES``)."""
        if stage not in TRAINING_STAGES:
            raise SynthTextError(f"{stage} is not a training stage: use one of {', '.join(TRAINING_STAGES)}")
        return getattr(self, stage)


def section_classes() -> dict[str, type[Section]]:
    """Each params.yaml section's name -> its dataclass."""
    hints = typing.get_type_hints(Params)
    return {f.name: hints[f.name] for f in fields(Params) if f.name != "raw"}


def load_params(path: str | Path = FILE) -> Params:
    """params.yaml, checked and typed."""
    path = Path(path)
    if not path.is_file():
        raise SynthTextError(f"{path} not found: run stages from the repository root")
    with open(path) as f:
        return Params.from_dict(yaml.safe_load(f) or {})
