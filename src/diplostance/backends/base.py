"""What every backend shares: the :class:`Backend` interface, :class:`TorchBackend`, and
:func:`predict_proba` (token windows, length-sorted dynamic batches, sigmoid probabilities).

A backend turns padded token-id batches into logits; :func:`predict_proba` does the rest and
is shared by training (dev thresholds), evaluation and scoring, so every path gives the same
probabilities.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np

from ..hardware import release_free_memory


class Backend(Protocol):
    name: str
    #: Tokens per batch for backends that pack tokens (batches are then filled by tokens, not by
    #: sentences); None: ``batch_size`` sentences per batch.
    batch_tokens: int | None

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray: ...


class TorchBackend:
    """PyTorch inference under ``inference_mode`` of a transformers model or of a module that
    returns the logits (packed.py)."""

    def __init__(self, model, name: str = "fp32", device: str = "cpu"):
        self.model = model.eval()
        self.name = name
        self.device = device
        self.batch_tokens = getattr(model, "rows", None)  # the packed forward's (packed.py)

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            ids, mask = torch.from_numpy(input_ids), torch.from_numpy(attention_mask)
            if self.device != "cpu":
                ids, mask = ids.to(self.device), mask.to(self.device)
            out = self.model(input_ids=ids, attention_mask=mask)
            return getattr(out, "logits", out).float().cpu().numpy()  # a transformers output, or the logits


#: Batches are padded to a multiple of this many tokens: far fewer distinct shapes, so oneDNN's
#: cache of compiled kernels (one set per shape) stays small and is reused instead of growing with
#: every new width met.  Padding is masked: the probabilities do not change.
PAD_MULTIPLE = 8


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def predict_proba(backend: Backend, tokenizer, texts: list[str], max_length: int, batch_size: int = 32,
                  progress=None) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities (n_texts x n_labels) and the number of windows per text.

    Windows are sorted by length and batched so that each batch is padded only to its own
    longest member (rounded up to a multiple of :data:`PAD_MULTIPLE`); a batch holds
    ``batch_size`` windows, or, for a backend with ``batch_tokens``, as many windows as fit in
    that many tokens.  Results come back in the input order.  ``progress`` (optional) is called
    with the number of texts finished after each batch.
    """
    n = len(texts)
    if n == 0:
        return np.zeros((0, 0), dtype=np.float32), np.zeros(0, dtype=int)
    seqs, owner = encode_with_windows(tokenizer, texts, max_length)
    owner = np.asarray(owner)
    lengths = [len(s) for s in seqs]
    order = np.argsort([-k for k in lengths], kind="stable")
    pad = tokenizer.pad_token_id
    longest = len(seqs[order[0]])  # never pad past the longest window (the model's maximum length)
    window_probs: np.ndarray | None = None
    for idx in _batches(order, lengths, batch_size, getattr(backend, "batch_tokens", None)):
        width = min(-(-max(len(seqs[i]) for i in idx) // PAD_MULTIPLE) * PAD_MULTIPLE, longest)
        ids = np.full((len(idx), width), pad, dtype=np.int64)
        mask = np.zeros((len(idx), width), dtype=np.int64)
        for row, i in enumerate(idx):
            ids[row, :len(seqs[i])] = seqs[i]
            mask[row, :len(seqs[i])] = 1
        probs = sigmoid(backend.logits(ids, mask).astype(np.float64))
        if window_probs is None:
            window_probs = np.zeros((len(seqs), probs.shape[1]))
        window_probs[idx] = probs
        if progress is not None:
            progress(len(idx))
    result = np.zeros((n, window_probs.shape[1]))
    np.maximum.at(result, owner, window_probs)
    counts = np.bincount(owner, minlength=n)
    release_free_memory()
    return result.astype(np.float32), counts


def _batches(order: np.ndarray, lengths: list[int], batch_size: int, batch_tokens: int | None):
    """``order`` cut into batches of ``batch_size`` windows, or of at most ``batch_tokens`` tokens
    (at least one window each)."""
    if not batch_tokens:
        for start in range(0, len(order), batch_size):
            yield order[start:start + batch_size]
        return
    start = tokens = 0
    for k, i in enumerate(order):
        if k > start and tokens + lengths[i] > batch_tokens:
            yield order[start:k]
            start, tokens = k, 0
        tokens += lengths[i]
    yield order[start:]


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
