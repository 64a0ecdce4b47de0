"""Scoring backends: interchangeable ways to compute logits for a model directory.

    fp32       exact PyTorch inference (the reference)
    bf16       PyTorch with bfloat16 autocast (CPUs with AVX-512 BF16 / AMX, GPUs)
    int8       PyTorch dynamic int8 quantisation of the linear layers
    onnx       ONNX Runtime, fp32 (needs 'diplostance export MODEL' first)
    onnx-int8  ONNX Runtime, dynamically quantised int8
"""
from __future__ import annotations

from pathlib import Path

from .inference import Backend, TorchBackend

BACKENDS = ("fp32", "bf16", "int8", "onnx", "onnx-int8")


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

        model = AutoModelForSequenceClassification.from_pretrained(str(model_dir))
    model = model.float().eval()
    if name == "bf16":
        return TorchBackend(model, "bf16", autocast_dtype=torch.bfloat16)
    if name == "int8":
        qmodel = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        return TorchBackend(qmodel, "int8")
    return TorchBackend(model, "fp32")
