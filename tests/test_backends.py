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


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "fp32"])
def test_backend_matches_fp32(exported, backend):
    ref, ref_windows = StanceClassifier.load(exported).predict_proba(SENTENCES)
    got, windows = StanceClassifier.load(exported, backend=backend).predict_proba(SENTENCES)
    assert got.shape == ref.shape and (windows == ref_windows).all()
    tolerance = 1e-4 if backend == "onnx" else 2e-2
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
