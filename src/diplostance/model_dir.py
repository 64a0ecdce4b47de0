"""The model directory: every file of it is named, written and read here.

A model directory is a standard Hugging Face directory (``config.json`` with ``id2label``
and ``problem_type``, tokenizer files, ``model.safetensors``) plus our own files:

- ``diplostance.json`` (:data:`META_FILE`): format version, labels and their primary order,
  thresholds, the run's configuration, the training data's fingerprint, metrics, library
  versions.  Written once, by training.
- ``guard.json`` (:data:`GUARD_FILE`): the accuracy guard's records per backend and CPU,
  rewritten by ``diplostance guard``; using a model never rewrites ``diplostance.json`` or its card.
- ``training_config.toml`` (:data:`RECIPE_FILE`): the recipe, resolved, that trained it.
- ``README.md`` (:data:`CARD_FILE`): the model card.
- ``model.onnx``, ``model.int8.onnx``, ``onnx_export.json``: written by ``diplostance export``
  (:mod:`diplostance.exporters.onnx`), when asked.

See models/README.md for the format.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DiplostanceError
from .labels import LABELS, PRIMARY_ORDER, LabelSet

FORMAT_VERSION = 1
META_FILE = "diplostance.json"
GUARD_FILE = "guard.json"
RECIPE_FILE = "training_config.toml"
CARD_FILE = "README.md"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
#: Sentencepiece model of an offline-trained tokenizer, kept beside the tokenizer files.
SPM_FILE = "sentencepiece.bpe.model"


class ModelDirError(DiplostanceError, ValueError):
    """A model directory that cannot be used; the message says what was expected."""


def library_versions() -> dict[str, str]:
    import sklearn
    import torch
    import transformers

    from . import __version__

    return {"diplostance": __version__, "transformers": transformers.__version__, "torch": torch.__version__,
            "scikit-learn": sklearn.__version__}


# --------------------------------------------------------------------------- model directories

@dataclass
class ModelMeta:
    labels: list[str] = field(default_factory=lambda: list(LABELS))
    thresholds: list[float] = field(default_factory=lambda: [0.5] * len(LABELS))
    name: str = ""
    format_version: int = FORMAT_VERSION
    primary_order: list[str] = field(default_factory=lambda: list(PRIMARY_ORDER))
    max_length: int = 128
    config: dict[str, Any] = field(default_factory=dict)
    training_data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    created: str = ""

    @property
    def trained_on(self) -> str:
        """The hardware that trained the model (``metrics.train_device``), for cards and reports."""
        return self.metrics.get("train_device") or "a machine not recorded"

    @property
    def label_set(self) -> LabelSet:
        """The model's labels and primary order (:class:`~diplostance.labels.LabelSet`)."""
        return LabelSet(tuple(self.labels), tuple(self.primary_order))

    def to_json(self) -> str:
        from dataclasses import asdict

        return json.dumps(asdict(self), ensure_ascii=False, indent=2)


def read_meta(path: str | Path) -> ModelMeta:
    """Read and validate ``diplostance.json`` of a model directory."""
    path = Path(path)
    if not path.is_dir():
        raise ModelDirError(f"{path}: not a model directory (no such folder). Train the default one with "
                            "'diplostance train training/offline-e5.toml' (or 'diplostance demo') or pass the folder of a trained model")
    meta_path = path / META_FILE
    if not meta_path.exists():
        if (path / "checkpoints").exists():
            raise ModelDirError(f"{path}: training did not finish here (checkpoints but no {META_FILE}); "
                                "resume it with 'diplostance train CONFIG --resume'")
        raise ModelDirError(f"{path}: no {META_FILE}; expected a model directory written by 'diplostance train'")
    try:
        data = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelDirError(f"{meta_path}: unreadable metadata ({exc})") from None
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelDirError(f"{meta_path}: model-directory format version {version!r}, this diplostance reads "
                            f"version {FORMAT_VERSION}; retrain the model with this version or use the diplostance "
                            f"version that wrote it ({data.get('versions', {}).get('diplostance', 'unknown')})")
    known = set(ModelMeta.__dataclass_fields__)
    meta = ModelMeta(**{k: v for k, v in data.items() if k in known})
    labels_ok = isinstance(meta.labels, list) and isinstance(meta.primary_order, list)
    if labels_ok:
        try:
            meta.label_set
        except ValueError:
            labels_ok = False
    if not labels_ok or not isinstance(meta.thresholds, list) or len(meta.thresholds) != len(meta.labels):
        count = len(meta.thresholds) if isinstance(meta.thresholds, list) else meta.thresholds
        raise ModelDirError(f"{meta_path}: labels {meta.labels!r} (primary order {meta.primary_order!r}) with "
                            f"thresholds {count!r}; expected a list of distinct label names, the same names in "
                            f"primary_order, and one threshold each")
    check_model_files(path, meta)
    return meta


#: Files that hold a tokenizer's vocabulary: without one of them, transformers builds an empty
#: tokenizer that reads every word as <unk>, and scoring goes on with exit 0.
TOKENIZER_FILES = ("tokenizer.json", "sentencepiece.bpe.model", "spiece.model", "sentencepiece.model",
                   "vocab.txt", "vocab.json")
#: Model types whose positions start after the padding index, so two positions are never used.
OFFSET_POSITIONS = {"roberta": 2, "camembert": 2, "xlm-roberta": 2, "xlm-roberta-xl": 2}
#: A safetensors header is a few hundred kB at most; a length beyond this is a damaged file.
MAX_SAFETENSORS_HEADER = 100 << 20


def check_model_files(path: str | Path, meta: ModelMeta) -> dict:
    """Refuse a model directory whose files do not fit together, before anything is loaded.

    Each problem would otherwise pass silently or end in a traceback: no tokenizer files (every
    word scored as <unk>), thresholds that are not numbers in [0, 1] (no labels at all, or one
    label everywhere), a ``max_length`` past the model's positions, an ``id2label`` in
    ``config.json`` that is not the labels of ``diplostance.json``, a damaged
    ``model.safetensors``.  Returns ``config.json`` as a dict.
    """
    import math

    path = Path(path)
    meta_path = path / META_FILE
    bad = [i for i, t in enumerate(meta.thresholds)
           if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or not 0 <= t <= 1]
    if bad:
        raise ModelDirError(f"{meta_path}: thresholds[{bad[0]}] ({meta.labels[bad[0]]}) is "
                            f"{meta.thresholds[bad[0]]!r}; expected a number from 0 to 1 for each label. "
                            "The file is damaged: restore it from the trained model (or retrain)")
    missing = [name for name in (CONFIG_FILE, WEIGHTS_FILE, "tokenizer_config.json")
               if not (path / name).is_file()]
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        missing.append(f"a tokenizer vocabulary (one of {', '.join(TOKENIZER_FILES)})")
    if missing:
        raise ModelDirError(f"{path}: incomplete model directory, missing {'; '.join(missing)}; copy the "
                            "whole folder written by 'diplostance train'")
    config_path = path / CONFIG_FILE
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        if not isinstance(config, dict):
            raise ValueError(f"expected a JSON object, got {type(config).__name__}")
    except (UnicodeDecodeError, ValueError) as exc:
        raise ModelDirError(f"{config_path}: unreadable ({exc})") from None
    id2label = config.get("id2label")
    expected = {str(i): name for i, name in enumerate(meta.labels)}
    if not isinstance(id2label, dict) or {str(k): v for k, v in id2label.items()} != expected:
        raise ModelDirError(f"{config_path}: id2label is {id2label!r}, but {META_FILE} has the labels "
                            f"{meta.labels} (expected {expected}); the files come from different models")
    positions = config.get("max_position_embeddings")
    limit = positions - OFFSET_POSITIONS.get(config.get("model_type"), 0) if isinstance(positions, int) else None
    length = meta.max_length
    if isinstance(length, bool) or not isinstance(length, int) or length < 8 or (limit is not None and length > limit):
        raise ModelDirError(f"{meta_path}: max_length is {length!r}; expected a whole number from 8 to "
                            f"{limit if limit is not None else 'the model positions'} (max_position_embeddings "
                            f"{positions} in config.json)")
    check_safetensors(path / WEIGHTS_FILE)
    return config


def check_safetensors(path: Path) -> None:
    """Refuse a ``model.safetensors`` whose header is not a safetensors header (random bytes, a
    truncated copy, a huge header length), with a one-line message instead of a traceback from
    deep inside the loader."""
    import struct

    def fail(what: str):
        raise ModelDirError(f"{path}: not a valid safetensors file ({what}); copy it again from the trained "
                            "model (or retrain)")

    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            fail(f"{size} bytes, shorter than the 8-byte header length")
        (length,) = struct.unpack("<Q", head)
        if length > min(size - 8, MAX_SAFETENSORS_HEADER):
            fail(f"header length {length} bytes in a file of {size} bytes")
        try:
            header = json.loads(f.read(length))
        except (UnicodeDecodeError, ValueError):
            fail("the header is not JSON")
    if not isinstance(header, dict):
        fail("the header is not a JSON object")
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(isinstance(x, int) for x in offsets)
                or not 0 <= offsets[0] <= offsets[1]):
            fail(f"tensor {name!r} has no valid data_offsets")
        end = max(end, offsets[1])
    if 8 + length + end > size:
        fail(f"the tensors need {8 + length + end} bytes, the file has {size}: it was cut short")


def write_meta(path: str | Path, meta: ModelMeta) -> None:
    """Write ``diplostance.json`` whole or not at all (a temporary file, then renamed over it)."""
    _write_whole(Path(path, META_FILE), meta.to_json() + "\n")


def load_tokenizer(path: str | Path):
    """The tokenizer of a model directory, refused when it cannot read French: a vocabulary that
    gives only <unk> (the wrong or an emptied file) would score every sentence as the same
    sequence of unknown words, silently."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ModelDirError(f"{path}: the tokenizer files cannot be loaded ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
                            "copy the whole folder written by 'diplostance train'") from exc
    probe = "Le Canada condamne fermement les frappes et salue la France."
    ids = tokenizer(probe, add_special_tokens=False)["input_ids"]
    if not ids or all(i == tokenizer.unk_token_id for i in ids):
        raise ModelDirError(f"{path}: the tokenizer reads every word of a French sentence as "
                            f"{tokenizer.unk_token or 'unknown'}; its vocabulary file is missing or not this "
                            "model's: copy the whole folder written by 'diplostance train'")
    return tokenizer


def read_guard(path: str | Path, meta: ModelMeta | None = None) -> dict:
    """The accuracy guard's record of a model (``guard.json``): ``{"min_agreement": ...,
    "backends": {name: entry}}``, or ``{}`` when never measured.  A model written before the
    record had a file of its own keeps it in its metrics, read from there."""
    target = Path(path, GUARD_FILE)
    if target.exists():
        try:
            record = json.loads(target.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ModelDirError(f"{target}: unreadable accuracy-guard record ({exc}); delete it and run "
                                f"'diplostance guard {path}' to measure again") from None
        return record if isinstance(record, dict) else {}
    meta = meta if meta is not None else read_meta(path)
    return dict(meta.metrics.get("guard") or {})


def write_guard(path: str | Path, record: dict) -> None:
    """Write ``guard.json`` whole or not at all."""
    _write_whole(Path(path, GUARD_FILE), json.dumps(record, ensure_ascii=False, indent=2) + "\n")


def _write_whole(target: Path, text: str) -> None:
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)


def save_model(path: str | Path, model, tokenizer, meta: ModelMeta, guard: dict | None = None,
               spm: str | Path | None = None) -> None:
    """Write a complete model directory: the Hugging Face files (weights, ``config.json`` with the
    model's ``id2label``, tokenizer), the guard record, the card, and ``diplostance.json`` last,
    its presence marking a complete directory."""
    path = Path(path)
    model.config.id2label = dict(enumerate(meta.labels))
    model.config.label2id = {name: i for i, name in enumerate(meta.labels)}
    model.config.problem_type = "multi_label_classification"
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    if spm is not None and Path(spm).exists():
        import shutil

        shutil.copy(spm, path / SPM_FILE)
    if guard:
        write_guard(path, guard)
    write_card(path, meta, guard)
    write_meta(path, meta)


def write_card(path: str | Path, meta: ModelMeta, guard: dict | None = None) -> Path:
    """Write the model card (``README.md``); training does, once: ``diplostance guard`` writes
    ``guard.json`` only."""
    from .model_card import render_card

    try:
        config = json.loads(Path(path, CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = {}
    out = Path(path, CARD_FILE)
    out.write_text(render_card(path, meta, guard, config.get("model_type", "")), encoding="utf-8")
    return out
