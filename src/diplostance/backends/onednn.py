"""oneDNN kernels for CPU inference of the classifier: the ``bf16`` and ``int8`` backends.

Two kinds of linear layer, used by the packed forward (packed.py), which also fuses query, key
and value into one product and runs the residual additions and the exact GELU inside them:

* ``PackedLinear`` (bf16, and fp32 for the exact backend): the weight reordered once into
  oneDNN's blocked layout (AMX / AVX-512 BF16 kernels), because ``F.linear`` in bf16 would
  re-pack it on every call; in fp32, oneDNN's products with the GELU and the residual addition
  inside beat MKL's ``F.linear`` followed by them.
* ``Int8Linear``: a u8 x s8 oneDNN matrix product (AMX where the CPU has it, AVX-512 VNNI
  otherwise).  Weights are quantised once, per output channel, symmetric; activations are
  quantised at run time with one scale per token, so nothing needs calibrating and a sentence's
  result does not depend on the other sentences of its batch (one scale per batch let a few
  tokens with large activations after the GELU set the scale for all the others, and the
  accuracy guard refused it).  Everything else (embeddings, layer norms, attention, the
  classification head) runs in bf16.

oneDNN's int8 product takes a single input scale, so it runs on the codes and one pass after it
applies the row scales, the bias, the GELU or the residual.  The packed forward
(``packed._Int8Layer``) fuses everything between two products into one such pass, and the moves
into and out of attention's layout into the passes next to them.  The passes are compiled with
``torch.compile`` when a C++ compiler is present (:func:`kernels`; each on first use, cached on
disk by inductor); otherwise, or with ``DIPLOSTANCE_COMPILE=0``, they run eagerly with the same
results up to rounding.  What each choice measured is in evaluate/benchmarks/README.md.

For models the packed forward does not support, :func:`pack_bf16` and :func:`quantize_int8`
replace the linear layers of the transformers model itself, without fusions.
"""
from __future__ import annotations

import functools
import os
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from .. import hardware
from ..hardware import release_free_memory


@functools.cache
def bf16_supported() -> bool:
    """oneDNN's packed bf16 linear layer runs on this CPU in hardware (AVX-512 BF16 or AMX).  Where
    bf16 would be emulated (``hardware.native_bf16`` is False: AVX2 only, or AVX-512 without BF16)
    it is slower than fp32, so it counts as unsupported."""
    try:
        if not (hardware.native_bf16() and torch.backends.mkldnn.is_available()
                and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
            return False
        PackedLinear(nn.Linear(8, 8).to(torch.bfloat16))(torch.zeros(2, 8, dtype=torch.bfloat16))
        return True
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


@functools.cache
def int8_supported() -> bool:
    """oneDNN's quantised linear layer runs on this CPU (AMX-INT8 or AVX-512 VNNI), next to the
    bf16 kernels the rest of the int8 forward uses."""
    try:
        if not (bf16_supported() and hardware.native_int8()):
            return False
        with torch.inference_mode():  # one row: the eager passes (a probe of oneDNN, not of the compiler)
            Int8Linear(nn.Linear(16, 8))(torch.randn(1, 16, dtype=torch.bfloat16))
        return True
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


@functools.cache
def fp32_supported() -> bool:
    """oneDNN's packed fp32 linear layer runs on this CPU (and matches ``F.linear``)."""
    try:
        if not torch.backends.mkldnn.is_available():
            return False
        linear = nn.Linear(16, 8)
        x = torch.randn(4, 16)
        with torch.inference_mode():
            got = PackedLinear(linear, dtype=torch.float32)(x)
            return bool(torch.allclose(got, linear(x), atol=1e-5, rtol=1e-5))
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


class PackedLinear(nn.Module):
    """Inference-only linear layer with a oneDNN pre-packed weight, in bf16 (default) or fp32;
    ``post``: "none" or "gelu"; ``forward(x, residual)`` adds ``residual`` inside the product."""

    def __init__(self, linear: nn.Linear, post: str = "none", dtype: torch.dtype = torch.bfloat16):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach().to(dtype))
        self.bias = None if linear.bias is None else linear.bias.detach().to(dtype)
        self.post = post

    def forward(self, x, residual=None):
        if residual is None:
            return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, self.post, [], "none" if
                                                      self.post == "gelu" else "")
        if self.post != "none":  # oneDNN has no GELU-then-add post-op chain here (nor does Int8Linear)
            raise ValueError(f"a residual needs post='none', not {self.post!r}")
        shape = x.shape
        out = torch.ops.mkldnn._linear_pointwise.binary(x.reshape(-1, self.in_features), residual.reshape(
            -1, self.out_features).contiguous(), self.weight, self.bias, "add")
        return out.reshape(*shape[:-1], self.out_features)


def _quantize_rows(x):
    """``x`` (rows, k) -> (u8 codes, fp32 scales (rows, 1)): one scale per row (token), symmetric
    around the code 128, so that ``(q - 128) * scale`` is within half a step of ``x`` and zero is
    exact."""
    xf = x.float()
    scale = torch.clamp(xf.abs().amax(-1, keepdim=True), min=1e-8) * (1.0 / 127)
    q = torch.clamp(torch.round(xf * (1.0 / scale)) + 128, 1, 255).to(torch.uint8)
    return q, scale


def _finish(acc, scale, bias):
    """The product of the codes (``acc``, already times the weight scales) -> bf16 output."""
    return (acc.float() * scale + bias).to(torch.bfloat16)


def _finish_gelu(acc, scale, bias):
    return F.gelu(acc.float() * scale + bias).to(torch.bfloat16)


def _finish_add(acc, scale, residual, bias):
    return (acc.float() * scale + bias + residual.float()).to(torch.bfloat16)


#: Largest magnitude of the exact GELU of a negative number (its minimum, -0.16997, at -0.7518).
_GELU_MAX_NEGATIVE = 0.17


def _finish_gelu_quantize(acc, scale, bias):
    """GELU of the finished product, quantised per row for the next product, without writing it:
    the GELU rises from -0.17 on, so a row's largest magnitude is at most max(GELU(row maximum),
    0.17), known before any GELU is computed (one GELU per value instead of two)."""
    v = acc.float() * scale + bias
    top = torch.clamp(F.gelu(v.amax(-1, keepdim=True)), min=_GELU_MAX_NEGATIVE) * (1.0 / 127)
    q = torch.clamp(torch.round(F.gelu(v) * (1.0 / top)) + 128, 1, 255).to(torch.uint8)
    return q, top


def _finish_add_norm(acc, scale, residual, bias, weight, norm_bias, eps: float):
    """Finished product + residual -> layer norm -> bf16 (the sum stays in fp32)."""
    y = acc.float() * scale + bias + residual.float()
    return F.layer_norm(y, y.shape[-1:], weight.float(), norm_bias.float(), eps).to(torch.bfloat16)


def _finish_add_norm_quantize(acc, scale, residual, bias, weight, norm_bias, eps: float):
    """:func:`_finish_add_norm`, and its output quantised per row for the next product."""
    h = _finish_add_norm(acc, scale, residual, bias, weight, norm_bias, eps)
    return (h, *_quantize_rows(h))


def _to_heads(y, unpack, mask, heads: int):
    """The query-key-value product's output ``y`` (packed rows) in attention's layout: a contiguous
    (3, sentences, heads, width, head size) tensor, position (s, w) from row ``unpack[s * width +
    w]`` (``mask``: attention's additive (sentences, 1, 1, width) mask, for the two sizes)."""
    sentences, width = mask.shape[0], mask.shape[-1]
    return y[unpack].view(sentences, width, 3, heads, -1).permute(2, 0, 3, 1, 4).contiguous()


def _finish_heads(acc, scale, bias, unpack, mask, heads: int):
    """:func:`_to_heads` of the product of the codes ``acc`` finished (row scales, bias) in bf16, in
    one pass instead of three (finish, gather, and the copies that the batched products of strided
    heads make).  The bf16 backend keeps its separate gather and copies: compiled into one pass
    without a finish, they measured no faster."""
    return _to_heads((acc.float() * scale + bias).to(torch.bfloat16), unpack, mask, heads)


def _from_heads(a, repack):
    """Attention's output ``a`` (sentences, heads, width, head size) as packed rows, row ``r`` from
    position ``repack[r]`` of the (sentences x width) layout: the heads' transpose and the gather."""
    sentences, heads, width, size = a.shape
    return a.transpose(1, 2).reshape(sentences * width, heads * size)[repack]


def _heads_quantize(a, repack):
    """The codes and row scales (:func:`_quantize_rows`) of :func:`_from_heads`, in one pass."""
    return _quantize_rows(_from_heads(a, repack))


#: Which dimensions of a pass's tensor arguments vary from call to call (compiled as dynamic: one
#: kernel for every batch); the others are the model's widths (static).  Default: a 2-d tensor's rows.
_DYNAMIC = {"_finish_heads": {0: (0,), 1: (0,), 3: (0,), 4: (0, 3)}, "_heads_quantize": {0: (0, 2), 1: (0,)}}


class _Kernels:
    """The int8 layers' element-wise passes: the row quantiser, the ways to finish a product
    (bias, row scales, GELU, residual, layer norm, quantising for the next product), and the
    passes into and out of attention's layout.  ``compiled``: each compiled with ``torch.compile``
    into one pass, the batch's sizes dynamic (one kernel for every batch: :data:`_DYNAMIC`) and the
    widths static; else run eagerly with the same arithmetic.  A call where one of the dynamic
    sizes is below 2 runs eagerly (a dynamic size of 1 would be compiled again)."""

    def __init__(self, compiled: bool):
        self.compiled = compiled
        self.eager = {f.__name__: f for f in (_quantize_rows, _finish, _finish_gelu, _finish_add,
                                              _finish_gelu_quantize, _finish_add_norm_quantize,
                                              _finish_heads, _heads_quantize)}
        self.passes = {name: torch.compile(f, dynamic=False) for name, f in self.eager.items()} if compiled else self.eager

    def _run(self, name, *args):
        """The pass ``name`` on ``args``, the sizes :data:`_DYNAMIC` names marked dynamic."""
        if not self.compiled:
            return self.eager[name](*args)
        dynamic = _DYNAMIC.get(name) or {i: (0,) for i, t in enumerate(args)
                                         if isinstance(t, torch.Tensor) and t.dim() == 2}
        if any(args[i].shape[d] < 2 for i, dims in dynamic.items() for d in dims):
            return self.eager[name](*args)
        for i, dims in dynamic.items():
            for d in dims:
                torch._dynamo.mark_dynamic(args[i], d)
        try:
            return self.passes[name](*args)
        except Exception as exc:  # no C++ compiler, an inductor bug: the eager passes are correct, only slower
            self.compiled = False
            warnings.warn(f"int8 backend: torch.compile failed ({type(exc).__name__}: {exc}); running the passes "
                          "between int8 products eagerly (slower)", RuntimeWarning, stacklevel=3)
            return self.eager[name](*args)

    def quantize(self, x):
        """(rows, k) bf16 -> (u8 codes, (rows, 1) fp32 scales): see :func:`_quantize_rows`."""
        return self._run("_quantize_rows", x)

    def finish(self, acc, scale, bias, post="none", residual=None):
        """The bf16 output of a product of codes: ``acc`` times the row ``scale`` plus ``bias``,
        then the GELU (``post``) or plus ``residual``."""
        if residual is not None:
            return self._run("_finish_add", acc, scale, residual, bias)
        return self._run("_finish_gelu" if post == "gelu" else "_finish", acc, scale, bias)

    def finish_gelu_quantize(self, acc, scale, bias):
        """-> the codes and row scales of the GELU of the finished product (:func:`_finish_gelu_quantize`)."""
        return self._run("_finish_gelu_quantize", acc, scale, bias)

    def finish_add_norm_quantize(self, acc, scale, bias, residual, norm: nn.LayerNorm):
        """-> ``norm``(finished product + ``residual``) in bf16, its codes and their row scales."""
        return self._run("_finish_add_norm_quantize", acc, scale, residual, bias, norm.weight, norm.bias, norm.eps)

    def finish_heads(self, acc, scale, bias, unpack, mask, heads: int):
        """-> queries, keys and values in attention's layout (:func:`_finish_heads`)."""
        return self._run("_finish_heads", acc, scale, bias, unpack, mask, heads)

    def heads_quantize(self, a, repack):
        """-> the codes and row scales of attention's output, packed (:func:`_heads_quantize`)."""
        return self._run("_heads_quantize", a, repack)


@functools.cache
def kernels() -> _Kernels:
    """The int8 layers' element-wise passes: compiled (each on its first use; a failure there
    warns and turns to the eager passes), or eager with ``DIPLOSTANCE_COMPILE=0``."""
    return _Kernels(compiled=os.environ.get("DIPLOSTANCE_COMPILE", "1") != "0")


class Int8Linear(nn.Module):
    """Linear layer as a u8 x s8 oneDNN matrix product with bf16 output.

    Weights: int8, symmetric, one scale per output channel.  Inputs: quantised per call, one scale
    per row (token; :func:`_quantize_rows`).  oneDNN takes one input scale per product, so the
    product runs on the codes (scale 1) and the row scales, the bias, the GELU (``post``: "none"
    or "gelu") and ``residual`` (``forward(x, residual)``) are applied in one pass after it
    (:class:`_Kernels`).  Weights and scales are plain attributes, not parameters, so that
    ``model.to(dtype)`` leaves them as they are.
    """

    def __init__(self, linear: nn.Linear, post: str = "none"):
        super().__init__()
        if post not in ("none", "gelu"):
            raise ValueError(f"post must be 'none' or 'gelu', not {post!r}")
        w = linear.weight.detach().float()
        self.out_features, self.in_features = w.shape
        scale = w.abs().amax(dim=1).clamp(min=1e-12) / 127
        q = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)
        self.w_packed = torch.ops.onednn.qlinear_prepack(q, None)
        self.w_scale = scale
        self.w_zero = torch.zeros(self.out_features, dtype=torch.int64)
        self.b = torch.zeros(self.out_features) if linear.bias is None else linear.bias.detach().float()
        self.post = post
        self.one, self.zero = torch.tensor(1.0), torch.tensor(128)

    def product(self, q):
        """The product of (rows, in) codes with the weights, times the weight scales, bf16: still
        to be multiplied by the rows' scales and given the bias (:meth:`_Kernels.finish`)."""
        return torch.ops.onednn.qlinear_pointwise.tensor(q, self.one, self.zero, self.w_packed, self.w_scale,
                                                         self.w_zero, None, 1.0, 0, torch.bfloat16, "none", [], "none")

    def forward(self, x, residual=None):
        if residual is not None and self.post != "none":
            raise ValueError(f"a residual needs post='none', not {self.post!r}")
        shape = x.shape
        k = kernels()
        q, scale = k.quantize(x.reshape(-1, self.in_features))
        out = k.finish(self.product(q), scale, self.b, self.post,
                       None if residual is None else residual.reshape(-1, self.out_features))
        return out.reshape(*shape[:-1], self.out_features)


def _replace_linears(root: nn.Module, make) -> None:
    """Every remaining ``nn.Linear`` under ``root`` -> ``make(linear)``, one at a time (each old
    layer is freed as soon as it is replaced)."""
    names = [name for name, m in root.named_modules() if type(m) is nn.Linear]
    for name in names:
        parent, _, child = name.rpartition(".")
        owner = root.get_submodule(parent)
        setattr(owner, child, make(getattr(owner, child)))
        release_free_memory()  # so that the next layer's conversion reuses this one's memory


def pack_bf16(model: nn.Module) -> nn.Module:
    """``model`` (any float dtype) in bf16 with every linear layer packed, for models the packed
    forward (packed.py) does not support: the transformers forward stays, without fusions."""
    model = model.to(torch.bfloat16).eval()
    if bf16_supported():
        _replace_linears(model, PackedLinear)
    return model


def quantize_int8(model: nn.Module) -> nn.Module:
    """``model`` with its encoder's linear layers in int8 and the rest in bf16, for models the
    packed forward (packed.py) does not support.  Weights are quantised from the model's own
    dtype, one layer at a time."""
    model = model.eval()
    encoder = getattr(getattr(model, "base_model", model), "encoder", None)
    if encoder is None:
        raise ValueError(f"int8 backend: {type(model).__name__} has no encoder to quantise")
    _replace_linears(encoder, Int8Linear)
    return pack_bf16(model)
