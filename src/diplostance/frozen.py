"""Fine-tuning above a frozen bottom: the embeddings and the lower encoder layers stay as
pretrained, run once per sentence, and their outputs are cached for every epoch.

Why: on a CPU, fine-tuning time is the forward and backward passes of every layer, every step.
With the embeddings and the lower ``k`` of ``n`` layers frozen, nothing changes in them during
training, so their output for a sentence is the same each epoch: computing it once (one forward
pass over the training and dev sentences, in inference mode) and training the top ``n - k``
layers on it costs about ``(n - k) / n`` of a full step.  The model keeps its architecture: after
training, :meth:`FrozenBottom.restore` puts the bottom back and the model directory is a standard
Hugging Face classifier.

Works for the BERT family (BERT, RoBERTa, XLM-RoBERTa, CamemBERT: ``model.base_model`` with
``embeddings`` and ``encoder.layer``), whose base model accepts ``inputs_embeds``.  The only
difference from training the same frozen model directly: the frozen layers run without dropout.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .errors import DiplostanceError


class _Given(nn.Module):
    """Stands in for the embeddings while the cached bottom feeds the top layers: returns the
    hidden states it is given as ``inputs_embeds``."""

    def forward(self, input_ids=None, inputs_embeds=None, **kwargs):
        if inputs_embeds is None:
            raise RuntimeError("the frozen bottom is detached: pass the cached hidden states as inputs_embeds")
        return inputs_embeds


class FrozenBottom:
    """The embeddings and lower ``layers`` encoder layers of ``model`` (a transformers sequence
    classifier of the BERT family), frozen."""

    def __init__(self, model, layers: int):
        base = model.base_model
        if not (hasattr(base, "embeddings") and hasattr(getattr(base, "encoder", None), "layer")):
            raise DiplostanceError(f"training.freeze_layers: {type(model).__name__} has no BERT-style encoder "
                                   "(embeddings, encoder.layer); set training.freeze_layers = 0")
        n = len(base.encoder.layer)
        if not 0 < layers < n:
            raise DiplostanceError(f"training.freeze_layers: expected 1 to {n - 1} for this {n}-layer model "
                                   f"(0 trains every layer), got {layers}")
        self.model, self.base, self.k = model, base, layers
        self.embeddings = base.embeddings
        self.layers = base.encoder.layer
        for module in (self.embeddings, *self.layers[:layers]):
            for p in module.parameters():
                p.requires_grad_(False)

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    def encode(self, sequences: list[list[int]], pad_id: int, bf16: bool = False, batch_size: int = 64,
               progress=None) -> list[torch.Tensor]:
        """The bottom's output for each token-id sequence: one float32 tensor (length x hidden)
        per sequence, in input order.  Batches of similar lengths, inference mode, the model in
        eval mode (no dropout), bf16 autocast when training uses it."""
        was_training = self.model.training
        self.model.eval()
        self.base.encoder.layer = self.layers[:self.k]
        out: list[torch.Tensor | None] = [None] * len(sequences)
        order = np.argsort([-len(s) for s in sequences], kind="stable")
        try:
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                for start in range(0, len(order), batch_size):
                    idx = order[start:start + batch_size]
                    width = max(len(sequences[i]) for i in idx)
                    ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
                    mask = torch.zeros((len(idx), width), dtype=torch.long)
                    for row, i in enumerate(idx):
                        ids[row, :len(sequences[i])] = torch.tensor(sequences[i])
                        mask[row, :len(sequences[i])] = 1
                    hidden = self.base(input_ids=ids, attention_mask=mask).last_hidden_state.float()
                    for row, i in enumerate(idx):
                        out[i] = hidden[row, :len(sequences[i])].clone()
                    if progress is not None:
                        progress(len(idx))
        finally:
            self.base.encoder.layer = self.layers
            self.model.train(was_training)
        return out  # type: ignore[return-value]

    def detach(self) -> None:
        """From now on the model runs only its top layers and head, on ``inputs_embeds`` = the
        cached bottom's output (:func:`collator`)."""
        self.base.embeddings = _Given()
        self.base.encoder.layer = self.layers[self.k:]

    def restore(self) -> None:
        """The whole model again, with the trained top layers."""
        self.base.embeddings = self.embeddings
        self.base.encoder.layer = self.layers


def collator(cache: list[torch.Tensor]):
    """A data collator for training on cached bottoms: each feature's ``row`` indexes ``cache``;
    the batch holds ``inputs_embeds`` (zero-padded), ``attention_mask`` and float ``labels``."""

    def collate(features):
        rows = [cache[f["row"]] for f in features]
        width = max(r.shape[0] for r in rows)
        embeds = torch.zeros((len(rows), width, rows[0].shape[1]), dtype=torch.float32)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            embeds[i, :r.shape[0]] = r
            mask[i, :r.shape[0]] = 1
        labels = torch.tensor(np.array([f["labels"] for f in features]), dtype=torch.float32)
        return {"inputs_embeds": embeds, "attention_mask": mask, "labels": labels}

    return collate
