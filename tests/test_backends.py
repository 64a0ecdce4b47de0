"""Every scoring backend agrees with exact fp32 on the tiny model; ONNX export round trip."""
import numpy as np
import pytest

from diplostance import StanceClassifier
from diplostance.backends import BACKENDS, load_backend
from diplostance.cli import main

SENTENCES = [
    "La Chine soutient fermement le Kenya dans la défense de sa souveraineté et de son intégrité territoriale.",
    "Le Canada condamne fermement les frappes.",
    "Les deux parties sont convenues d'ouvrir une ligne aérienne directe d'ici l'été prochain.",
    " ".join(["La délégation a rappelé les étapes du dialogue engagé depuis plusieurs années"] * 10) + ".",
]


@pytest.fixture(scope="module")
def exported(tiny_model):
    assert main(["export", str(tiny_model.output)]) == 0
    assert (tiny_model.output / "model.onnx").exists() and (tiny_model.output / "model.int8.onnx").exists()
    return tiny_model.output


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "transformers"])
def test_backend_matches_the_transformers_forward(exported, backend):
    ref, ref_windows = StanceClassifier.load(exported, backend="transformers").predict_proba(SENTENCES)
    got, windows = StanceClassifier.load(exported, backend=backend).predict_proba(SENTENCES)
    assert got.shape == ref.shape and (windows == ref_windows).all()
    tolerance = 1e-4 if backend in ("fp32", "onnx") else 2e-2
    np.testing.assert_allclose(got, ref, atol=tolerance)


def test_unknown_backend_and_missing_export(tiny_model, tmp_path):
    with pytest.raises(ValueError, match=r"unknown backend 'gpu'; expected one of \['fp32'"):
        load_backend("gpu", tiny_model.output)
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_model.output, copy, ignore=shutil.ignore_patterns("*.onnx"))
    with pytest.raises(FileNotFoundError, match="run 'diplostance export"):
        load_backend("onnx", copy)


def test_stale_onnx_export_is_refused(exported, tmp_path):
    import shutil

    copy = tmp_path / "retrained"
    shutil.copytree(exported, copy)
    (copy / "model.safetensors").write_bytes((copy / "model.safetensors").read_bytes() + b" ")  # other weights
    with pytest.raises(FileNotFoundError, match="not exported from this model's current weights"):
        load_backend("onnx", copy)


def test_bf16_backend_packs_linears_and_loads_like_from_pretrained(tiny_model):
    import torch
    from transformers import AutoModelForSequenceClassification

    from diplostance.backends import load_low_memory

    ours = load_low_memory(tiny_model.output, torch.bfloat16)
    ref = AutoModelForSequenceClassification.from_pretrained(str(tiny_model.output), dtype=torch.bfloat16)
    ref_state = ref.state_dict()
    for key, value in ours.state_dict().items():
        assert value.dtype == torch.bfloat16 and torch.equal(value, ref_state[key]), key
    backend = load_backend("bf16", tiny_model.output)
    if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        assert not any(type(m) is torch.nn.Linear for m in backend.model.modules())


def test_int8_backend_uses_onednn_int8_where_the_cpu_has_it(tiny_model):
    import torch

    from diplostance import onednn

    backend = load_backend("int8", tiny_model.output)
    kinds = {type(m).__name__ for m in backend.model.modules()}
    if onednn.int8_supported():  # the packed forward, every encoder linear in int8
        assert type(backend.model).__name__ == "PackedClassifier"
        linears = [m for layer in backend.model.layers for m in layer.modules() if "Linear" in type(m).__name__]
        assert linears and all(isinstance(m, onednn.Int8Linear) for m in linears)
    else:  # PyTorch's own dynamic quantisation
        assert "DynamicQuantizedLinear" in kinds or "Linear" in kinds


def test_guard_compares_fast_backends_with_fp32(exported):
    from diplostance.backends import guard

    report = guard(exported, SENTENCES * 3, backends=("fp32", "bf16", "onnx"))
    assert set(report) == {"fp32", "bf16", "onnx"}
    for entry in report.values():
        assert entry["decisions"] == 12 * 4 and 0 <= entry["max_abs_diff"] < 0.05
        assert entry["agreement"] == pytest.approx(1 - entry["disagreements"] / entry["decisions"])
    assert report["onnx"]["ok"] and report["onnx"]["max_abs_diff"] < 1e-4
    assert report["fp32"]["ok"] and report["fp32"]["max_abs_diff"] < 1e-5  # packed fp32 = the reference
