"""Scoring backends: interchangeable ways to compute a model directory's logits.

One registry table, :data:`REGISTRY`, lists them: a name, the function that loads it, the probe
that says whether this machine runs it with its own kernels, whether it rounds (then the
accuracy guard checks it against fp32 before use, :mod:`.guard`), the revision of its
implementation, and how ``auto`` ranks it.  The implementations live one per module:

    pytorch   fp32 (token-packed, exact), transformers (the unchanged reference forward), the
              GPU's cuda-fp32 / cuda-bf16 / cuda-fp16, and int8 through PyTorch's FBGEMM where
              oneDNN has no int8 kernels
    packed    the token-packed forward that fp32, bf16 and int8 run (BERT-family classifiers)
    onednn    oneDNN's pre-packed bf16 and u8 x s8 linear layers
    onnx      ONNX Runtime, fp32 and int8 (after ``diplostance export MODEL``)

Adding a backend is one module and one :func:`register` call (or one row below); the CLI's
``--backend`` choices, the guard and the parity tests read the registry.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import hardware
from ..errors import DiplostanceError


class BackendError(DiplostanceError, ValueError):
    """A backend that does not exist, or that this machine cannot run."""


@dataclass(frozen=True)
class Spec:
    """One backend.  ``load`` and ``native`` are functions or ``"module:function"`` paths (so
    that listing the backends imports none of them): ``load(model_dir, model=None, threads=None)``
    returns a :class:`~diplostance.backends.base.Backend`; ``native()`` is True where this machine
    runs it with its own kernels, not emulated."""

    name: str
    load: Callable | str
    #: None: runs everywhere.
    native: Callable[[], bool] | str | None = None
    #: Rounds (bf16 or half products, int8 quantisation): checked against fp32 by the accuracy guard.
    rounds: bool = False
    #: The implementation's revision, recorded with its guard result: a record made by an earlier
    #: one no longer says how the backend does, and counts as no record.
    revision: int = 1
    device: str = "cpu"
    #: Rank for ``auto`` among the rounding backends that passed the guard (higher: tried first;
    #: 0: never chosen by ``auto``).
    speed: int = 0
    help: str = ""
    #: What it needs where ``native`` says no, for the message that refuses it.
    needs: str = ""


REGISTRY: dict[str, Spec] = {}


def register(spec: Spec) -> Spec:
    """Add (or replace) a backend in :data:`REGISTRY`."""
    REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    REGISTRY.pop(name, None)


_P = "diplostance.backends.pytorch"
for _spec in (
    Spec("fp32", f"{_P}:load_fp32", help="exact, token-packed (the CPU default)"),
    Spec("bf16", f"{_P}:load_bf16", f"{_P}:bf16_native", rounds=True, speed=2,
         help="bfloat16 products (AVX512-BF16 or AMX)",
         needs="native bf16 (AVX512-BF16 or AMX); PyTorch would emulate it, several times slower than fp32"),
    Spec("int8", f"{_P}:load_int8", f"{_P}:int8_native", rounds=True, revision=2, speed=3,
         help="int8 products (VNNI/AMX through oneDNN, else FBGEMM)",
         needs="oneDNN's int8 kernels (AVX-512 VNNI or AMX) or PyTorch's FBGEMM engine"),
    Spec("onnx", "diplostance.backends.onnx:load_fp32", "diplostance.backends.onnx:available",
         help="ONNX Runtime fp32 (after 'diplostance export')", needs="onnxruntime: pip install 'diplostance[onnx]'"),
    Spec("onnx-int8", "diplostance.backends.onnx:load_int8", "diplostance.backends.onnx:available", rounds=True,
         help="ONNX Runtime int8 (after 'diplostance export')", needs="onnxruntime: pip install 'diplostance[onnx]'"),
    Spec("transformers", f"{_P}:load_transformers",
         help="the unchanged transformers forward: the reference"),
    Spec("cuda-fp32", f"{_P}:load_cuda", "diplostance.hardware:cuda_available", device="cuda",
         help="the transformers forward on a GPU", needs="a GPU that PyTorch sees"),
    Spec("cuda-bf16", f"{_P}:load_cuda", "diplostance.hardware:cuda_bf16", rounds=True, device="cuda", speed=2,
         help="on a GPU, in bfloat16", needs="a GPU with bf16 (compute capability 8.0 or later)"),
    Spec("cuda-fp16", f"{_P}:load_cuda", "diplostance.hardware:cuda_available", rounds=True, device="cuda",
         speed=1, help="on a GPU, in float16", needs="a GPU that PyTorch sees"),
):
    register(_spec)

#: ``auto``'s choice when no faster backend passed the guard: exact, per device.
EXACT = {"cpu": "fp32", "cuda": "cuda-fp32"}


def names() -> tuple[str, ...]:
    """Every registered backend, in registry order."""
    return tuple(REGISTRY)


def rounding() -> tuple[str, ...]:
    """The backends the accuracy guard checks."""
    return tuple(name for name, spec in REGISTRY.items() if spec.rounds)


def describe() -> str:
    """``--backend``'s help: every backend with its words."""
    return "; ".join(f"{name}: {spec.help}" for name, spec in REGISTRY.items() if spec.help)


def spec(name: str) -> Spec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise BackendError(f"unknown backend {name!r}; expected auto or one of {list(REGISTRY)}") from None


def _resolve(target: Callable | str) -> Callable:
    if callable(target):
        return target
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)


def runs_natively(name: str) -> bool:
    """Whether this machine runs backend ``name`` with its own kernels, not emulated (its probe)."""
    native = spec(name).native
    return native is None or bool(_resolve(native)())


def native_rounding_backends(device: str = "cpu") -> tuple[str, ...]:
    """The rounding backends of ``device`` that this machine runs natively, fastest first: what
    training's guard measures (an emulated bf16 would take minutes and never be used)."""
    found = [s for s in REGISTRY.values() if s.rounds and s.device == device and s.speed > 0]
    return tuple(s.name for s in sorted(found, key=lambda s: -s.speed) if runs_natively(s.name))


def guarded_here(model_dir: str | Path) -> tuple[str, ...]:
    """What ``diplostance guard`` measures by default: every rounding backend this machine runs
    natively, those that need a file the model lacks (``onnx-int8`` before an export) left out."""
    from ..exporters.onnx import ONNX_INT8_FILE

    found = []
    for name, s in REGISTRY.items():
        if not s.rounds or (name == "onnx-int8" and not (Path(model_dir) / ONNX_INT8_FILE).exists()):
            continue
        if runs_natively(name):
            found.append(name)
    return tuple(found)


def choose_backend(guard_record: dict, device: str = "cpu") -> tuple[str, str]:
    """``auto``: the fastest rounding backend of ``device`` that this machine runs natively and that
    passed the model's accuracy guard (``guard_record``, :func:`diplostance.model_dir.read_guard`)
    on this kind of CPU (or this GPU), else the exact one.  Returns the backend and why, in words
    for the run's summary."""
    entries = (guard_record or {}).get("backends") or {}
    here = hardware.device_name(device)
    passed_elsewhere = []
    for name in native_rounding_backends(device):
        entry = entries.get(name)
        if entry is None or entry.get("revision", 1) != REGISTRY[name].revision or not entry.get("ok"):
            continue
        if not hardware.same_kind(entry.get("cpu", ""), here):
            passed_elsewhere.append(name)
            continue
        return name, (f"auto: {name}, the fastest backend that passed this model's accuracy guard on this "
                      f"{'GPU' if device == 'cuda' else 'CPU'} ({100 * entry['agreement']:.2f}% of decisions equal fp32's)")
    exact = EXACT[device]
    why = f"auto: {exact}, exact"
    if passed_elsewhere:
        why += (f" ({', '.join(passed_elsewhere)} passed the accuracy guard on another kind of CPU, not this one; "
                f"'diplostance guard MODEL' checks it here)")
    return exact, why


def load_backend(name: str, model_dir: str | Path, model=None, threads: int | None = None,
                 device: str = "cpu"):
    """A backend for ``model_dir``; ``model`` (already loaded, fp32) is reused by torch backends.
    On ``device="cuda"``, ``fp32`` and ``transformers`` mean ``cuda-fp32``; a CPU-only backend is
    refused there."""
    s = spec(name)
    if device == "cuda" and s.device == "cpu":
        if name not in ("fp32", "transformers"):
            raise BackendError(f"backend {name} runs on the CPU; on --device cuda use auto or one of "
                                   f"{[n for n, x in REGISTRY.items() if x.device == 'cuda']}")
        s = REGISTRY[EXACT["cuda"]]
    if s.device == "cuda":
        hardware.resolve_device("cuda")  # a clear error without a GPU
    if not runs_natively(s.name):
        raise BackendError(f"backend {s.name}: this machine ({hardware.device_name(s.device)}) cannot run it "
                               f"natively: it needs {s.needs or 'what this machine lacks'}. Use --backend auto "
                               "(the fastest one this machine runs natively) or fp32")
    backend = _resolve(s.load)(model_dir, model=model, threads=threads, name=s.name)
    hardware.release_free_memory()  # the replaced layers' memory, held by the C heap otherwise
    return backend
