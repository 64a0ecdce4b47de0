"""The ONNX Runtime backends, ``onnx`` (fp32) and ``onnx-int8``, over the files ``diplostance
export MODEL`` writes (:mod:`diplostance.exporters.onnx`).

Worker threads spin between operators (ONNX Runtime's default, fastest on an idle machine) unless
``OMP_WAIT_POLICY=PASSIVE`` is set, the same switch as for torch's OpenMP threads: on a CPU shared
with other busy processes, spinning threads starve each other.
"""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np

from ..exporters.onnx import EXPORT_RECORD, ONNX_FILE, ONNX_INT8_FILE, weights_digest


def available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def load_fp32(model_dir, model=None, threads=None, name="onnx"):
    return OnnxBackend(model_dir, quantized=False, threads=threads)


def load_int8(model_dir, model=None, threads=None, name="onnx-int8"):
    return OnnxBackend(model_dir, quantized=True, threads=threads)


class OnnxBackend:
    """ONNX Runtime inference on the CPU (fp32 or int8 file)."""

    def __init__(self, model_dir: str | Path, quantized: bool = False, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise ImportError("the onnx backends need onnxruntime: pip install 'diplostance[onnx]'") from None
        path = Path(model_dir) / (ONNX_INT8_FILE if quantized else ONNX_FILE)
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist; run 'diplostance export {model_dir}' first")
        record = Path(model_dir) / EXPORT_RECORD
        if not record.exists() or json.loads(record.read_text())["weights_sha256"] != weights_digest(Path(model_dir)):
            raise FileNotFoundError(f"{path} was not exported from this model's current weights; "
                                    f"run 'diplostance export {model_dir}' again")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        if os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE":
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.name = "onnx-int8" if quantized else "onnx"

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return self.session.run(["logits"], {"input_ids": input_ids.astype(np.int64),
                                             "attention_mask": attention_mask.astype(np.int64)})[0]
