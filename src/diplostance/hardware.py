"""What this machine can run fast: the CPU's name and instruction sets, native bf16 and int8, GPUs,
and the C heap helpers.  Training, scoring, the accuracy guard and the benchmark all ask here, so
that one answer decides precision and kernels everywhere.

Why it matters: PyTorch runs bf16 on any x86 CPU, but without AVX512-BF16 or AMX it emulates it,
about 8x slower than fp32 (a 2-core AMD Zen 3 with AVX2 only: one training step 70-144 s in bf16,
3.9 s in fp32).  So bf16 is used where the hardware has it, never merely where it works.

The instruction sets are read from ``/proc/cpuinfo`` and then capped the way the kernels
themselves are capped, so a larger CPU can imitate a smaller one for tests and timing:

* ``DIPLOSTANCE_CPU_ISA`` (``avx2``, ``avx512``, ``avx512_vnni``, ``avx512_bf16``, ``amx``): this
  package's own override;
* ``ONEDNN_MAX_CPU_ISA`` (oneDNN's: ``AVX2``, ``AVX512_CORE``, ``AVX512_CORE_VNNI``,
  ``AVX512_CORE_BF16``, ``AVX512_CORE_AMX``, ...) and ``ATEN_CPU_CAPABILITY`` (PyTorch's:
  ``default``, ``avx2``, ``avx512``), which also make oneDNN and PyTorch pick the smaller kernels.
"""
from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

#: The instruction sets that decide which kernels run, in the order of the levels below.
KERNEL_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
#: A cap on the instruction sets: each level keeps the flags of its list.
_LEVELS = {
    "default": (),
    "avx2": ("avx2", "fma"),
    "avx512": ("avx2", "fma", "avx512f"),
    "avx512_vnni": ("avx2", "fma", "avx512f", "avx512_vnni"),
    "avx512_bf16": ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"),
    "amx": KERNEL_FLAGS,
}
#: oneDNN's ISA names (ONEDNN_MAX_CPU_ISA) and PyTorch's (ATEN_CPU_CAPABILITY) as levels above.
_ONEDNN = {"SSE41": "default", "AVX": "default", "AVX2": "avx2", "AVX2_VNNI": "avx2", "AVX2_VNNI_2": "avx2",
           "AVX512_CORE": "avx512", "AVX512_CORE_VNNI": "avx512_vnni", "AVX512_CORE_BF16": "avx512_bf16",
           "AVX10_1_512": "avx512_bf16", "AVX512_CORE_FP16": "avx512_bf16", "AVX512_CORE_AMX": "amx",
           "AVX512_CORE_AMX_FP16": "amx", "AVX10_1_512_AMX": "amx", "AVX10_1_512_AMX_FP16": "amx",
           "AVX10_2_512": "amx", "AVX10_2_512_AMX_2": "amx", "ALL": "amx", "DEFAULT": "amx"}
_ATEN = {"default": "default", "avx2": "avx2", "avx512": "amx", "zvector": "default"}


def _cpuinfo() -> tuple[str, set[str]]:
    try:
        info = Path("/proc/cpuinfo").read_text().splitlines()
        name = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
        flags = set(next(line for line in info if line.startswith("flags")).split(":", 1)[1].split())
        return name, flags
    except (OSError, StopIteration, IndexError):
        return platform.processor() or platform.machine() or "unknown CPU", set()


def _cap() -> tuple[str, ...] | None:
    """The flags the environment allows (None: no cap)."""
    allowed: set[str] | None = None
    own = os.environ.get("DIPLOSTANCE_CPU_ISA", "").strip().lower()
    if own:
        if own not in _LEVELS:
            from .errors import DiplostanceError

            raise DiplostanceError(f"DIPLOSTANCE_CPU_ISA={own!r}: expected one of {sorted(_LEVELS)}")
        allowed = set(_LEVELS[own])
    for var, table in (("ONEDNN_MAX_CPU_ISA", _ONEDNN), ("ATEN_CPU_CAPABILITY", _ATEN)):
        value = os.environ.get(var, "").strip()
        level = table.get(value.upper() if var == "ONEDNN_MAX_CPU_ISA" else value.lower())
        if level is not None:
            allowed = set(_LEVELS[level]) if allowed is None else allowed & set(_LEVELS[level])
    return None if allowed is None else tuple(sorted(allowed))


def isa() -> tuple[str, ...]:
    """The kernel-deciding instruction sets this CPU has (:data:`KERNEL_FLAGS`), after the caps
    of the environment (module docstring).  Also ``avx_vnni`` counts as VNNI."""
    _, flags = _cpuinfo()
    found = [f for f in KERNEL_FLAGS if f in flags or (f == "avx512_vnni" and "avx_vnni" in flags)]
    cap = _cap()
    return tuple(f for f in found if cap is None or f in cap)


def cpu_name() -> str:
    """This CPU's model name and the instruction sets that decide its kernels, e.g. ``AMD EPYC
    (avx2, fma, avx512f, avx512_vnni, avx512_bf16)``.  Two machines with the same string run the
    same kernels: models record it (training, the accuracy guard) and reports print it."""
    name, _ = _cpuinfo()
    return f"{name} ({', '.join(isa()) or 'no AVX2'})"


def native_bf16() -> bool:
    """The CPU multiplies bf16 in hardware (AVX512-BF16 or AMX-BF16); elsewhere PyTorch emulates
    it, several times slower than fp32."""
    have = isa()
    return "avx512_bf16" in have or "amx_bf16" in have


def native_int8() -> bool:
    """The CPU has int8 dot-product instructions (AVX512-VNNI / AVX-VNNI, or AMX-INT8)."""
    have = isa()
    return "avx512_vnni" in have or "amx_int8" in have


def amx() -> bool:
    return bool({"amx_int8", "amx_bf16"} & set(isa()))


@functools.cache
def cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except (ImportError, RuntimeError):
        return False


def cuda_bf16() -> bool:
    """The GPU computes in bf16 (Ampere and newer)."""
    import torch

    return cuda_available() and bool(torch.cuda.is_bf16_supported())


def device_name(device: str = "cpu") -> str:
    """What runs the work: :func:`cpu_name`, or the GPU's name on ``cuda``."""
    if device == "cuda":
        import torch

        return torch.cuda.get_device_name(0)
    return cpu_name()


def resolve_device(device: str = "auto") -> str:
    """``auto``: ``cuda`` when PyTorch sees a GPU, else ``cpu``.  ``cuda`` without a GPU is an
    error that says so."""
    from .errors import DiplostanceError

    if device not in ("auto", "cpu", "cuda"):
        raise DiplostanceError(f"device: expected 'auto', 'cpu' or 'cuda', got {device!r}")
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device == "cuda" and not cuda_available():
        raise DiplostanceError("device cuda: PyTorch sees no GPU here (torch.cuda.is_available() is False; "
                               "the CPU build of torch has no CUDA); use --device cpu or auto")
    return device


def use_bf16(setting: bool | str, device: str = "cpu") -> tuple[bool, str]:
    """Whether training should run under bf16 autocast, and why, for a recipe's ``training.bf16``
    (``"auto"``, ``true`` or ``false``) on ``device``.  ``auto``: bf16 where the hardware has it
    (:func:`native_bf16`, or a GPU with bf16), fp32 elsewhere.  ``true`` is obeyed; the reason then
    carries a warning when this hardware would emulate bf16."""
    if setting == "auto":
        if device == "cuda":
            return cuda_bf16(), "auto: the GPU " + ("computes in bf16" if cuda_bf16() else "has no bf16")
        if native_bf16():
            return True, f"auto: {cpu_name()} has native bf16"
        return False, f"auto: {cpu_name()} has no native bf16 (AVX512-BF16 or AMX), so fp32"
    if setting and device == "cpu" and not native_bf16():
        return True, (f"warning: training.bf16 = true, but {cpu_name()} has no native bf16 (AVX512-BF16 or AMX): "
                      "PyTorch emulates it, about 8x slower than fp32; set training.bf16 = \"auto\" "
                      "(or --set training.bf16=auto)")
    return bool(setting), f"training.bf16 = {str(bool(setting)).lower()}"


def bf16_arguments(bf16: bool) -> dict:
    """TrainingArguments for bf16 mixed precision: on a machine without a GPU the Trainer refuses
    ``bf16`` unless told to train on the CPU, where it then runs under CPU autocast (AMX /
    AVX-512 BF16 kernels).  Nothing changes when ``bf16`` is off."""
    if not bf16:
        return {"bf16": False}
    import torch

    accelerator = torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())
    return {"bf16": True} if accelerator else {"bf16": True, "use_cpu": True}


# --------------------------------------------------------------------------- the C heap

_glibc = None


def glibc():
    """The C library when it is glibc (``malloc_trim``, ``mallopt``), else None; loaded once."""
    global _glibc
    if _glibc is None:
        _glibc = False
        try:
            import ctypes

            lib = ctypes.CDLL("libc.so.6")
            for name in ("malloc_trim", "mallopt"):  # glibc has both; other C libraries may not
                getattr(lib, name)
            _glibc = lib
        except (OSError, AttributeError):
            pass
    return _glibc or None


def release_free_memory() -> None:
    """Give the C heap's free memory back to the system (glibc ``malloc_trim``; elsewhere nothing).

    Batches of every width leave the heap fragmented; without this, the resident memory of a
    long streamed scoring run creeps up with the number of documents (measured: +100 MB over
    1,700 sentences of the base-shaped model in bf16); with it, it stays flat.
    """
    lib = glibc()
    if lib is not None:
        lib.malloc_trim(0)


def reuse_freed_memory() -> bool:
    """Make glibc keep large freed blocks for reuse instead of returning them to the system.

    Every training step allocates gradients and activations of tens of MB; above glibc's mmap
    threshold (32 MB at most) each is a fresh mapping whose pages fault in one by one as they are
    zeroed.  Measured on the camembert-base-shaped model, batch 16, bf16 autocast, 2-core Xeon:
    1.17 s -> 0.83 s per step.  The memory stays with the process, which reuses it every step;
    scoring gives it back (:func:`release_free_memory`).  Returns False where there is no glibc."""
    lib = glibc()
    if lib is None:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(lib.mallopt(m_mmap_threshold, 1 << 30) and lib.mallopt(m_trim_threshold, 4 << 30))


def same_kind(recorded: str, current: str | None = None) -> bool:
    """Whether a :func:`cpu_name` string recorded earlier (a model's guard record, say) names the
    same kind of CPU as ``current`` (default: this one): the same model name and the same
    AVX-512, VNNI, BF16 and AMX sets, which pick the rounding kernels.  Records written before
    ``avx2`` and ``fma`` were listed compare equal to today's strings."""
    def parts(text: str) -> tuple[str, frozenset]:
        name, _, rest = text.partition(" (")
        flags = {f.strip() for f in rest.rstrip(")").split(",")} - {"avx2", "fma", "no AVX2", ""}
        return name.strip(), frozenset(flags)

    return parts(recorded) == parts(current if current is not None else cpu_name())
