"""Scoring backends: interchangeable ways to compute logits for a model directory.

    fp32       exact PyTorch inference (the reference, and the default)
    bf16       PyTorch in bfloat16: weights converted once and their linear layers pre-packed
               for oneDNN (AMX / AVX-512 BF16 kernels); layer norms and softmax accumulate in fp32
    int8       PyTorch dynamic int8 quantisation of the linear layers
    onnx       ONNX Runtime, fp32 (needs 'diplostance export MODEL' first)
    onnx-int8  ONNX Runtime, dynamically quantised int8 (per-channel MatMul weights)

:func:`guard` measures how far a fast backend strays from fp32 on labelled sentences;
``evaluate/benchmark.py`` reports it with the speeds (evaluate/benchmarks/results.md).
"""
from __future__ import annotations

import copy
import functools
from pathlib import Path

from .inference import Backend, TorchBackend

BACKENDS = ("fp32", "bf16", "int8", "onnx", "onnx-int8")
#: A fast backend whose label decisions agree with fp32 less often than this is not fit to use.
GUARD_MIN_AGREEMENT = 0.995


def load_backend(name: str, model_dir: str | Path, model=None, threads: int | None = None) -> Backend:
    """A backend for ``model_dir``; ``model`` (already loaded, fp32) is reused by torch backends."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; expected one of {list(BACKENDS)}")
    if name.startswith("onnx"):
        from .exporters.onnx import OnnxBackend

        return OnnxBackend(model_dir, quantized=name == "onnx-int8", threads=threads)
    import torch

    if model is None:
        from transformers import AutoModelForSequenceClassification

        # bf16 is read as bf16 directly: no fp32 copy, half the peak memory.
        dtype = torch.bfloat16 if name == "bf16" else torch.float32
        model = AutoModelForSequenceClassification.from_pretrained(str(model_dir), dtype=dtype)
    elif name == "bf16":
        model = copy.deepcopy(model)  # the caller's fp32 model stays as it is
    if name == "bf16":
        return TorchBackend(pack_linears(model.to(torch.bfloat16).eval()), "bf16")
    model = model.float().eval()
    if name == "int8":
        qmodel = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        return TorchBackend(qmodel, "int8")
    return TorchBackend(model, "fp32")


def pack_linears(model):
    """Replace the bf16 ``nn.Linear`` layers of ``model`` (in place) by oneDNN linears whose weights
    are reordered once into the blocked layout of its AMX / AVX-512 BF16 kernels.

    ``F.linear`` in bf16 goes through a GEMM that re-packs the weight on every call; the
    pre-packed one measured about 1.4x faster on the whole model (evaluate/benchmark.py).
    The model is returned unchanged where oneDNN cannot do it (no mkldnn build, no bf16 support).
    """
    import torch

    try:
        if not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
            return model
        _packed_linear_class()(torch.nn.Linear(8, 8).to(torch.bfloat16))(torch.zeros(2, 8, dtype=torch.bfloat16))
    except (AttributeError, RuntimeError, NotImplementedError):
        return model
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if type(child) is torch.nn.Linear and child.weight.dtype == torch.bfloat16:
                setattr(module, child_name, _packed_linear_class()(child))
    return model


@functools.cache
def _packed_linear_class():
    """Made on first use, so that importing this module does not import torch."""
    import torch

    class PackedLinear(torch.nn.Module):
        """Inference-only bf16 linear layer with a oneDNN pre-packed weight."""

        def __init__(self, linear: torch.nn.Linear):
            super().__init__()
            self.in_features, self.out_features = linear.in_features, linear.out_features
            self.weight = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach())
            self.bias = None if linear.bias is None else linear.bias.detach()

        def forward(self, x):
            return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")

    return PackedLinear


def guard(model_dir: str | Path, texts: list[str], backends: tuple[str, ...] = ("bf16", "int8", "onnx", "onnx-int8"),
          batch_size: int = 64) -> dict[str, dict]:
    """How close each backend stays to exact fp32 on ``texts`` (e.g. the test split).

    For each backend: ``max_abs_diff`` (largest probability difference from fp32),
    ``agreement`` (share of label decisions, with the model's thresholds, equal to fp32's),
    ``disagreements`` (their number out of ``decisions``) and ``ok`` (agreement at least
    :data:`GUARD_MIN_AGREEMENT`).  A backend that cannot load (e.g. no ONNX export) gets ``error``.
    """
    import numpy as np

    from .score import StanceClassifier

    ref_clf = StanceClassifier.load(model_dir, batch_size=batch_size)
    ref, _ = ref_clf.predict_proba(texts)
    thresholds = ref_clf.thresholds
    ref_dec = ref >= thresholds
    del ref_clf
    report = {}
    for name in backends:
        try:
            clf = StanceClassifier.load(model_dir, backend=name, batch_size=batch_size)
        except (FileNotFoundError, ImportError) as exc:
            report[name] = {"error": str(exc)}
            continue
        probs, _ = clf.predict_proba(texts)
        dec = probs >= thresholds
        agree = float((dec == ref_dec).mean())
        report[name] = {"max_abs_diff": float(np.abs(probs - ref).max()), "agreement": agree,
                        "disagreements": int((dec != ref_dec).sum()), "decisions": int(dec.size),
                        "ok": agree >= GUARD_MIN_AGREEMENT}
    return report
