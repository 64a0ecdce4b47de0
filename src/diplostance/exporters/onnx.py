"""ONNX export (``torch.onnx.export``); the ONNX Runtime backends that run it are in
:mod:`diplostance.backends.onnx`.

``diplostance export MODEL`` writes ``model.onnx`` (fp32) and ``model.int8.onnx`` (dynamic
int8 quantisation of the MatMul weights) into the model directory.  optimum's exporter is not
used: optimum-onnx pins transformers below 4.58.

Speed choices (measured with evaluate/benchmark.py on a 2-core AVX-512 VNNI / AMX Xeon):
the exported graph goes through ONNX Runtime's transformer optimizer (SkipLayerNorm and
BiasGelu fusions) *before* quantisation, so that the int8 graph keeps the fused kernels;
quantisation is dynamic (QOperator: DynamicQuantizeLinear + MatMulInteger, which ONNX Runtime
fuses into DynamicQuantizeMatMul running MLAS's u8s8 VNNI kernels) with per-channel weight
scales (a smaller largest probability error than one scale per tensor, same speed); ``reduce_range``
is left off, since it only matters on CPUs without VNNI.  QDQ would need a calibration set and
runs the same kernels on the CPU.  Worker threads spin between operators (ONNX Runtime's default,
fastest on an idle machine) unless ``OMP_WAIT_POLICY=PASSIVE`` is set, the same switch as for
torch's OpenMP threads: on a CPU shared with other busy processes, spinning threads starve each
other and passive waiting measured about 1.4x faster.
"""
from __future__ import annotations

from pathlib import Path


ONNX_FILE = "model.onnx"
ONNX_INT8_FILE = "model.int8.onnx"
EXPORT_RECORD = "onnx_export.json"


def weights_digest(model_dir: Path) -> str:
    import hashlib

    with open(model_dir / "model.safetensors", "rb") as f:  # streamed: no copy of the weights in memory
        return hashlib.file_digest(f, "sha256").hexdigest()


def export_onnx(model_dir: str | Path, quantize: bool = True, opset: int = 18) -> list[Path]:
    """Export the classifier of ``model_dir`` to ONNX; return the written paths."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from ..model_dir import read_meta

    model_dir = Path(model_dir)
    read_meta(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir)).float().eval()
    model.config.return_dict = False

    class Logits(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask)[0]

    ids = torch.full((2, 16), 5, dtype=torch.long)
    mask = torch.ones_like(ids)
    out = model_dir / ONNX_FILE
    batch, seq = torch.export.Dim("batch", min=1, max=4096), torch.export.Dim("sequence", min=2, max=4096)
    torch.onnx.export(Logits(model).eval(), (ids, mask), str(out), input_names=["input_ids", "attention_mask"],
                      output_names=["logits"], opset_version=opset, dynamo=True, external_data=False,
                      dynamic_shapes={"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}})
    _fuse(out, model.config)
    written = [out]
    import json

    (model_dir / EXPORT_RECORD).write_text(json.dumps({"weights_sha256": weights_digest(model_dir),
                                                        "opset": opset}), encoding="utf-8")
    if quantize:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        q = model_dir / ONNX_INT8_FILE
        quantize_dynamic(str(out), str(q), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"],
                         per_channel=True)
        written.append(q)
    return written


def _fuse(path: Path, config) -> None:
    """Rewrite ``path`` with ONNX Runtime's offline transformer fusions, where they apply."""
    try:
        from onnxruntime.transformers.optimizer import optimize_model
    except ImportError:  # an onnxruntime build without the python transformer tools
        return
    fused = optimize_model(str(path), model_type="bert", num_heads=config.num_attention_heads,
                           hidden_size=config.hidden_size, opt_level=0)
    fused.save_model_to_file(str(path))
