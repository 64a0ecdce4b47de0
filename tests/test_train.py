"""The shared round trip: train the tiny recipe -> model directory -> load -> same probabilities."""
import json

import numpy as np
import pytest

from diplostance.hardware import cpu_name
from diplostance.config import ConfigError
from diplostance.labels import LABELS
from diplostance.model_dir import META_FILE, ModelDirError, read_meta
from diplostance.train import OutputExistsError, train

from conftest import tiny_config

SENTENCES = [
    "La Norvège soutient pleinement les efforts de médiation de l'Union africaine.",
    "Le Canada condamne fermement les frappes contre des infrastructures civiles.",
    "La rencontre s'est tenue au palais présidentiel.",
]


def test_model_directory_is_a_standard_hf_directory(tiny_model):
    out = tiny_model.output
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", META_FILE,
                 "README.md", "training_config.toml"):
        assert (out / name).exists(), name
    config = json.loads((out / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification"
    assert [config["id2label"][str(i)] for i in range(4)] == list(LABELS)
    tok_cfg = json.loads((out / "tokenizer_config.json").read_text())
    assert tok_cfg["model_max_length"] == 64
    meta = read_meta(out)
    assert meta.labels == list(LABELS) and len(meta.thresholds) == 4
    assert meta.training_data["fingerprint"].startswith("sha256:")
    assert "dev" in meta.metrics and "test" in meta.metrics
    assert not (out / "checkpoints").exists()
    card = (out / "README.md").read_text()
    assert "| F1 commitment |" in card
    # the hardware is recorded: the same recipe trains to other weights on another kind of CPU
    assert meta.metrics["train_device"] == cpu_name() and f" on {cpu_name()}, in " in card


def test_thresholds_are_tuned_on_dev_and_saved(tiny_model):
    meta = read_meta(tiny_model.output)
    assert meta.thresholds == pytest.approx(tiny_model.thresholds, abs=1e-5)
    assert all(0.0 < t < 1.0 for t in meta.thresholds)


def test_save_load_predict_gives_the_same_probabilities(tiny_model):
    from transformers import pipeline

    from diplostance import StanceClassifier

    clf = StanceClassifier.load(tiny_model.output)
    ours, _ = clf.predict_proba(SENTENCES)
    again, _ = StanceClassifier.load(tiny_model.output).predict_proba(SENTENCES)
    np.testing.assert_allclose(ours, again, atol=1e-6)
    pipe = pipeline("text-classification", model=str(tiny_model.output), top_k=None)
    theirs = np.array([[{d["label"]: d["score"] for d in out}[label] for label in LABELS] for out in pipe(SENTENCES)])
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    preds = clf.predict(SENTENCES)
    for pred, p in zip(preds, ours):
        assert pred.labels == [l for l, x, t in zip(LABELS, p, clf.thresholds) if x >= t]
        assert pred.primary in (*LABELS, "none")


def test_fixed_seed_gives_the_same_metrics_twice(tmp_path):
    config = tiny_config(**{"data.limit": 120, "training.epochs": 1})
    a = train(config, output=tmp_path / "a", quiet=True)
    b = train(tiny_config(**{"data.limit": 120, "training.epochs": 1}), output=tmp_path / "b", quiet=True)
    assert a.thresholds == b.thresholds
    assert a.metrics["dev"]["macro_f1"] == b.metrics["dev"]["macro_f1"]


def test_existing_output_is_kept_unless_force(tiny_model):
    with pytest.raises(OutputExistsError, match="exists and is not empty; use --force"):
        train(tiny_config(), output=tiny_model.output, quiet=True)
    with pytest.raises(OutputExistsError, match="already finished; nothing to resume"):
        train(tiny_config(), output=tiny_model.output, resume=True, quiet=True)


def test_bad_corpus_row_stops_before_training(tmp_path):
    bad = tmp_path / "train.jsonl"
    bad.write_text('{"text": "Le Mali salue l\'accord.", "labels": ["support"]}\n{"text": "x", "labels": ["joy"]}\n')
    from diplostance.corpus import CorpusError

    with pytest.raises(CorpusError, match=r"train.jsonl:2: unknown label"):
        train(tiny_config(**{"data.train": str(bad)}), output=tmp_path / "m", quiet=True)
    assert not (tmp_path / "m").exists()


def test_interrupted_run_resumes_from_its_last_checkpoint(tmp_path, monkeypatch):
    from transformers import TrainerCallback

    class Stop(Exception):
        pass

    class Interrupt(TrainerCallback):
        def on_save(self, args, state, control, **kw):
            raise Stop()

    import transformers

    real_trainer = transformers.Trainer

    class InterruptingTrainer(real_trainer):
        def __init__(self, *a, **kw):
            kw["callbacks"] = list(kw.get("callbacks") or []) + [Interrupt()]
            super().__init__(*a, **kw)

    config = tiny_config(**{"data.limit": 120})
    monkeypatch.setattr(transformers, "Trainer", InterruptingTrainer)
    with pytest.raises(Stop):
        train(config, output=tmp_path / "m", quiet=True)
    monkeypatch.setattr(transformers, "Trainer", real_trainer)
    assert (tmp_path / "m" / "checkpoints").exists() and not (tmp_path / "m" / META_FILE).exists()
    from diplostance.train import _last_checkpoint, checkpoint_problem

    saved = sorted((tmp_path / "m" / "checkpoints").glob("checkpoint-*"))
    assert saved and all(checkpoint_problem(c) is None for c in saved)  # a real checkpoint passes the check
    assert _last_checkpoint(tmp_path / "m" / "checkpoints") == saved[-1]
    with pytest.raises(ModelDirError, match="did not finish.*--resume"):
        read_meta(tmp_path / "m")
    with pytest.raises(OutputExistsError, match="interrupted training run.*--resume"):
        train(tiny_config(**{"data.limit": 120}), output=tmp_path / "m", quiet=True)
    with pytest.raises(ConfigError, match="differs.*training.epochs"):
        train(tiny_config(**{"data.limit": 120, "training.epochs": 5}), output=tmp_path / "m", resume=True, quiet=True)
    resumed = train(tiny_config(**{"data.limit": 120}), output=tmp_path / "m", resume=True, quiet=True)
    clean = train(tiny_config(**{"data.limit": 120}), output=tmp_path / "clean", quiet=True)
    assert resumed.metrics["dev"]["macro_f1"] == pytest.approx(clean.metrics["dev"]["macro_f1"], abs=1e-6)

