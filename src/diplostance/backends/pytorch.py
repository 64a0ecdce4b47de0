"""The PyTorch backends: ``fp32`` (exact), ``bf16`` and ``int8`` on the CPU through the
token-packed forward (:mod:`.packed`, :mod:`.onednn`), ``transformers`` (the unchanged
reference forward), and the GPU's ``cuda-fp32``, ``cuda-bf16``, ``cuda-fp16``."""
from __future__ import annotations

import copy
import json
import struct
from pathlib import Path

from .base import Backend, TorchBackend


def bf16_native() -> bool:
    from . import onednn

    return onednn.bf16_supported()


def int8_native() -> bool:
    """oneDNN's VNNI/AMX int8 kernels, or PyTorch's FBGEMM ones (x86 with AVX2)."""
    import torch

    from . import onednn

    return onednn.int8_supported() or "fbgemm" in torch.backends.quantized.supported_engines


def _transformers_model(model_dir, dtype=None):
    from transformers import AutoModelForSequenceClassification

    kwargs = {"dtype": dtype} if dtype is not None else {}
    return AutoModelForSequenceClassification.from_pretrained(str(model_dir), **kwargs)


def load_transformers(model_dir, model=None, threads=None, name="transformers") -> Backend:
    model = model if model is not None else _transformers_model(model_dir)
    return TorchBackend(model.float().eval(), "transformers")


def _packed_or(model_dir, model, name: str, dtype):
    """The model for a packed backend: the caller's (copied unless fp32: it stays as it is), or
    read from ``model_dir`` in ``dtype`` without mapping the file (:func:`load_low_memory`)."""
    if model is None:
        return load_low_memory(model_dir, dtype)
    return model if name == "fp32" else copy.deepcopy(model)


def load_fp32(model_dir, model=None, threads=None, name="fp32") -> Backend:
    import torch

    from . import packed

    model = _packed_or(model_dir, model, "fp32", torch.float32)
    if packed.unsupported(model) is None:
        return TorchBackend(packed.PackedClassifier(model, "fp32"), "fp32")
    return TorchBackend(model.float().eval(), "fp32")


def load_bf16(model_dir, model=None, threads=None, name="bf16") -> Backend:
    import torch

    from . import onednn, packed

    model = _packed_or(model_dir, model, "bf16", torch.bfloat16)
    if packed.unsupported(model) is None:
        return TorchBackend(packed.PackedClassifier(model, "bf16"), "bf16")
    return TorchBackend(onednn.pack_bf16(model), "bf16")


def load_int8(model_dir, model=None, threads=None, name="int8") -> Backend:
    """oneDNN's u8 x s8 products where the CPU has them (quantised from the bf16 weights, which
    keeps the peak memory lower), else PyTorch's dynamic quantisation (FBGEMM) of the fp32 model."""
    import torch

    from . import onednn, packed

    if onednn.int8_supported():
        model = _packed_or(model_dir, model, "int8", torch.bfloat16)
        if packed.unsupported(model) is None:
            return TorchBackend(packed.PackedClassifier(model, "int8"), "int8")
        return TorchBackend(onednn.quantize_int8(model), "int8")
    model = _packed_or(model_dir, model, "int8", torch.float32)
    qmodel = torch.ao.quantization.quantize_dynamic(model.float().eval(), {torch.nn.Linear}, dtype=torch.qint8)
    return TorchBackend(qmodel, "int8")


def load_cuda(model_dir, model=None, threads=None, name="cuda-fp32") -> Backend:
    """The transformers forward on the GPU, in fp32 or half precision (which the accuracy guard
    checks like the CPU's rounding backends)."""
    import torch

    dtype = {"cuda-fp32": torch.float32, "cuda-bf16": torch.bfloat16, "cuda-fp16": torch.float16}[name]
    model = model if model is not None else _transformers_model(model_dir)
    return TorchBackend(copy.deepcopy(model).to("cuda", dtype=dtype).eval(), name, device="cuda")


def load_low_memory(model_dir: str | Path, dtype):
    """The classifier of ``model_dir`` in ``dtype``, its ``model.safetensors`` read one tensor at a
    time with plain reads.  ``from_pretrained`` maps the whole file, whose pages then count in the
    process's resident memory next to the model's own copy; this stays near the size of the model
    itself.  Falls back to ``from_pretrained`` for anything but a single safetensors file that
    matches the model's parameters."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from ..model_dir import WEIGHTS_FILE

    path = Path(model_dir) / WEIGHTS_FILE
    dtypes = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}
    try:
        with open(path, "rb") as f:
            header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
            offset = f.tell()
            header.pop("__metadata__", None)
            config = AutoConfig.from_pretrained(str(model_dir))
            model = AutoModelForSequenceClassification.from_config(config, dtype=dtype)
            targets = model.state_dict(keep_vars=True)
            if set(targets) != set(header) or any(v["dtype"] not in dtypes for v in header.values()):
                raise ValueError("not a plain match")
            with torch.no_grad():
                for key, info in header.items():
                    _read_into(f, offset + info["data_offsets"][0], info, dtypes[info["dtype"]], targets[key])
        return model.eval()
    except (OSError, ValueError, KeyError, RuntimeError):
        return _transformers_model(model_dir, dtype)


def _read_into(f, position: int, info: dict, dtype, target, chunk_bytes: int = 8 << 20) -> None:
    """Copy one safetensors tensor (``info``: its header entry) from the open file ``f`` into
    ``target``, converting its dtype, through a buffer of at most ``chunk_bytes``."""
    import torch

    n = target.numel()
    itemsize = torch.empty(0, dtype=dtype).element_size()
    if list(info["shape"]) != list(target.shape) or info["data_offsets"][1] - info["data_offsets"][0] != n * itemsize:
        raise ValueError(f"tensor shape {info['shape']} does not match the model's {list(target.shape)}")
    flat = target.view(-1)
    step = max(1, chunk_bytes // itemsize)
    buffer = torch.empty(min(n, step), dtype=dtype)
    f.seek(position)
    for i in range(0, n, step):
        k = min(step, n - i)
        if f.readinto(buffer[:k].view(torch.uint8).numpy()) != k * itemsize:
            raise ValueError("model.safetensors ends early")
        flat[i:i + k].copy_(buffer[:k])
