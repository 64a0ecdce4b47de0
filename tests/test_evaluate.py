import json

from diplostance.hardware import cpu_name
from diplostance.cli import main
from diplostance.evaluate import evaluate_baseline, evaluate_model
from diplostance.model_dir import read_meta

from conftest import ROOT


def test_evaluate_writes_metrics_figures_errors_and_baseline(tiny_model, tmp_path):
    result = evaluate_model(tiny_model.output, split="test", out_dir=tmp_path / "ev")
    out = tmp_path / "ev"
    for name in ("metrics.json", "report.md", "errors.jsonl", "confusion_matrix.png", "pr_curves.png",
                 "reliability.png"):
        assert (out / name).exists(), name
    data = json.loads((out / "metrics.json").read_text())
    m = data["metrics"]
    assert set(m["per_label"]) == {"commitment", "support", "opposition", "greeting"}
    for key in ("micro_f1", "macro_f1", "exact_match", "none_f1"):
        assert 0.0 <= m[key] <= 1.0
    assert len(m["primary_confusion"]["matrix"]) == 5
    assert sum(map(sum, m["primary_confusion"]["matrix"])) == m["n"]
    assert data["baseline"]["macro_f1"] > 0  # the baseline, side by side
    report = (out / "report.md").read_text()
    assert "| model | baseline (TF-IDF + LR) |" in report and "![pr_curves.png]" in report
    meta = read_meta(tiny_model.output)  # which model, trained where: results differ by hardware
    assert f"Model trained {meta.created} on {cpu_name()}." in report
    assert data["model_trained"] == f"{meta.created} on {cpu_name()}"
    errors = [json.loads(l) for l in (out / "errors.jsonl").read_text().splitlines()]
    assert all(e["gold"] != e["predicted"] for e in errors)
    assert all(set(e["probabilities"]) == {"commitment", "support", "opposition", "greeting"} for e in errors)
    assert "macro F1" in result.summary()
    # uncertainty: intervals, the paired comparison with the baseline, breakdowns, what misses became
    u = m["uncertainty"]
    lo, hi = u["intervals"]["macro_f1"]
    assert lo <= m["macro_f1"] <= hi and "95% interval" in result.summary()
    assert set(u["versus_baseline"]) == {"difference", "interval", "wins", "loses"}
    assert "the baseline (macro-F1" in result.summary()
    assert u["by_style"] and all(r["n"] >= 20 for r in u["by_style"].values()) and "R14" in u["by_rule"]
    assert set(u["confusion"]) == set(m["per_label"])
    for heading in ("## Uncertainty", "## What each label's misses became", "## By source style", "## By guideline rule"):
        assert heading in report, heading
    assert "decisions" not in data["baseline"]


def test_evaluate_on_a_data_file_and_cli(tiny_model, tmp_path, capsys):
    data = tmp_path / "mine.jsonl"
    data.write_text('{"text": "Le Canada condamne fermement les frappes.", "labels": ["opposition"]}\n'
                    '{"text": "La rencontre a eu lieu au palais.", "labels": []}\n', encoding="utf-8")
    code = main(["evaluate", str(tiny_model.output), "--data", str(data), "--out", str(tmp_path / "e2"),
                 "--no-baseline"])
    assert code == 0
    assert json.loads((tmp_path / "e2" / "metrics.json").read_text())["metrics"]["n"] == 2
    assert "reports written to" in capsys.readouterr().out


def test_baseline_command(tmp_path):
    result = evaluate_baseline(str(ROOT / "training" / "tiny.toml"), split="dev", out_dir=tmp_path / "b")
    assert result.metrics["macro_f1"] > 0.3
    assert (tmp_path / "b" / "report.md").exists()
