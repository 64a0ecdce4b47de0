"""A token-packed inference forward for BERT-family sequence classifiers (fp32, bf16, int8).

The transformers forward computes every layer on the padded batch, and the last layer on every
token although the classification head reads only the first (``<s>`` / ``[CLS]``).
:class:`PackedClassifier` computes the same function with less work:

* the linear layers, layer norms and activations see only the real tokens, packed into one
  (tokens x hidden) matrix; only attention sees the padded (batch x length) layout, gathered
  from the packed one and back (length-sorted batches still hold padding);
* the last layer computes attention, its feed-forward block and layer norms for the first token
  only (the keys and values still come from every token);
* query, key and value are one matrix product; the residual additions and the exact GELU run
  inside oneDNN's products (fp32 where oneDNN has fp32 kernels, bf16); in int8, whose products
  run on per-token codes, everything between two products is one compiled pass, the gather into
  attention's layout and out of it included (:class:`_Int8Layer`);
* bf16 and int8 attention of batches up to 128 tokens long runs as two bf16 matrix products
  around an fp32 softmax, in slices of a fixed shape per length padded to 16 tokens, instead of
  PyTorch's fused kernel (see :meth:`PackedClassifier._attention`).

The weights are the model's own: exact in ``fp32`` (equal to the transformers forward up to
float rounding, 1e-6 on probabilities), oneDNN's packed bf16 or int8 kernels otherwise (see
onednn.py).  Architectures it supports: BERT, RoBERTa, CamemBERT, XLM-RoBERTa encoders with
absolute positions and a sequence classification head; :func:`unsupported` says why another
model is not, and the backends then keep the transformers forward.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from . import onednn
from ..hardware import release_free_memory

MODEL_TYPES = ("bert", "roberta", "camembert", "xlm-roberta")
#: Tokens per batch: :func:`inference.predict_proba` fills each batch of a packed backend up to this
#: many tokens, and the packed matrix is padded to exactly this many rows (with copies of a real
#: token, never read back); a smaller one (the last batch, the last layer's first tokens) to a
#: multiple of 512 or to 64, 128 or 256 (:func:`padded_rows`).  oneDNN builds and caches kernels per
#: matrix shape, and the C heap reuses freed blocks of equal sizes: with a few shapes, the memory
#: stays flat however many documents are scored (left unpadded, it grew with every new shape).
ROWS = 2048
#: bf16 / int8 attention of batches up to this many tokens long runs as two bf16 matrix products
#: around an fp32 softmax, in slices of fixed shapes (see :meth:`PackedClassifier._attention`);
#: longer batches, and fp32, keep PyTorch's fused kernel.
SLICED_MAX_LENGTH = 128
#: The sliced attention pads a batch's length to a multiple of this many tokens ...
SLICE_WIDTH = 16
#: ... and cuts it into slices of ``SLICE_TOKENS // padded length`` sentences: one matrix shape
#: per padded length, so oneDNN builds at most a few dozen kernels, once.
SLICE_TOKENS = 512
#: The profiler's name for the attention of :class:`PackedClassifier` (scores, softmax, context).
ATTENTION = "diplostance::attention"


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
    "gelu", ``forward(x, residual)``): the fp32 kind's layers where oneDNN has no fp32 kernels."""

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
    def __init__(self, layer: nn.Module, make, act, query_scale: float = 1.0):
        super().__init__()
        qkv = _fused_qkv(layer.attention.self)
        if query_scale != 1.0:  # attention's 1/sqrt(head size), applied once to the weights (in fp32)
            with torch.no_grad():
                rows = qkv.out_features // 3
                qkv.weight[:rows] *= query_scale
                if qkv.bias is not None:
                    qkv.bias[:rows] *= query_scale
        self.qkv = make(qkv)
        self.out = make(layer.attention.output.dense)
        self.norm1 = layer.attention.output.LayerNorm
        self.up = make(layer.intermediate.dense, "gelu" if act is None else "none")
        self.act = act
        self.down = make(layer.output.dense)
        self.norm2 = layer.output.LayerNorm

    def enter(self, x):
        """The first layer's input state from the packed embeddings ``x``: ``x`` itself (see
        :class:`_Int8Layer` for another)."""
        return x

    def heads(self, state, unpack, mask, heads: int):
        """Queries, keys and values in attention's layout: (3, sentences, heads, width, head size),
        position (s, w) from packed row ``unpack[s * width + w]``; ``mask``: attention's
        (sentences, 1, 1, width) mask (for the sizes)."""
        sentences, width = mask.shape[0], mask.shape[-1]
        return self.qkv(state).index_select(0, unpack).view(sentences, width, 3, heads, -1).permute(2, 0, 3, 1, 4)

    def leave(self, a, repack, state):
        """The next layer's input state from attention's output ``a`` (sentences, heads, width,
        head size): packed row ``r`` from position ``repack[r]``, then :meth:`block`."""
        return self.block(onednn._from_heads(a, repack), state)

    def last(self, a, state, rows):
        """The last layer's output for the first tokens only: ``a``, their attention output
        (rows, hidden), ``rows``, their packed rows."""
        return self.block(a, state.index_select(0, rows))

    def block(self, a, x):
        """The rest of the layer after attention: the output projection of ``a`` plus ``x``, layer
        norm, feed-forward, plus residual, layer norm."""
        x = self.norm1(self.out(a, x))
        h = self.up(x)
        if self.act is not None:
            h = self.act(h)
        return self.norm2(self.down(h, x))


class _Int8Layer(_Layer):
    """:class:`_Layer` in int8 (``onednn.Int8Linear``) where everything between two products runs in
    one compiled pass (``onednn.kernels()``): row scales, bias, residual, layer norm and quantising
    for the next product (the next layer's too); the GELU and its quantising, so that the widest
    activation is never written in bf16; the query-key-value output straight into attention's
    layout, and attention's output straight to codes.  The state between layers is (``x``, its
    codes, their row scales).  For models with the exact GELU (:class:`PackedClassifier` gives
    the others :class:`_Layer`, whose GELU-less products are finished one at a time)."""

    def enter(self, x):
        return (x, *onednn.kernels().quantize(x))

    def heads(self, state, unpack, mask, heads: int):
        _, q, scale = state
        return onednn.kernels().finish_heads(self.qkv.product(q), scale, self.qkv.b, unpack, mask, heads)

    def leave(self, a, repack, state):
        return self._block(*onednn.kernels().heads_quantize(a, repack), state[0])

    def last(self, a, state, rows):
        # the output's codes are not needed, but the same pass as every other layer's end is one
        # compilation fewer on first use (the quantising of the first tokens' rows costs nothing)
        return self._block(*onednn.kernels().quantize(a), state[0].index_select(0, rows))[0]

    def _block(self, q, scale, x):
        """:meth:`_Layer.block` of ``a`` given as codes ``q`` and row scales -> the next layer's
        state (the output, its codes and their row scales)."""
        k = onednn.kernels()
        x, q, scale = k.finish_add_norm_quantize(self.out.product(q), scale, self.out.b, x, self.norm1)
        q, scale = k.finish_gelu_quantize(self.up.product(q), scale, self.up.b)
        return k.finish_add_norm_quantize(self.down.product(q), scale, self.down.b, x, self.norm2)


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

        fp32 = functools.partial(onednn.PackedLinear, dtype=torch.float32) if onednn.fp32_supported() else _Fp32Linear
        makers = {"fp32": fp32, "bf16": onednn.PackedLinear, "int8": onednn.Int8Linear}
        if kind not in makers:
            raise ValueError(f"unknown kind {kind!r}; expected one of {list(makers)}")
        config = model.config
        self.kind = kind
        self.dtype = torch.float32 if kind == "fp32" else torch.bfloat16
        self.heads = config.num_attention_heads
        self.hidden = config.hidden_size
        base = model.base_model
        act = None if config.hidden_act == "gelu" else ACT2FN[config.hidden_act]  # exact GELU: in the product
        # bf16 / int8: the queries come out of their product already scaled (see _attention); fp32
        # leaves the weights as they are (exact)
        self.query_scale = 1.0 if kind == "fp32" else (self.hidden // self.heads) ** -0.5
        model.eval()
        layers = []
        layer_class = _Int8Layer if kind == "int8" and act is None else _Layer
        for i in range(len(base.encoder.layer)):
            layers.append(layer_class(base.encoder.layer[i], makers[kind], act, self.query_scale).to(self.dtype))
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

    def _layout(self, attention_mask: torch.Tensor):
        """Where attention reads the packed tokens from.  Returns (``sentences``, ``width``, ``per``,
        ``pos``, ``mask``): attention sees a (sentences x width) layout; ``pos``: the position there of
        each real token, in packed order; ``mask``: additive, fp32, (sentences, 1, 1, width);
        ``per``: sentences per slice of the sliced attention, or None for the fused kernel.

        The sliced attention (bf16 / int8, batches up to :data:`SLICED_MAX_LENGTH` tokens long) pads
        the width to a multiple of :data:`SLICE_WIDTH` and the sentences to whole slices; the extra
        sentences hold one masked-in copy of a real token and are never read back."""
        batch, length = attention_mask.shape
        real = attention_mask.bool()
        if self.kind == "fp32" or length > SLICED_MAX_LENGTH:
            sentences, width, per = batch, length, None
        else:
            width = -(-length // SLICE_WIDTH) * SLICE_WIDTH
            per = max(1, SLICE_TOKENS // width)
            sentences = -(-batch // per) * per
        keep = torch.zeros(sentences, width, dtype=torch.bool)
        keep[:batch, :length] = real
        keep[batch:, 0] = True
        pos = (torch.arange(batch)[:, None] * width + torch.arange(length)).reshape(-1)[real.reshape(-1)]
        mask = torch.zeros(sentences, 1, 1, width).masked_fill_(~keep[:, None, None, :], torch.finfo(torch.float32).min)
        return sentences, width, per, pos, mask

    def _attention(self, q, k, v, mask, per):
        """Scaled dot-product attention of (sentences, heads, width, head size) tensors; ``mask``:
        additive, fp32, (sentences, 1, 1, width); ``per``: see :meth:`_layout`.

        ``per`` None: PyTorch's fused kernel (fp32: exact).  Otherwise (bf16 / int8, the queries
        arrive scaled): per slice of ``per`` sentences, two bf16 matrix products around a softmax
        of fp32 scores.  Without AMX, the fused kernel in bf16 runs its many small products one
        (sentence, head, block) at a time, slower than the sliced products.  Whole batches at once
        are as fast, but every batch is a new (sentences, length) shape, for which oneDNN builds
        kernels and keeps them, so memory would grow with the documents scored; sliced, the shapes
        are one per padded length (8 up to 128 tokens), a fixed cost paid over the first batches.
        The figures are in evaluate/benchmarks/README.md; the accuracy guard checks the result like
        the rest of the backend."""
        with torch.profiler.record_function(ATTENTION):  # named for the benchmark's profile
            if per is None:
                scale = 1.0 if self.query_scale != 1.0 else None
                return F.scaled_dot_product_attention(q, k, v, attn_mask=mask.to(q.dtype), scale=scale)
            out = torch.empty(q.shape, dtype=q.dtype)
            for s in range(0, q.shape[0], per):
                scores = torch.matmul(q[s:s + per], k[s:s + per].transpose(-1, -2)).float().add_(mask[s:s + per])
                torch.matmul(torch.softmax(scores, -1).to(q.dtype), v[s:s + per], out=out[s:s + per])
            return out

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        batch, length = input_ids.shape
        if not bool(attention_mask[:, 0].all()):
            raise ValueError("every row must start with a real token (right padding only)")
        heads, hidden = self.heads, self.hidden
        real = attention_mask.reshape(-1).nonzero().squeeze(1)  # padded position of each real token
        n = real.numel()
        pack = _pad_index(real, padded_rows(n, self.rows))
        sentences, width, per, pos, mask = self._layout(attention_mask)
        unpack = torch.zeros(sentences * width, dtype=torch.int64)  # packed row of each attention position
        unpack[pos] = torch.arange(n)  # (padding positions read row 0: masked out of attention)
        repack = _pad_index(pos, pack.numel())  # attention position of each packed row
        lengths = attention_mask.sum(1)
        firsts = _pad_index(torch.cumsum(lengths, 0) - lengths, padded_rows(batch, self.rows))  # packed row of each first token
        x = self.embeddings(input_ids=input_ids).reshape(batch * length, hidden).index_select(0, pack)
        if self.layers:
            state = self.layers[0].enter(x)
        else:  # the embeddings of the first tokens are the output
            x = x.index_select(0, firsts)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            q, k, v = layer.heads(state, unpack, mask, heads)
            if i < last:
                state = layer.leave(self._attention(q, k, v, mask, per), repack, state)
            else:  # the first token only
                # the fused kernel: one query row per sentence is cheap there, and needs no more shapes
                a = self._attention(q[:, :, :1], k, v, mask, None).reshape(sentences, hidden)
                x = layer.last(a.index_select(0, _pad_index(torch.arange(batch), firsts.numel())), state, firsts)
        # (rows, 1, hidden): what the heads read as position 0; all padded rows, not the batch's
        # own count: a kernel per distinct matrix shape is built and cached (see ROWS), and batches
        # hold any number of sentences
        features = x[:, None, :]
        if self.pooler is not None:
            features = self.pooler(features)
        return self.classifier(features)[:batch]
