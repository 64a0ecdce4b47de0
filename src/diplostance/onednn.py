"""oneDNN kernels for CPU inference of the classifier: the ``bf16`` and ``int8`` backends.

Two kinds of linear layer, used by the packed forward (packed.py), which also fuses query, key
and value into one product and runs the residual additions and the exact GELU inside them:

* ``PackedLinear`` (bf16, and fp32 for the exact backend): the weight reordered once into
  oneDNN's blocked layout (AMX / AVX-512 BF16 kernels); ``F.linear`` in bf16 would re-pack it
  on every call.  In fp32, oneDNN's products with the GELU and the residual addition inside
  measured 10-17% faster than MKL's ``F.linear`` followed by them (AMD EPYC, base shapes).
* ``Int8Linear``: a u8 x s8 oneDNN matrix product (AMX where the CPU has it, AVX-512 VNNI
  otherwise), which measured about 2x (VNNI, AMD EPYC) to 4x (AMX, Intel Xeon) the bf16 kernels'
  throughput on the base-shaped model's shapes (evaluate/benchmarks/results.md).  Weights are
  quantised once, per output channel, symmetric; activations are quantised at run time, per
  tensor (one scale and zero point per batch and layer input, unsigned 8 bits), so nothing needs
  calibrating.  Everything else (embeddings, layer norms, attention, the classification head)
  runs in bf16.

The activation quantiser is ``torch.aminmax`` (one vectorised pass) followed by one quantising
pass compiled with ``torch.compile`` once per process when a C++ compiler is present (about 8 s;
several times faster than eager); otherwise, or with ``DIPLOSTANCE_COMPILE=0``, it runs eagerly
with the same results up to rounding.  Where the rest of the int8 backend's time goes (attention,
layer norms, Python) is profiled in evaluate/benchmarks/results.md.

For models the packed forward does not support, :func:`pack_bf16` and :func:`quantize_int8`
replace the linear layers of the transformers model itself, without fusions.
"""
from __future__ import annotations

import functools
import os
import warnings

import torch
from torch import nn

from .inference import release_free_memory


@functools.cache
def bf16_supported() -> bool:
    """oneDNN's packed bf16 linear layer runs on this CPU (AVX-512 BF16 or AMX)."""
    try:
        if not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
            return False
        PackedLinear(nn.Linear(8, 8).to(torch.bfloat16))(torch.zeros(2, 8, dtype=torch.bfloat16))
        return True
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


@functools.cache
def int8_supported() -> bool:
    """oneDNN's quantised linear layer runs on this CPU (AMX-INT8 or AVX-512 VNNI)."""
    try:
        if not bf16_supported():
            return False
        with torch.inference_mode():
            Int8Linear(nn.Linear(16, 8))(torch.randn(2, 16, dtype=torch.bfloat16))
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


def _quantize_pass(x, lo, hi):
    """``x`` -> (u8 tensor, scale, zero point), given its minimum ``lo`` and maximum ``hi``:
    per-tensor affine, zero exact.  One pass over ``x`` (a multiplication by the inverse scale, not
    a division: the compiled kernel then runs at memory speed)."""
    lo = torch.clamp(lo.float(), max=0)
    hi = torch.clamp(hi.float(), min=0)
    scale = torch.clamp((hi - lo) / 255, min=1e-8)
    zero = torch.round(-lo / scale)
    q = torch.clamp(torch.round(x.float() * (1.0 / scale)) + zero, 0, 255).to(torch.uint8)
    return q, scale, zero.to(torch.int64)


def _quantize_eager(x):
    """The activation quantiser without ``torch.compile``: the same arithmetic, eagerly."""
    lo, hi = torch.aminmax(x)
    return _quantize_pass(x, lo, hi)


#: The compiled pass sees its input as rows of this many values, a static width, and a dynamic
#: number of rows: inductor then vectorises the rows and splits them over the threads (with every
#: size dynamic it made one single-threaded loop, 1.8x slower on 2 cores).
_ROW = 64


class _CompiledQuantizer:
    """``torch.aminmax`` (one vectorised pass, eager) then the compiled quantising pass.  Measured on
    a (1536, 3072) bf16 activation on a 2-core Xeon with AMX: 1.4 ms against 2.4 ms for the former
    compiled amin + amax + division (issue #12's profile: 20% of the int8 backend's time)."""

    def __init__(self):
        self.quantize_pass = torch.compile(_quantize_pass, dynamic=False)

    def __call__(self, x):
        if x.numel() % _ROW:
            return _quantize_eager(x)
        lo, hi = torch.aminmax(x)
        rows = x.reshape(-1, _ROW)
        torch._dynamo.mark_dynamic(rows, 0)
        q, scale, zero = self.quantize_pass(rows, lo, hi)
        return q.view(x.shape), scale, zero


@functools.cache
def quantizer():
    """The activation quantiser: compiled once if possible, else eager (see the module docstring)."""
    if os.environ.get("DIPLOSTANCE_COMPILE", "1") == "0":
        return _quantize_eager
    try:
        compiled = _CompiledQuantizer()
        probe = torch.randn(5, 16, dtype=torch.bfloat16)
        with torch.inference_mode():
            got = compiled(probe)
        want = _quantize_eager(probe)
        if not (torch.equal(got[1], want[1]) and (got[0].int() - want[0].int()).abs().max() <= 1):
            raise RuntimeError("compiled quantiser disagrees with the eager one")
        return compiled
    except Exception as exc:  # no C++ compiler, an inductor bug: the eager quantiser is correct, only slower
        warnings.warn(f"int8 backend: torch.compile unavailable ({type(exc).__name__}); quantising "
                      "activations eagerly (slower)", RuntimeWarning, stacklevel=2)
        return _quantize_eager


class Int8Linear(nn.Module):
    """Linear layer as a u8 x s8 oneDNN matrix product with bf16 output.

    Weights: int8, symmetric, one scale per output channel.  Inputs: quantised per call (one scale
    and zero point per tensor).  ``post``: "none" or "gelu"; ``forward(x, residual)`` adds
    ``residual`` inside the product.  Weights and scales are plain attributes, not parameters, so
    that ``model.to(dtype)`` leaves them as they are.
    """

    def __init__(self, linear: nn.Linear, post: str = "none"):
        super().__init__()
        w = linear.weight.detach().float()
        self.out_features, self.in_features = w.shape
        scale = w.abs().amax(dim=1).clamp(min=1e-12) / 127
        q = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)
        self.w_packed = torch.ops.onednn.qlinear_prepack(q, None)
        self.w_scale = scale
        self.w_zero = torch.zeros(self.out_features, dtype=torch.int64)
        self.b = None if linear.bias is None else linear.bias.detach().float()
        self.post = post

    def forward(self, x, residual=None):
        shape = x.shape
        q, scale, zero = quantizer()(x)
        q = q.reshape(-1, self.in_features)
        if residual is None:
            out = torch.ops.onednn.qlinear_pointwise.tensor(q, scale, zero, self.w_packed, self.w_scale, self.w_zero,
                                                            self.b, 1.0, 0, torch.bfloat16, self.post, [], "none")
        else:
            out = torch.ops.onednn.qlinear_pointwise.binary_tensor(
                q, scale, zero, self.w_packed, self.w_scale, self.w_zero, residual.reshape(-1, self.out_features).contiguous(),
                self.b, 1.0, 0, torch.bfloat16, 1.0, 0, "add", 1.0, self.post, [], "none")
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
