import json

from diplostance.demo import run_demo

from conftest import ROOT, DATA


def test_demo_trains_if_needed_then_scores_the_samples(tmp_path, monkeypatch):
    recipe = tmp_path / "recipe.toml"
    text = (ROOT / "training" / "tiny.toml").read_text()
    text = text.replace('output = "../models/tiny"', f'output = "{tmp_path / "model"}"')
    text = text.replace('"../data/sentences/', f'"{DATA}/sentences/')
    assert str(DATA) in text and str(tmp_path / "model") in text
    recipe.write_text(text)
    samples = tmp_path / "samples"
    samples.mkdir()
    (samples / "a.txt").write_text("Le Canada condamne fermement les frappes. La France salue l'accord.", encoding="utf-8")
    out = tmp_path / "outputs"
    assert run_demo(recipe=str(recipe), samples=str(samples), out=out) == 0
    assert (tmp_path / "model" / "diplostance.json").exists()
    rows = [json.loads(l) for l in (out / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and (out / "html" / "index.html").exists()
    assert json.loads((out / "summary.json").read_text())["documents_scored"] == 1
    # a second run reuses the trained model
    stamp = (tmp_path / "model" / "diplostance.json").stat().st_mtime
    assert run_demo(recipe=str(recipe), samples=str(samples), out=out) == 0
    assert (tmp_path / "model" / "diplostance.json").stat().st_mtime == stamp


def test_demo_command_names_a_missing_recipe(capsys):
    from diplostance.cli import main

    assert main(["demo", "--recipe", "training/no-such.toml"]) == 2
    assert "training/no-such.toml: no such recipe file" in capsys.readouterr().err
