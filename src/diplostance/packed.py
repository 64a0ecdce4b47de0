"""A token-packed inference forward for BERT-family sequence classifiers (fp32, bf16, int8).

The transformers forward computes every layer on the padded batch, and the last layer on every
token although the classification head reads only the first (``<s>`` / ``[CLS]``).
:class:`PackedClassifier` computes the same function with less work:

* the linear layers, layer norms and activations see only the real tokens, packed into one
  (tokens x hidden) matrix; only attention sees the padded (batch x length) layout, gathered
  from the packed one and back (measured on the benchmark's length-sorted batches of the
  corpus: 17-25% of the padded tokens were padding);
* the last layer computes attention, its feed-forward block and layer norms for the first token
  only (the keys and values still come from every token);
* query, key and value are one matrix product; the residual additions run inside the products
  (bf16, int8) and the exact GELU too (bf16, int8, fused by oneDNN).

The weights are the model's own: exact in ``fp32`` (equal to the transformers forward up to
float rounding, 1e-6 on probabilities), oneDNN's packed bf16 or int8 kernels otherwise (see
onednn.py).  Architectures it supports: BERT, RoBERTa, CamemBERT, XLM-RoBERTa encoders with
absolute positions and a sequence classification head; :func:`unsupported` says why another
model is not, and the backends then keep the transformers forward.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .inference import release_free_memory

MODEL_TYPES = ("bert", "roberta", "camembert", "xlm-roberta")
#: Tokens per batch: :func:`inference.predict_proba` fills each batch of a packed backend up to this
#: many tokens, and the packed matrix is padded to exactly this many rows (with copies of a real
#: token, never read back); a smaller one (the last batch, the last layer's first tokens) to a
#: multiple of 512 or to 64, 128 or 256 (:func:`padded_rows`).  oneDNN builds and caches kernels per
#: matrix shape, and the C heap reuses freed blocks of equal sizes: with a few shapes, the memory
#: stays flat however many documents are scored (measured with fp32 left unpadded: the high-water
#: mark grew 1.13 -> 1.32 GB over 2,000 sentences; padded, 1.11 -> 1.14 GB).
ROWS = 2048


def padded_rows(n: int, rows: int = ROWS) -> int:
    """The row count a packed matrix of ``n`` rows is padded to (see :data:`ROWS`): a multiple of
    ``rows`` from ``rows`` on, else of 512 from 512 on, else 64, 128, 256 or 512."""
    if n >= rows:
        return -(-n // rows) * rows
    if n > 512:
        return -(-n // 512) * 512
    return max(64, 1 << (n - 1).bit_length())


def _pad_index(index: torch.Tensor, rows: int) -> torch.Tensor:
    """``index`` lengthened to ``rows`` entries with copies of its first."""
    n = index.numel()
    return torch.cat([index, index[:1].expand(rows - n)]) if rows > n else index


def unsupported(model) -> str | None:
    """Why ``model`` cannot run packed (a sentence), or None when it can."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "model_type", None) not in MODEL_TYPES:
        return f"model type {getattr(config, 'model_type', None)!r} is not one of {list(MODEL_TYPES)}"
    if getattr(config, "is_decoder", False) or getattr(config, "add_cross_attention", False):
        return "a decoder, not an encoder"
    if getattr(config, "position_embedding_type", "absolute") != "absolute":
        return f"position embeddings {config.position_embedding_type!r}, not 'absolute'"
    if not type(model).__name__.endswith("ForSequenceClassification"):
        return f"{type(model).__name__} is not a sequence classifier"
    base = getattr(model, "base_model", None)
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if layers is None or not hasattr(base, "embeddings") or not hasattr(model, "classifier"):
        return "no embeddings, encoder layers and classifier where a BERT-family model has them"
    for layer in layers:
        try:
            names = (layer.attention.self.query, layer.attention.self.key, layer.attention.self.value,
                     layer.attention.output.dense, layer.attention.output.LayerNorm, layer.intermediate.dense,
                     layer.output.dense, layer.output.LayerNorm)
        except AttributeError:
            return "an encoder layer without the BERT block's modules"
        if not all(isinstance(m, (nn.Linear, nn.LayerNorm)) for m in names):
            return "an encoder layer whose projections are not plain linear layers"
    return None


class _Fp32Linear(nn.Module):
    """Plain fp32 linear layer (MKL), with the interface of the oneDNN layers (``post``: "none" or
    "gelu", ``forward(x, residual)``)."""

    def __init__(self, linear: nn.Linear, post: str = "none"):
        super().__init__()
        self.weight = linear.weight.detach().float()
        self.bias = None if linear.bias is None else linear.bias.detach().float()
        self.post = post

    def forward(self, x, residual=None):
        y = F.linear(x, self.weight, self.bias)
        if self.post == "gelu":
            y = F.gelu(y)
        return y if residual is None else y.add_(residual)


def _fused_qkv(attention: nn.Module) -> nn.Linear:
    """The query, key and value projections as one linear layer (outputs in that order)."""
    parts = (attention.query, attention.key, attention.value)
    fused = nn.Linear(parts[0].in_features, sum(p.out_features for p in parts), bias=parts[0].bias is not None,
                      dtype=parts[0].weight.dtype)
    with torch.no_grad():
        fused.weight.copy_(torch.cat([p.weight for p in parts]))
        if fused.bias is not None:
            fused.bias.copy_(torch.cat([p.bias for p in parts]))
    return fused


class _Layer(nn.Module):
    def __init__(self, layer: nn.Module, make, act):
        super().__init__()
        self.qkv = make(_fused_qkv(layer.attention.self))
        self.out = make(layer.attention.output.dense)
        self.norm1 = layer.attention.output.LayerNorm
        self.up = make(layer.intermediate.dense, "gelu" if act is None else "none")
        self.act = act
        self.down = make(layer.output.dense)
        self.norm2 = layer.output.LayerNorm

    def feed_forward(self, x):
        h = self.up(x)
        if self.act is not None:
            h = self.act(h)
        return self.norm2(self.down(h, x))


class PackedClassifier(nn.Module):
    """``model`` (a supported transformers sequence classifier) as a packed forward in ``kind``:
    "fp32", "bf16" or "int8".  Takes ``model`` over: its encoder layers are converted one at a
    time and released.  ``forward(input_ids, attention_mask)`` returns the logits; every row must
    start with a real token (right padding), as :func:`inference.predict_proba` makes them.
    ``rows``: tokens per batch (see :data:`ROWS`)."""

    def __init__(self, model: nn.Module, kind: str = "fp32", rows: int = ROWS):
        super().__init__()
        self.rows = rows  # tokens per batch: read by predict_proba (see ROWS)
        reason = unsupported(model)
        if reason is not None:
            raise ValueError(f"cannot pack this model: {reason}")
        from transformers.activations import ACT2FN

        from . import onednn

        makers = {"fp32": _Fp32Linear, "bf16": onednn.PackedLinear, "int8": onednn.Int8Linear}
        if kind not in makers:
            raise ValueError(f"unknown kind {kind!r}; expected one of {list(makers)}")
        config = model.config
        self.kind = kind
        self.dtype = torch.float32 if kind == "fp32" else torch.bfloat16
        self.heads = config.num_attention_heads
        self.hidden = config.hidden_size
        base = model.base_model
        act = None if config.hidden_act == "gelu" else ACT2FN[config.hidden_act]  # exact GELU: in the product
        model.eval()
        layers = []
        for i in range(len(base.encoder.layer)):
            layers.append(_Layer(base.encoder.layer[i], makers[kind], act).to(self.dtype))
            base.encoder.layer[i] = nn.Identity()  # the original weights go as soon as converted
            release_free_memory()
        self.layers = nn.ModuleList(layers)
        self.embeddings = base.embeddings.to(self.dtype)
        pooler = getattr(base, "pooler", None)
        self.pooler = None if pooler is None else pooler.to(self.dtype)
        self.classifier = model.classifier.to(self.dtype)
        if kind != "fp32":  # the head's linear layers too (one row per sentence: small, but packed)
            for module in [self.classifier] + ([self.pooler] if self.pooler is not None else []):
                for name, child in list(module.named_children()):
                    if type(child) is nn.Linear and onednn.bf16_supported():
                        setattr(module, name, onednn.PackedLinear(child))
        self.eval()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        batch, length = input_ids.shape
        if not bool(attention_mask[:, 0].all()):
            raise ValueError("every row must start with a real token (right padding only)")
        heads, hidden = self.heads, self.hidden
        real = attention_mask.reshape(-1).nonzero().squeeze(1)  # padded position of each real token
        n = real.numel()
        pack = _pad_index(real, padded_rows(n, self.rows))
        unpack = torch.zeros(batch * length, dtype=torch.int64)  # packed row of each padded position
        unpack[real] = torch.arange(n)  # (padding positions read row 0: masked out of attention)
        lengths = attention_mask.sum(1)
        firsts = _pad_index(torch.cumsum(lengths, 0) - lengths, padded_rows(batch, self.rows))  # packed row of each first token
        # an additive mask in the model's dtype: fp32 attention measured 20% slower with a boolean one
        mask = torch.zeros(batch, 1, 1, length, dtype=self.dtype).masked_fill_(
            attention_mask[:, None, None, :] == 0, torch.finfo(self.dtype).min)
        x = self.embeddings(input_ids=input_ids).reshape(batch * length, hidden).index_select(0, pack)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            qkv = layer.qkv(x).index_select(0, unpack).view(batch, length, 3, heads, hidden // heads)
            q, k, v = qkv.permute(2, 0, 3, 1, 4)
            if i < last:
                a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
                a = a.transpose(1, 2).reshape(batch * length, hidden).index_select(0, pack)
                x = layer.norm1(layer.out(a, x))
            else:  # the first token only
                a = F.scaled_dot_product_attention(q[:, :, :1], k, v, attn_mask=mask).reshape(batch, hidden)
                a = a.index_select(0, _pad_index(torch.arange(batch), firsts.numel()))
                x = layer.norm1(layer.out(a, x.index_select(0, firsts)))
            x = layer.feed_forward(x)
        if not self.layers:
            x = x.index_select(0, firsts)
        # (rows, 1, hidden): what the heads read as position 0; all padded rows, not the batch's
        # own count: a kernel per distinct matrix shape is built and cached (see ROWS), and batches
        # hold any number of sentences
        features = x[:, None, :]
        if self.pooler is not None:
            features = self.pooler(features)
        return self.classifier(features)[:batch]
