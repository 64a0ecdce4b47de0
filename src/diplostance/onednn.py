"""oneDNN kernels for CPU inference of the classifier: the ``bf16`` and ``int8`` backends.

Both rewrite a loaded transformers model in place, module by module, and keep its forward code:

* ``bf16``: every linear layer's weight is reordered once into oneDNN's blocked layout (AMX /
  AVX-512 BF16 kernels); ``F.linear`` in bf16 would re-pack it on every call.
* ``int8``: the encoder's linear layers become int8 matrix products on oneDNN's u8 x s8 kernels
  (AMX where the CPU has it, AVX-512 VNNI otherwise), which measured about 2x (VNNI, AMD EPYC) to
  4x (AMX, Intel Xeon) the bf16 kernels' throughput on the base-shaped model's shapes
  (evaluate/benchmarks/results.md).  Weights are
  quantised once, per output channel, symmetric; activations are quantised at run time, per
  tensor (one scale and zero point per batch and layer input, unsigned 8 bits), so nothing needs
  calibrating.  Everything else (embeddings, layer norms, attention, the classification head)
  runs in bf16.

Fusions, where the model has the usual BERT / RoBERTa / CamemBERT block (checked per module; any
other module is left as it is):

* query, key and value are one matrix product (one quantisation of their shared input);
* the feed-forward GELU (exact, ``hidden_act="gelu"``) runs inside the matrix product;
* int8: the residual addition before each layer norm runs inside the matrix product.

The activation quantiser is ``torch.aminmax`` (one vectorised pass) followed by one quantising
pass compiled with ``torch.compile`` once per process when a C++ compiler is present (about 8 s;
several times faster than eager); otherwise, or with ``DIPLOSTANCE_COMPILE=0``, it runs eagerly
with the same results up to rounding.  Where the rest of the int8 backend's time goes (attention,
layer norms, Python) is profiled in evaluate/benchmarks/results.md.
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


class PackedLinear(nn.Module):
    """Inference-only bf16 linear layer with a oneDNN pre-packed weight; ``post``: "none" or "gelu"."""

    def __init__(self, linear: nn.Linear, post: str = "none"):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach().to(torch.bfloat16))
        self.bias = None if linear.bias is None else linear.bias.detach().to(torch.bfloat16)
        self.post = post

    def forward(self, x):
        return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, self.post, [], "none" if
                                                  self.post == "gelu" else "")


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


class _CompiledQuantizer:
    """``torch.aminmax`` (one vectorised pass, eager) then the compiled quantising pass.  Measured on
    a (1536, 3072) bf16 activation on a 2-core Xeon with AMX: 1.4 ms against 2.4 ms for the former
    compiled amin + amax + division (issue #12's profile: 20% of the int8 backend's time)."""

    def __init__(self):
        self.quantize_pass = torch.compile(_quantize_pass, dynamic=True)

    def __call__(self, x):
        lo, hi = torch.aminmax(x)
        return self.quantize_pass(x, lo, hi)


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
                q, scale, zero, self.w_packed, self.w_scale, self.w_zero, residual.reshape(-1, self.out_features),
                self.b, 1.0, 0, torch.bfloat16, 1.0, 0, "add", 1.0, self.post, [], "none")
        return out.reshape(*shape[:-1], self.out_features)


class _FusedQKV:
    """One matrix product for query, key and value; each of the three parts takes its slice.

    The product is kept until all three parts have taken theirs, then dropped (no batch's
    activations outlive the layer)."""

    def __init__(self, query: nn.Linear, key: nn.Linear, value: nn.Linear, make):
        fused = nn.Linear(query.in_features, 3 * query.out_features, bias=query.bias is not None)
        with torch.no_grad():
            fused.weight.copy_(torch.cat([query.weight, key.weight, value.weight]).float())
            if query.bias is not None:
                fused.bias.copy_(torch.cat([query.bias, key.bias, value.bias]).float())
        self.linear = make(fused)
        self.width = query.out_features
        self._input = self._output = None
        self._taken: set[int] = set()

    def part(self, x, index: int):
        if x is not self._input or index in self._taken:
            self._input, self._output, self._taken = x, self.linear(x), set()
        out = self._output[..., index * self.width:(index + 1) * self.width]
        self._taken.add(index)
        if len(self._taken) == 3:
            self._input = self._output = None
        return out


class _QKVPart(nn.Module):
    def __init__(self, shared: _FusedQKV, index: int):
        super().__init__()
        self.shared, self.index = shared, index
        self.in_features = self.out_features = shared.width

    def forward(self, x):
        return self.shared.part(x, self.index)


class _Int8ResidualOutput(nn.Module):
    """``LayerNorm(dense(hidden) + input)`` with the addition inside the int8 product."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.dense = Int8Linear(module.dense)
        self.LayerNorm = module.LayerNorm

    def forward(self, hidden_states, input_tensor):
        return self.LayerNorm(self.dense(hidden_states, residual=input_tensor))


def _is_attention(m) -> bool:
    return all(isinstance(getattr(m, n, None), nn.Linear) for n in ("query", "key", "value"))


def _is_residual_output(m) -> bool:  # BERT's SelfOutput / Output blocks
    return (isinstance(getattr(m, "dense", None), nn.Linear) and isinstance(getattr(m, "LayerNorm", None), nn.LayerNorm)
            and type(m).__name__.endswith("Output"))


def _is_gelu_intermediate(m, config) -> bool:
    return (isinstance(getattr(m, "dense", None), nn.Linear) and hasattr(m, "intermediate_act_fn")
            and getattr(config, "hidden_act", None) == "gelu")


def _replace_linears(root: nn.Module, make) -> None:
    """Every remaining ``nn.Linear`` under ``root`` -> ``make(linear)``, one at a time (each old
    layer is freed as soon as it is replaced)."""
    names = [name for name, m in root.named_modules() if type(m) is nn.Linear]
    for name in names:
        parent, _, child = name.rpartition(".")
        owner = root.get_submodule(parent)
        setattr(owner, child, make(getattr(owner, child)))
        release_free_memory()  # so that the next layer's conversion reuses this one's memory


def _fuse_blocks(model: nn.Module, make, residual_output=None) -> None:
    """Fused QKV and GELU (and, given ``residual_output``, residual additions) in ``model``'s encoder."""
    config = getattr(model, "config", None)
    names = [name for name, _ in model.named_modules()]  # names only: no old layer is kept alive
    for name in names:
        try:
            m = model.get_submodule(name)
        except AttributeError:  # inside a block already replaced
            continue
        if _is_attention(m):
            shared = _FusedQKV(m.query, m.key, m.value, make)
            m.query, m.key, m.value = (_QKVPart(shared, i) for i in range(3))
        elif _is_gelu_intermediate(m, config):
            m.dense = make(m.dense, "gelu")
            m.intermediate_act_fn = nn.Identity()
        elif name and residual_output is not None and _is_residual_output(m):
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, residual_output(m))
        else:
            continue
        del m
        release_free_memory()


def pack_bf16(model: nn.Module) -> nn.Module:
    """``model`` (any float dtype) in bf16 with packed, fused linear layers; unchanged (but bf16)
    where oneDNN cannot do it."""
    model = model.to(torch.bfloat16).eval()
    if not bf16_supported():
        return model
    _fuse_blocks(model, PackedLinear)
    _replace_linears(model, PackedLinear)
    return model


def quantize_int8(model: nn.Module) -> nn.Module:
    """``model`` with its encoder's linear layers in int8 (see the module docstring) and the rest
    in bf16.  Weights are quantised from the model's own dtype, one layer at a time."""
    model = model.eval()
    encoder = getattr(getattr(model, "base_model", model), "encoder", None)
    if encoder is None:
        raise ValueError(f"int8 backend: {type(model).__name__} has no encoder to quantise")
    _fuse_blocks(encoder, lambda linear, post="none": Int8Linear(linear, post), _Int8ResidualOutput)
    _replace_linears(encoder, Int8Linear)
    return pack_bf16(model)
