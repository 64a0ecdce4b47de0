"""The hardware decides precision and backends: bf16 only where the CPU has it, `auto` never picks
a backend that failed the guard or that this CPU would emulate, and the device choice."""
import warnings

import pytest

from diplostance import hardware
from diplostance.backends import choose_backend, load_backend
from diplostance.errors import DiplostanceError
from diplostance.model_dir import read_guard


@pytest.fixture()
def isa(monkeypatch):
    """Imitate a smaller CPU through the package's own override (the kernels are unchanged)."""
    from diplostance.backends import onednn

    def set_level(level):
        monkeypatch.setenv("DIPLOSTANCE_CPU_ISA", level)
        onednn.bf16_supported.cache_clear(), onednn.int8_supported.cache_clear()

    yield set_level
    monkeypatch.delenv("DIPLOSTANCE_CPU_ISA", raising=False)
    onednn.bf16_supported.cache_clear(), onednn.int8_supported.cache_clear()


def test_an_avx2_cpu_has_no_native_bf16_or_int8(isa, monkeypatch):
    isa("avx2")
    assert not hardware.native_bf16() and not hardware.native_int8()
    assert hardware.isa() in ((), ("avx2", "fma"), ("avx2",), ("fma",))
    assert hardware.use_bf16("auto") == (False, hardware.use_bf16("auto")[1])
    assert "no native bf16" in hardware.use_bf16("auto")[1] and "so fp32" in hardware.use_bf16("auto")[1]
    on, why = hardware.use_bf16(True)
    assert on and why.startswith("warning:") and "emulates it" in why and 'training.bf16 = "auto"' in why
    assert hardware.use_bf16(False) == (False, "training.bf16 = false")


def test_onednn_and_aten_caps_are_honoured(monkeypatch):
    monkeypatch.delenv("DIPLOSTANCE_CPU_ISA", raising=False)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert not {"avx512f", "avx512_bf16", "amx_bf16"} & set(hardware.isa())
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_VNNI")
    assert "avx512_bf16" not in hardware.isa() and not hardware.native_bf16()
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")
    assert hardware.isa() == ()
    monkeypatch.setenv("DIPLOSTANCE_CPU_ISA", "pentium")
    with pytest.raises(DiplostanceError, match="DIPLOSTANCE_CPU_ISA='pentium': expected one of"):
        hardware.isa()


def test_cpu_kind_comparison_ignores_avx2_and_fma_but_not_bf16():
    assert hardware.same_kind("AMD EPYC (avx512f, avx512_vnni, avx512_bf16)",
                              "AMD EPYC (avx2, fma, avx512f, avx512_vnni, avx512_bf16)")
    assert not hardware.same_kind("AMD EPYC (avx512f, avx512_vnni, avx512_bf16)", "AMD EPYC (avx2, fma)")
    assert not hardware.same_kind("Intel Xeon (avx2, fma)", "AMD EPYC (avx2, fma)")


def _with_guard(record, **entries):
    """A guard record (guard.json) holding ``entries``: {backend: (agreement, cpu or None for this one)}."""
    from diplostance.backends import REGISTRY

    here = hardware.cpu_name()
    return {"backends": {
        name: {"agreement": agreement, "ok": agreement >= 0.995, "cpu": cpu or here, "revision": REGISTRY[name].revision}
        for name, (agreement, cpu) in entries.items()}}


def test_auto_picks_the_fastest_guarded_native_backend(tiny_model, isa):
    meta = read_guard(tiny_model.output)
    isa("avx512_bf16")
    from diplostance.backends import runs_natively

    if not runs_natively("int8") or not runs_natively("bf16"):
        pytest.skip(f"this CPU ({hardware.cpu_name()}) has no native bf16 and int8 kernels")
    assert choose_backend(_with_guard(meta, bf16=(1.0, None), int8=(0.999, None)))[0] == "int8"
    name, why = choose_backend(_with_guard(meta, bf16=(1.0, None), int8=(0.97, None)))
    assert name == "bf16" and "passed this model's accuracy guard" in why  # never the one that failed
    assert choose_backend(_with_guard(meta, bf16=(0.9, None), int8=(0.9, None)))[0] == "fp32"
    assert choose_backend(meta)[0] in ("fp32", "bf16", "int8")
    other = "Intel Xeon (avx512f, avx512_vnni, avx512_bf16, amx_bf16, amx_int8)"
    name, why = choose_backend(_with_guard(meta, bf16=(1.0, other), int8=(1.0, other)))
    assert name == "fp32" and "another kind of CPU" in why and "diplostance guard" in why


def test_auto_never_picks_what_the_cpu_would_emulate(tiny_model, isa):
    meta = _with_guard(read_guard(tiny_model.output), bf16=(1.0, None), int8=(0.97, None))
    isa("avx2")  # guard records made here, but bf16 is emulated on an AVX2 CPU and int8 failed
    meta["backends"]["bf16"]["cpu"] = hardware.cpu_name()
    name, why = choose_backend(meta)
    assert name == "fp32" and why.startswith("auto: fp32")


def test_explicit_bf16_on_a_cpu_without_it_is_refused(tiny_model, isa):
    isa("avx2")
    with pytest.raises(DiplostanceError, match=r"needs native bf16 .* several times slower than fp32. Use --backend auto"):
        load_backend("bf16", tiny_model.output)


def test_score_names_the_backend_auto_chose(tiny_model, tmp_path, capsys):
    from diplostance.cli import main

    doc = tmp_path / "doc.txt"
    doc.write_text("Le Canada condamne fermement les frappes. Les deux parties ont signé un accord.", encoding="utf-8")
    assert main(["score", str(tiny_model.output), str(doc), "--out", str(tmp_path / "o.jsonl"),
                 "--summary", str(tmp_path / "s.json")]) == 0
    err = capsys.readouterr().err
    assert "with backend " in err and "backend auto: " in err
    import json

    summary = json.loads((tmp_path / "s.json").read_text(encoding="utf-8"))
    assert summary["backend"] in ("fp32", "bf16", "int8") and summary["backend_reason"].startswith("auto: ")


def test_device_choice(monkeypatch):
    monkeypatch.setattr(hardware, "cuda_available", lambda: False)
    assert hardware.resolve_device("auto") == "cpu" and hardware.resolve_device("cpu") == "cpu"
    with pytest.raises(DiplostanceError, match="PyTorch sees no GPU here"):
        hardware.resolve_device("cuda")
    with pytest.raises(DiplostanceError, match="expected 'auto', 'cpu' or 'cuda'"):
        hardware.resolve_device("tpu")
    monkeypatch.setattr(hardware, "cuda_available", lambda: True)
    assert hardware.resolve_device("auto") == "cuda"


def test_recipe_bf16_takes_auto_and_warns_once_where_emulated(isa, tmp_path):
    from conftest import tiny_config
    from diplostance.train import train

    assert tiny_config().training.bf16 == "auto"
    isa("avx2")
    config = tiny_config(**{"training.bf16": "true", "data.limit": 32, "training.epochs": 1})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(config, output=tmp_path / "m", quiet=True)
    ours = [w for w in caught if "no native bf16" in str(w.message)]
    assert len(ours) == 1 and "\n" not in str(ours[0].message)
