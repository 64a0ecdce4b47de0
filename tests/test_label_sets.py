"""The label set is data: a model trained on five labels (the task's four and ``threat``) trains,
saves, loads and scores from the CLI and the API with its own labels; a corpus label the recipe
does not name is refused."""
import json

import numpy as np
import pytest

from conftest import DATA, tiny_config

FIVE = ["commitment", "support", "opposition", "greeting", "threat"]
THREAT = ("avert", "conséquences", "riposte", "représailles", "mesures", "menace")


def _five_label_split(src, dst, limit):
    """The corpus split with a fifth label, ``threat``, on opposition sentences that speak of
    warnings, consequences or retaliation (enough positives for the mechanics, not a task)."""
    rows = []
    for line in src.read_text(encoding="utf-8").splitlines()[:limit]:
        row = json.loads(line)
        if "opposition" in row["labels"] and any(w in row["text"].lower() for w in THREAT):
            row["labels"] = [*row["labels"], "threat"]
        rows.append(json.dumps(row, ensure_ascii=False))
    dst.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return sum('"threat"' in r for r in rows)


@pytest.fixture(scope="module")
def five_label_model(tmp_path_factory):
    from diplostance.train import train

    root = tmp_path_factory.mktemp("five")
    counts = {split: _five_label_split(DATA / "sentences" / f"{split}.jsonl", root / f"{split}.jsonl", limit)
              for split, limit in (("train", 600), ("dev", 300), ("test", 200))}
    assert counts["train"] > 0 and counts["dev"] > 0
    config = tiny_config(**{"data.train": root / "train.jsonl", "data.dev": root / "dev.jsonl",
                            "data.test": root / "test.jsonl", "data.limit": 0,
                            "data.labels": json.dumps(FIVE)})
    result = train(config, output=root / "model", quiet=True)
    return result, root


def test_five_labels_train_and_save_with_the_model(five_label_model):
    from diplostance.model_dir import read_meta

    result, _ = five_label_model
    meta = read_meta(result.output)
    assert meta.labels == FIVE and len(meta.thresholds) == 5
    assert meta.primary_order == ["opposition", "commitment", "support", "greeting", "threat"]
    config = json.loads((result.output / "config.json").read_text(encoding="utf-8"))
    assert config["id2label"] == {str(i): name for i, name in enumerate(FIVE)}
    assert config["problem_type"] == "multi_label_classification"
    assert set(result.metrics["test"]["per_label"]) == set(FIVE)
    card = (result.output / "README.md").read_text(encoding="utf-8")
    assert "**threat**" in card and "| threat |" in card


def test_five_labels_score_from_the_api_and_the_cli(five_label_model, tmp_path, capsys):
    from diplostance import StanceClassifier
    from diplostance.cli import main
    from diplostance.labels import decide

    result, _ = five_label_model
    clf = StanceClassifier.load(result.output, backend="fp32")
    sentences = ["Moscou a averti que toute nouvelle sanction aurait des conséquences.",
                 "Le ministre a remercié son homologue pour son accueil."]
    probs, _ = clf.predict_proba(sentences)
    assert probs.shape == (2, 5)
    for pred, p in zip(clf.predict(sentences), probs):
        assert list(pred.probabilities) == FIVE
        assert pred.labels == [l for l, on in zip(FIVE, decide(p, clf.thresholds)) if on]
    doc = tmp_path / "doc.txt"
    doc.write_text(" ".join(sentences), encoding="utf-8")
    out = tmp_path / "rows.csv"
    assert main(["score", str(result.output), str(doc), "--out", str(out), "--html", str(tmp_path / "html"),
                 "--quiet"]) == 0
    from diplostance.outputs import read_rows

    rows = read_rows(out)
    assert len(rows) == 2 and [k for k in rows[0] if k.startswith("p_")] == [f"p_{l}" for l in FIVE]
    assert rows[0]["p_threat"] == pytest.approx(float(probs[0][4]), abs=1e-5)
    page = next((tmp_path / "html").glob("*.html")).read_text(encoding="utf-8")
    assert "threat" in page


def test_five_labels_evaluate(five_label_model, tmp_path):
    from diplostance.evaluate import evaluate_model

    result, root = five_label_model
    report = evaluate_model(result.output, data=str(root / "test.jsonl"), out_dir=tmp_path / "ev", baseline=True)
    assert set(report.metrics["per_label"]) == set(FIVE) and "F1 threat" in report.summary()


def test_a_corpus_label_the_recipe_does_not_name_is_refused(tmp_path):
    from diplostance.corpus import CorpusError
    from diplostance.train import load_data

    _five_label_split(DATA / "sentences" / "train.jsonl", tmp_path / "train.jsonl", 400)
    config = tiny_config(**{"data.train": tmp_path / "train.jsonl"})
    with pytest.raises(CorpusError, match=r"unknown label\(s\) \['threat'\].*\[data\] labels = \[\.\.\.\]"):
        load_data(config)


def test_a_recipe_label_set_is_checked():
    from diplostance.config import ConfigError

    with pytest.raises(ConfigError, match="data.labels: a label set is a list of distinct"):
        tiny_config(**{"data.labels": '["support", "support"]'})
    with pytest.raises(ConfigError, match="data.labels"):
        tiny_config(**{"data.labels": '["none"]'})


def test_decide_is_float32_greater_or_equal():
    from diplostance.labels import LabelSet, decide

    assert decide(np.array([[0.5, 0.49999]]), [0.5, 0.5]).tolist() == [[True, False]]
    five = LabelSet.of(FIVE)
    assert five.primary(["threat", "greeting"]) == "greeting" and five.primary(["threat"]) == "threat"
