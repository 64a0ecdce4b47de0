"""What a user expects of the commands and outputs (issue 25, D): one vocabulary on every verb,
commands that work from any folder, a progress total, outputs written as they scale, and a
model card that says what the model is."""
import json
import os

import pytest

from conftest import ROOT


def _verbs(parser):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                children = list(_verbs(sub))
                yield from children or [(name, sub)]


def test_every_verb_takes_quiet_and_verbose():
    from diplostance.cli import build_parser

    verbs = dict(_verbs(build_parser()))
    assert {"train", "score", "evaluate", "guard", "demo", "check", "build", "agreement", "transfer"} <= set(verbs)
    for name, sub in verbs.items():
        assert {"--quiet", "--verbose"} <= set(sub._option_string_actions), name
    train = verbs["train"]
    assert {"--out", "--output", "--json"} <= set(train._option_string_actions)


def test_train_json_prints_only_json(tmp_path, capsys):
    from diplostance.cli import main

    code = main(["train", str(ROOT / "training" / "tiny.toml"), "--out", str(tmp_path / "m"), "--json", "--quiet",
                 "--set", "data.limit=40", "--set", "training.epochs=1"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)  # nothing but the JSON document on standard output
    assert result["output"] == str(tmp_path / "m") and len(result["thresholds"]) == 4
    assert result["labels"] == ["commitment", "support", "opposition", "greeting"]


def test_recipe_paths_are_relative_to_the_recipe_file(tmp_path, monkeypatch):
    from diplostance.config import load_config

    monkeypatch.chdir(tmp_path)  # anywhere but the repository
    config = load_config(ROOT / "training" / "offline-e5.toml")
    assert config.data.train == str(ROOT / "data" / "sentences" / "train.jsonl")
    assert config.output == str(ROOT / "models" / "offline-e5")
    assert config.training.threads == 0  # every core of the machine
    # a --set value stays relative to where the command runs
    assert load_config(ROOT / "training" / "offline-e5.toml", ["data.dev=mine.jsonl"]).data.dev == "mine.jsonl"


def test_demo_finds_its_recipe_and_samples_from_anywhere():
    from diplostance import demo

    assert os.path.isabs(demo.RECIPE) and os.path.isfile(demo.RECIPE)
    assert os.path.isdir(demo.SAMPLES)


def test_a_missing_model_names_the_default_recipe(tmp_path, capsys):
    from diplostance.cli import main

    assert main(["score", str(tmp_path / "nothing"), str(ROOT / "data" / "samples"), "--quiet"]) == 2
    assert "training/offline-e5.toml" in capsys.readouterr().err


def test_the_progress_total_counts_documents(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from diplostance.documents import count_documents

    (tmp_path / "a.txt").write_text("Un.", encoding="utf-8")
    (tmp_path / "b.jsonl").write_text('{"id": 1, "text": "x"}\n\n{"id": 2, "text": "y"}\n', encoding="utf-8")
    (tmp_path / "c.csv").write_text('id,text\n1,"a, b"\n2,"c\nd"\n', encoding="utf-8")
    pq.write_table(pa.table({"id": [1, 2, 3], "text": ["a", "b", "c"]}), tmp_path / "d.parquet")
    assert count_documents([str(tmp_path)]) == 1 + 2 + 2 + 3
    assert count_documents(["-"]) is None  # standard input: no total, the bar still runs


def test_parquet_and_csv_are_written_in_batches_with_mixed_metadata(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    from diplostance import outputs

    monkeypatch.setattr(outputs, "PARQUET_BATCH", 3)
    rows = [{"doc_id": f"d{i}", "sentence_index": 0, "n_sentences": 1, "start": 0, "end": 2, "text": "=x",
             "labels": ["support"] if i % 2 else [], "primary": "support" if i % 2 else "none",
             "p_commitment": 0.1, "p_support": 0.9, "windows": 1, "long": False, "truncated": False,
             "model": "m", "model_version": "v", "source": "s", "meta": 1 if i % 2 else "un"}
            for i in range(8)]
    for suffix in (".parquet", ".csv"):
        out = tmp_path / f"rows{suffix}"
        writer = outputs.RowWriter(out)
        writer.start({"model": "m"})
        for row in rows:
            writer.write_document([row])
        writer.close()
        back = outputs.read_rows(out)
        assert [r["doc_id"] for r in back] == [r["doc_id"] for r in rows]
        assert [r["labels"] for r in back] == [r["labels"] for r in rows]
        assert [k for k in back[0] if k.startswith("p_")] == ["p_commitment", "p_support"]
        assert back[0]["text"] == "=x"  # the CSV neutralisation is taken off again
    table = pq.ParquetFile(tmp_path / "rows.parquet")
    assert table.metadata.num_row_groups == 3  # 8 rows in batches of 3
    assert table.schema_arrow.field("meta").type == "string"  # int and str mixed: JSON text


def test_the_model_card_names_the_base_and_no_placeholder(tiny_model):
    card = (tiny_model.output / "README.md").read_text(encoding="utf-8")
    assert "example.invalid" not in card and "http" not in card
    assert "- camembert" in card and "base_model:" not in card  # the offline model has no base checkpoint
    assert "AMD" in card or "Intel" in card or "CPU" in card or "x" in card  # the hardware that trained it


def test_the_card_of_an_e5_model_says_e5():
    from diplostance.model_card import render_card
    from diplostance.model_dir import ModelMeta

    meta = ModelMeta(name="offline-e5", config={"model": {"base": "e5-small"}},
                     metrics={"train_device": "AMD EPYC (avx2, fma)"})
    card = render_card("models/offline-e5", meta, None, "xlm-roberta")
    assert "base_model: intfloat/multilingual-e5-small" in card and "- xlm-roberta" in card
    assert "camembert" not in card.split("---")[1] and "AMD EPYC (avx2, fma)" in card


@pytest.mark.parametrize("verb", [["data", "check", "/nonexistent"], ["guard", "/nonexistent"]])
def test_quiet_keeps_the_error_line(verb, capsys):
    from diplostance.cli import main

    assert main([*verb, "--quiet"]) != 0
    assert "diplostance: error:" in capsys.readouterr().err
