"""Scoring backends: interchangeable ways to compute logits for a model directory.

    fp32          exact PyTorch inference, token-packed (packed.py; the default)
    bf16          the packed forward in bfloat16, linear layers pre-packed for oneDNN (AMX /
                  AVX-512 BF16 kernels); layer norms and softmax accumulate in fp32
    int8          the packed forward with the encoder's linear layers as oneDNN u8 x s8 products
                  (AMX-INT8 / AVX-512 VNNI), activations quantised at run time, the rest in bf16
                  (see onednn.py); where oneDNN has no int8 kernels, PyTorch's dynamic
                  quantisation (FBGEMM) instead
    onnx          ONNX Runtime, fp32 (needs 'diplostance export MODEL' first)
    onnx-int8     ONNX Runtime, dynamically quantised int8 (per-channel MatMul weights)
    transformers  the transformers forward in fp32, unchanged: the reference the others are
                  checked against, and what a model the packed forward does not support gets

The packed forward (fp32, bf16, int8) supports BERT, RoBERTa, CamemBERT and XLM-RoBERTa
classifiers; any other model keeps the transformers forward, its linear layers swapped for the
oneDNN ones in bf16 and int8.

:func:`guard` measures how far a fast backend strays from the fp32 reference on a model's
sentences; training records it for ``bf16`` and ``int8`` on the dev split (``diplostance guard
MODEL`` measures it again, ``onnx-int8`` included), and :func:`check_guard` refuses a backend
whose recorded agreement is below :data:`GUARD_MIN_AGREEMENT` for that model.
``evaluate/benchmark.py`` reports it with the speeds (evaluate/benchmarks/results.md).
"""
from __future__ import annotations

import copy
import warnings
from pathlib import Path

from .errors import DiplostanceError
from . import hardware
from .hardware import cpu_name, device_name, release_free_memory
from .inference import Backend, TorchBackend

BACKENDS = ("fp32", "bf16", "int8", "onnx", "onnx-int8", "transformers", "cuda-fp32", "cuda-bf16", "cuda-fp16")
#: A fast backend whose label decisions agree with fp32 less often than this is not fit to use.
GUARD_MIN_AGREEMENT = 0.995
#: The backends that round (bf16 products, int8 quantisation): checked against fp32 before use.
GUARDED = ("bf16", "int8", "onnx-int8", "cuda-bf16", "cuda-fp16")
#: The implementation of each rounding backend, recorded with its guard result: a record made by
#: another one no longer says how the backend does, and is treated as no record.  int8 2: the
#: activations quantised per token (1: one scale per batch and layer input).
REVISIONS = {"bf16": 1, "int8": 2, "onnx-int8": 1, "cuda-bf16": 1, "cuda-fp16": 1}


class GuardError(DiplostanceError, ValueError):
    """A backend whose label decisions, on this model, strayed too far from fp32."""


#: Fastest first, for ``auto``: on a CPU, int8 products beat bf16 ones, which beat fp32 where the
#: hardware has them (evaluate/benchmarks/); on a GPU, half precision beats fp32.
CPU_SPEED_ORDER = ("int8", "bf16", "fp32")
CUDA_SPEED_ORDER = ("cuda-bf16", "cuda-fp16", "cuda-fp32")


def runs_natively(name: str) -> bool:
    """Whether this machine runs backend ``name`` with its own kernels, not emulated: ``bf16``
    needs AVX512-BF16 or AMX (emulated bf16 is several times slower than fp32), ``int8`` needs
    oneDNN's VNNI/AMX kernels or PyTorch's FBGEMM ones (x86 with AVX2), the ``cuda-*`` ones a GPU
    (``cuda-bf16``: with bf16), ``onnx*`` the onnxruntime package."""
    if name in ("fp32", "transformers"):
        return True
    if name.startswith("cuda-"):
        return hardware.cuda_bf16() if name == "cuda-bf16" else hardware.cuda_available()
    if name.startswith("onnx"):
        import importlib.util

        return importlib.util.find_spec("onnxruntime") is not None
    from . import onednn

    if name == "bf16":
        return onednn.bf16_supported()
    if name == "int8":
        import torch

        return onednn.int8_supported() or "fbgemm" in torch.backends.quantized.supported_engines
    return False


def native_rounding_backends() -> tuple[str, ...]:
    """The rounding CPU backends this machine runs natively: what training's guard measures."""
    return tuple(name for name in ("bf16", "int8") if runs_natively(name))


def guarded_here(model_dir: str | Path) -> tuple[str, ...]:
    """What ``diplostance guard`` measures by default: :func:`native_rounding_backends`,
    ``onnx-int8`` when the model has its export and onnxruntime is installed, and the GPU's half
    precisions when there is a GPU."""
    names = list(native_rounding_backends())
    if (Path(model_dir) / "model.int8.onnx").exists() and runs_natively("onnx-int8"):
        names.append("onnx-int8")
    names += [b for b in ("cuda-bf16", "cuda-fp16") if runs_natively(b)]
    return tuple(names)


def choose_backend(meta, device: str = "cpu") -> tuple[str, str]:
    """``auto``: the fastest backend (:data:`CPU_SPEED_ORDER`, :data:`CUDA_SPEED_ORDER`) that this
    machine runs natively and that passed the model's accuracy guard on this kind of CPU (or this
    GPU), else exact fp32.  Returns the backend and why, in words for the run's summary."""
    entries = (meta.metrics.get("guard") or {}).get("backends") or {}
    here = hardware.device_name(device)
    order = CUDA_SPEED_ORDER if device == "cuda" else CPU_SPEED_ORDER
    passed_elsewhere = []
    for name in order[:-1]:
        entry = entries.get(name)
        if not runs_natively(name) or entry is None or entry.get("revision", 1) != REVISIONS.get(name, 1):
            continue
        if not entry.get("ok"):
            continue
        if not hardware.same_kind(entry.get("cpu", ""), here):
            passed_elsewhere.append(name)
            continue
        return name, (f"auto: {name}, the fastest backend that passed this model's accuracy guard on this "
                      f"{'GPU' if device == 'cuda' else 'CPU'} ({100 * entry['agreement']:.2f}% of decisions equal fp32's)")
    why = f"auto: {order[-1]}, exact"
    if passed_elsewhere:
        why += (f" ({', '.join(passed_elsewhere)} passed the accuracy guard on another kind of CPU, not this one; "
                f"'diplostance guard MODEL' checks it here)")
    return order[-1], why


def load_backend(name: str, model_dir: str | Path, model=None, threads: int | None = None,
                 device: str = "cpu") -> Backend:
    """A backend for ``model_dir``; ``model`` (already loaded, fp32) is reused by torch backends."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; expected one of {list(BACKENDS)}")
    if name.startswith("cuda-") or device == "cuda":
        return _load_cuda(name, model_dir, model)
    if name == "bf16" and not runs_natively("bf16"):
        raise DiplostanceError(f"backend bf16: this CPU, {cpu_name()}, has no native bf16 (AVX512-BF16 or AMX); "
                               "PyTorch would emulate it, several times slower than fp32. Use --backend auto "
                               "(the fastest one this CPU runs natively) or fp32")
    if name.startswith("onnx"):
        from .exporters.onnx import OnnxBackend

        return OnnxBackend(model_dir, quantized=name == "onnx-int8", threads=threads)
    import torch

    from . import onednn, packed

    if name == "transformers":
        from transformers import AutoModelForSequenceClassification

        model = model if model is not None else AutoModelForSequenceClassification.from_pretrained(str(model_dir))
        return TorchBackend(model.float().eval(), "transformers")
    if model is None and name in ("fp32", "bf16", "int8"):
        # int8 quantises from the bf16 weights too: its peak memory for a camembert-base-sized model
        # then stays near 730 MB instead of 910 MB from fp32, and on the offline model's test split the
        # largest probability difference from fp32 moved from 0.038 to 0.043 (all decisions equal).
        # The packed fp32 layers are reordered copies (onednn.PackedLinear): with the file mapped, its
        # pages stayed resident next to them (camembert-base-sized: 1.1 GB after loading, 0.9 GB read
        # one tensor at a time).
        model = load_low_memory(model_dir, torch.float32 if name == "fp32" else torch.bfloat16)
    elif model is None:
        from transformers import AutoModelForSequenceClassification

        model = AutoModelForSequenceClassification.from_pretrained(str(model_dir))
    elif name != "fp32":
        model = copy.deepcopy(model)  # the caller's fp32 model stays as it is
    kernels = {"fp32": True, "bf16": onednn.bf16_supported(), "int8": onednn.int8_supported()}
    if name in kernels and kernels[name] and packed.unsupported(model) is None:
        backend = TorchBackend(packed.PackedClassifier(model, name), name)
    elif name == "bf16":
        backend = TorchBackend(onednn.pack_bf16(model), "bf16")
    elif name == "int8" and onednn.int8_supported():
        backend = TorchBackend(onednn.quantize_int8(model), "int8")
    elif name == "int8":  # no oneDNN int8 kernels: PyTorch's own dynamic quantisation (FBGEMM), fp32 elsewhere
        qmodel = torch.ao.quantization.quantize_dynamic(model.float().eval(), {torch.nn.Linear}, dtype=torch.qint8)
        backend = TorchBackend(qmodel, "int8")
    else:
        backend = TorchBackend(model.float().eval(), "fp32")
    del model
    release_free_memory()  # the replaced layers' memory, held by the C heap otherwise
    return backend


def _load_cuda(name: str, model_dir: str | Path, model=None) -> Backend:
    """The transformers forward on the GPU: ``cuda-fp32``, or in half precision (``cuda-bf16``,
    ``cuda-fp16``), which the accuracy guard checks like the CPU's rounding backends."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from .hardware import resolve_device

    resolve_device("cuda")  # a clear error without a GPU
    if name in ("fp32", "transformers"):
        name = "cuda-fp32"
    if not name.startswith("cuda-"):
        raise DiplostanceError(f"backend {name} runs on the CPU; on --device cuda use auto, cuda-fp32, cuda-bf16 "
                               "or cuda-fp16")
    dtype = {"cuda-fp32": torch.float32, "cuda-bf16": torch.bfloat16, "cuda-fp16": torch.float16}[name]
    model = model if model is not None else AutoModelForSequenceClassification.from_pretrained(str(model_dir))
    return TorchBackend(copy.deepcopy(model).to("cuda", dtype=dtype).eval(), name, device="cuda")


def load_low_memory(model_dir: str | Path, dtype):
    """The classifier of ``model_dir`` in ``dtype``, its ``model.safetensors`` read one tensor at a
    time with plain reads.  ``from_pretrained`` maps the whole file, whose pages then count in the
    process's resident memory next to the model's own copy (for a camembert-base-sized model in
    bf16, a peak of about 1 GB); this stays near the size of the model itself.  Falls back to
    ``from_pretrained`` for anything but a single safetensors file that matches the model's
    parameters."""
    import json
    import struct

    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    path = Path(model_dir) / "model.safetensors"
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
        return AutoModelForSequenceClassification.from_pretrained(str(model_dir), dtype=dtype)


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


def guard(model_dir: str | Path, texts: list[str],
          backends: tuple[str, ...] = ("fp32", "bf16", "int8", "onnx", "onnx-int8"),
          batch_size: int = 64, reference=None) -> dict[str, dict]:
    """How close each backend stays to the reference, the transformers forward in fp32, on
    ``texts`` (e.g. the test split); ``reference``: its probabilities for ``texts``, when they
    are at hand (else computed here).

    For each backend: ``max_abs_diff`` (largest probability difference from the reference),
    ``agreement`` (share of label decisions, with the model's thresholds, equal to the
    reference's), ``disagreements`` (their number out of ``decisions``) and ``ok`` (agreement at
    least :data:`GUARD_MIN_AGREEMENT`).  A backend that cannot load (e.g. no ONNX export) gets
    ``error``.
    """
    import numpy as np
    from transformers import AutoTokenizer

    from .inference import predict_proba
    from .modeling import read_meta

    meta = read_meta(model_dir)
    thresholds = np.asarray(meta.thresholds, dtype=np.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))

    def probabilities(name: str):
        engine = load_backend(name, model_dir, device="cuda" if name.startswith("cuda-") else "cpu")
        return predict_proba(engine, tokenizer, texts, meta.max_length, batch_size)[0]

    ref = reference if reference is not None else probabilities("transformers")
    ref_dec = ref >= thresholds
    report = {}
    for name in backends:
        try:
            probs = probabilities(name)
        except (FileNotFoundError, ImportError, DiplostanceError) as exc:
            report[name] = {"error": str(exc)}
            continue
        dec = probs >= thresholds
        agree = float((dec == ref_dec).mean())
        report[name] = {"max_abs_diff": float(np.abs(probs - ref).max()), "agreement": agree,
                        "disagreements": int((dec != ref_dec).sum()), "decisions": int(dec.size),
                        "ok": agree >= GUARD_MIN_AGREEMENT}
    return report


def check_model(model_dir: str | Path, split: str = "dev", data: str | None = None,
                backends: tuple[str, ...] = GUARDED) -> tuple[dict[str, dict], str]:
    """Run :func:`guard` on a model's ``split`` (from its recipe) or on the labelled JSONL file
    ``data``, and record the result in the model (:func:`record_guard`).  Returns the report and
    what the sentences were."""
    from .corpus import load_examples
    from .modeling import read_meta

    data_cfg = read_meta(model_dir).config.get("data", {})
    path = data or data_cfg.get(split)
    if not path or not Path(path).exists():
        raise FileNotFoundError(f"no sentences for the guard: {path or f'the model names no {split} split'}; "
                                "pass --data FILE (a labelled JSONL file)")
    texts = [e.text for e in load_examples(path, data_cfg.get("text_field", "text"),
                                            data_cfg.get("labels_field", "labels"))]
    report = guard(model_dir, texts, backends)
    what = f"{data} ({len(texts)} sentences)" if data else f"{split} split, {len(texts)} sentences"
    record_guard(model_dir, report, what)
    return report, what


def record_guard(model_dir: str | Path, report: dict[str, dict], data: str) -> dict:
    """Write the guard results of :func:`guard` (``data``: what the sentences were, e.g. "dev
    split, 957 sentences") into the model's metadata, ``metrics["guard"]``, one entry per
    backend with this CPU and the date; backends measured before and not now keep their entry.
    Backends that could not load are left out.  Returns the record."""
    import datetime as dt

    from .model_card import write_model_card
    from .modeling import read_meta, write_meta

    meta = read_meta(model_dir)
    record = dict(meta.metrics.get("guard") or {})
    entries = dict(record.get("backends") or {})
    when = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    for name, entry in report.items():
        if "error" not in entry:
            cpu = device_name("cuda" if name.startswith("cuda-") else "cpu")
            entries[name] = {**entry, "data": data, "cpu": cpu, "measured": when,
                             "revision": REVISIONS.get(name, 1)}
    record.update({"min_agreement": GUARD_MIN_AGREEMENT, "backends": entries})
    meta.metrics["guard"] = record
    write_meta(model_dir, meta)
    write_model_card(model_dir, meta)
    return record


def check_guard(meta, backend: str, model_dir: str | Path, allow_unguarded: bool = False) -> None:
    """Refuse ``backend`` (:class:`GuardError`) when the model's guard record says its label
    decisions agreed with fp32 less often than :data:`GUARD_MIN_AGREEMENT`, unless
    ``allow_unguarded``; warn when a rounding backend was never checked for this model, or only
    with an earlier implementation of it (:data:`REVISIONS`; records without one are revision 1)."""
    if backend not in GUARDED or allow_unguarded:
        return
    entries = (meta.metrics.get("guard") or {}).get("backends") or {}
    entry = entries.get(backend)
    if entry is None:
        warnings.warn(f"{model_dir}: the {backend} backend has not been checked against fp32 for this model; "
                      f"'diplostance guard {model_dir}' measures it", stacklevel=3)
        return
    if entry.get("revision", 1) != REVISIONS.get(backend, 1):
        warnings.warn(f"{model_dir}: the {backend} backend was checked against fp32 ({100 * entry['agreement']:.2f}% "
                      f"of decisions equal) with an earlier implementation of it, not this one; "
                      f"'diplostance guard {model_dir}' measures it again", stacklevel=3)
        return
    if entry.get("ok"):
        return
    fine = [f"{name} ({100 * e['agreement']:.2f}%)" for name, e in entries.items()
            if e.get("ok") and name in GUARDED]
    raise GuardError(
        f"{model_dir}: the {backend} backend agreed with fp32 on {100 * entry['agreement']:.2f}% of this model's "
        f"label decisions ({entry.get('data', '?')}, on {entry.get('cpu', '?')}), below the "
        f"{100 * GUARD_MIN_AGREEMENT:.1f}% the accuracy guard requires; score with --backend fp32"
        + (f" or {', '.join(fine)}" if fine else "")
        + ", or pass --allow-unguarded (Python: allow_unguarded=True) to use it anyway; "
        f"'diplostance guard {model_dir}' measures it again (e.g. on another CPU)")
