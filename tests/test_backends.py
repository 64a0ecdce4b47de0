"""Every scoring backend agrees with exact fp32 on the tiny model; ONNX export round trip."""
import numpy as np
import pytest

from diplostance import StanceClassifier
from diplostance import backends
from diplostance.backends import load_backend, runs_natively
from diplostance.hardware import cpu_name, cuda_available
from diplostance.cli import main

from conftest import ROOT

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


# Every registered backend, the fake one of conftest.py included: a new backend is one registry row
# away from this parity test.
@pytest.mark.parametrize("backend", [b for b in backends.names() if b != "transformers"])
def test_backend_matches_the_transformers_forward(exported, backend):
    if not runs_natively(backend):
        pytest.skip(f"{backend} does not run natively on this machine ({cpu_name()}; GPU: {cuda_available()})")
    ref, ref_windows = StanceClassifier.load(exported, backend="transformers").predict_proba(SENTENCES)
    # (the tiny model's probabilities sit on its thresholds, so its guard refuses bf16 and int8:
    # the probabilities, not the decisions, are what this test compares)
    got, windows = StanceClassifier.load(exported, backend=backend, allow_unguarded=True).predict_proba(SENTENCES)
    assert got.shape == ref.shape and (windows == ref_windows).all()
    tolerance = 2e-2 if backends.REGISTRY[backend].rounds else 1e-4
    np.testing.assert_allclose(got, ref, atol=tolerance)


def test_unknown_backend_and_missing_export(tiny_model, tmp_path):
    with pytest.raises(ValueError, match=r"unknown backend 'gpu'; expected auto or one of \['fp32'"):
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


@pytest.mark.skipif(not runs_natively("bf16"), reason="no native bf16 on this CPU: the bf16 backend is refused there")
def test_bf16_backend_packs_linears_and_loads_like_from_pretrained(tiny_model):
    import torch
    from transformers import AutoModelForSequenceClassification

    from diplostance.backends.pytorch import load_low_memory

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

    from diplostance.backends import onednn

    backend = load_backend("int8", tiny_model.output)
    kinds = {type(m).__name__ for m in backend.model.modules()}
    if onednn.int8_supported():  # the packed forward, every encoder linear in int8
        assert type(backend.model).__name__ == "PackedClassifier"
        linears = [m for layer in backend.model.layers for m in layer.modules() if "Linear" in type(m).__name__]
        assert linears and all(isinstance(m, onednn.Int8Linear) for m in linears)
    else:  # PyTorch's own dynamic quantisation
        assert "DynamicQuantizedLinear" in kinds or "Linear" in kinds


def test_guard_compares_fast_backends_with_fp32(exported):
    from diplostance.backends.guard import guard

    names = ("fp32", "bf16", "onnx") if runs_natively("bf16") else ("fp32", "onnx")
    report = guard(exported, SENTENCES * 3, backends=names)
    assert set(report) == set(names)
    for entry in report.values():
        assert entry["decisions"] == 12 * 4 and 0 <= entry["max_abs_diff"] < 0.05
        assert entry["agreement"] == pytest.approx(1 - entry["disagreements"] / entry["decisions"])
    assert report["onnx"]["ok"] and report["onnx"]["max_abs_diff"] < 1e-4
    assert report["fp32"]["ok"] and report["fp32"]["max_abs_diff"] < 1e-5  # packed fp32 = the reference


def _guard_copy(model_dir, tmp_path, entries, revisions=None):
    """A copy of the model whose guard record holds ``entries`` ({backend: agreement}); None: no
    record.  ``revisions``: the backends' implementations in the record (default: the current ones)."""
    import shutil

    from diplostance.model_dir import GUARD_FILE, write_guard

    revisions = {n: s.revision for n, s in backends.REGISTRY.items()} if revisions is None else revisions

    copy = tmp_path / "guarded"
    shutil.copytree(model_dir, copy, ignore=shutil.ignore_patterns("*.onnx", GUARD_FILE))
    if entries is not None:
        write_guard(copy, {"min_agreement": 0.995, "backends": {
            name: {"agreement": a, "max_abs_diff": 0.01, "disagreements": round((1 - a) * 4000), "decisions": 4000,
                   "ok": a >= 0.995, "data": "dev split, 1000 sentences", "cpu": "Test CPU",
                   **({"revision": revisions[name]} if name in revisions else {})}
            for name, a in entries.items()}})
    return copy


def test_training_records_the_guard_of_bf16_and_int8(tiny_model):
    from diplostance.backends import native_rounding_backends
    from diplostance.model_dir import read_guard

    record = read_guard(tiny_model.output)

    # only what this CPU runs natively: bf16 and int8 with AVX512-BF16, int8 (FBGEMM) alone on AVX2
    assert record["min_agreement"] == 0.995 and set(record["backends"]) == set(native_rounding_backends())
    for entry in record["backends"].values():
        assert 0 <= entry["agreement"] <= 1 and entry["ok"] == (entry["agreement"] >= 0.995)
        assert entry["decisions"] == 4 * int(entry["data"].split(", ")[1].split()[0])
        assert entry["data"].startswith("dev split, ") and entry["cpu"] and entry["measured"]
    assert tiny_model.metrics["guard"] == record
    card = (tiny_model.output / "README.md").read_text(encoding="utf-8")
    assert "## Backends: the accuracy guard" in card and "| int8 |" in card


@pytest.mark.skipif(not runs_natively("bf16"), reason="no native bf16 on this CPU: the bf16 backend is refused there")
def test_a_backend_below_the_guard_is_refused_unless_allowed(tiny_model, tmp_path, capsys):
    import json

    from diplostance.backends.guard import GuardError

    copy = _guard_copy(tiny_model.output, tmp_path, {"bf16": 0.9990, "int8": 0.9900})
    with pytest.raises(GuardError, match=r"the int8 backend agreed with fp32 on 99\.00% of this model's label "
                                         r"decisions \(dev split, 1000 sentences, on Test CPU\), below the 99\.5%.*"
                                         r"--backend fp32 or bf16 \(99\.90%\), or pass --allow-unguarded"):
        StanceClassifier.load(copy, backend="int8")
    assert StanceClassifier.load(copy, backend="bf16").backend.name == "bf16"  # passes: used
    probs, _ = StanceClassifier.load(copy, backend="int8", allow_unguarded=True).predict_proba(SENTENCES)
    assert probs.shape == (len(SENTENCES), 4)
    text = tmp_path / "r.txt"
    text.write_text("Le Canada condamne fermement les frappes.", encoding="utf-8")
    assert main(["score", str(copy), str(text), "--backend", "int8", "--quiet"]) == 2
    assert "below the 99.5% the accuracy guard requires" in capsys.readouterr().err
    assert main(["score", str(copy), str(text), "--backend", "int8", "--allow-unguarded", "--quiet"]) == 0
    # a file's id: its path relative to the folder of the inputs
    assert json.loads(capsys.readouterr().out.splitlines()[0])["doc_id"] == text.name


def test_a_record_of_an_earlier_implementation_warns_and_runs(tiny_model, tmp_path):
    """int8 once quantised per batch (revision 1, or no revision in the record): its old failing
    record says nothing about today's int8, so it runs, with a warning that names the fix."""
    copy = _guard_copy(tiny_model.output, tmp_path, {"bf16": 0.9990, "int8": 0.9900}, revisions={"bf16": 1})
    with pytest.warns(UserWarning, match=r"the int8 backend was checked against fp32 \(99\.00% of decisions equal\) "
                                         r"with an earlier implementation of it, not this one; 'diplostance guard"):
        clf = StanceClassifier.load(copy, backend="int8")
    assert clf.predict(SENTENCES[:1])[0].text == SENTENCES[0]


def test_an_unchecked_backend_warns_and_runs(tiny_model, tmp_path):
    copy = _guard_copy(tiny_model.output, tmp_path, None)
    with pytest.warns(UserWarning, match="the int8 backend has not been checked against fp32 for this model; "
                                         "'diplostance guard"):
        clf = StanceClassifier.load(copy, backend="int8")
    assert clf.predict(SENTENCES[:1])[0].text == SENTENCES[0]


@pytest.mark.skipif(not runs_natively("bf16"), reason="no native bf16 on this CPU: the bf16 backend is refused there")
def test_guard_command_measures_and_records(exported, tmp_path, capsys):
    import json

    from diplostance.model_dir import read_guard

    copy = _guard_copy(exported, tmp_path, {"bf16": 0.9})  # no ONNX files in the copy
    dev = (ROOT / "data" / "sentences" / "dev.jsonl").read_text(encoding="utf-8").splitlines()[:25]
    data = tmp_path / "few.jsonl"
    data.write_text("\n".join(dev) + "\n", encoding="utf-8")
    meta_before = (copy / "diplostance.json").read_bytes(), (copy / "README.md").read_bytes()
    assert main(["guard", str(copy), "--data", str(data), "--backends", "bf16,int8,onnx-int8"]) == 0
    out = capsys.readouterr().out
    assert "onnx-int8  not measured: " in out and "run 'diplostance export" in out
    entries = read_guard(copy)["backends"]
    assert set(entries) == {"bf16", "int8"}  # bf16 measured again, int8 added, onnx-int8 not loadable
    for name in ("bf16", "int8"):
        e = entries[name]
        assert e["decisions"] == 25 * 4 and e["data"] == f"{data} (25 sentences)"
        assert e["revision"] == backends.REGISTRY[name].revision  # which implementation the record speaks for
        assert f"  {name:10s} {100 * e['agreement']:6.2f}%" in out
        assert ("passes" if e["ok"] else "REFUSED") in out.split(f"  {name:10s}")[1].splitlines()[0]
    assert json.loads((copy / "guard.json").read_text(encoding="utf-8"))["backends"] == entries
    # using or checking a model never rewrites its metadata or its card
    assert ((copy / "diplostance.json").read_bytes(), (copy / "README.md").read_bytes()) == meta_before
    assert main(["guard", str(copy), "--data", str(tmp_path / "missing.jsonl")]) == 2
    assert "no sentences for the guard: " in capsys.readouterr().err


def test_a_backend_added_through_the_registry_alone_is_everywhere(exported, tmp_path, capsys):
    """conftest.py registers ``fake-half`` (the transformers forward with its logits rounded to
    float16) with one registry row: the CLI takes it, the guard measures it by default, auto
    never picks it (its speed rank is 0), and the parity test above ran it."""
    import json

    from diplostance.backends import choose_backend, guarded_here
    from diplostance.backends.guard import guard
    from diplostance.cli import build_parser

    assert "fake-half" in backends.names() and backends.REGISTRY["fake-half"].rounds
    score = build_parser().parse_args(["score", str(exported), "x.txt", "--backend", "fake-half"])
    assert score.backend == "fake-half"
    assert "fake-half" in guarded_here(exported)
    report = guard(exported, SENTENCES, backends=None)  # default: every rounding backend
    # (measured; whether it passes depends on the tiny model, whose probabilities sit on its thresholds)
    assert report["fake-half"]["decisions"] == 4 * len(SENTENCES) and report["fake-half"]["max_abs_diff"] < 1e-2
    record = {"backends": {"fake-half": {**report["fake-half"], "ok": True, "cpu": "x", "revision": 1}}}
    assert choose_backend(record)[0] == "fp32"
    text = tmp_path / "r.txt"
    text.write_text("Le Canada condamne fermement les frappes.", encoding="utf-8")
    assert main(["score", str(exported), str(text), "--backend", "fake-half", "--allow-unguarded", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["doc_id"] == text.name
