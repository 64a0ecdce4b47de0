"""Leave-one-style-group-out transfer: fold data, report, and resuming without retraining."""
from __future__ import annotations

import json

import pytest
from conftest import DATA, ROOT

from diplostance import transfer
from diplostance.hardware import cpu_name

GROUPS = {"asia": ("chinese_state_media", "vietnamese_media"), "russia": ("russian_ministry",)}


def test_fold_data_holds_out_every_sentence_of_the_group(tmp_path):
    sizes = transfer.fold_data(DATA, ("un", "eu"), tmp_path)
    rows = {name: [json.loads(l) for l in open(tmp_path / f"{name}.jsonl", encoding="utf-8")]
            for name in ("train", "dev", "test")}
    assert sizes == {name: len(r) for name, r in rows.items()} and sizes["test"] > 0
    assert {r["style"] for r in rows["test"]} == {"un", "eu"}
    assert not {r["style"] for r in rows["train"] + rows["dev"]} & {"un", "eu"}
    all_un_eu = sum(1 for s in ("train", "dev", "test") for l in open(DATA / "sentences" / f"{s}.jsonl")
                    if json.loads(l)["style"] in ("un", "eu"))
    assert sizes["test"] == all_un_eu  # from all three splits


@pytest.mark.slow
def test_transfer_report_and_resume(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = str(ROOT / "training" / "tiny.toml")
    results = transfer.run_transfer([recipe], GROUPS, data_dir=DATA, out_dir=tmp_path / "out", log=lambda m: None)
    assert {(r.system, r.group) for r in results} == {(s, g) for s in ("baseline", "tiny") for g in GROUPS}
    assert all(0 <= r.macro_f1 <= 1 and r.test > 0 for r in results)
    report = (tmp_path / "out" / "transfer.md").read_text(encoding="utf-8")
    assert "| baseline |" in report and "| tiny |" in report and "worst" in report
    assert all(r.device == cpu_name() for r in results)  # results depend on the hardware: it is recorded
    assert f"Trained: baseline, tiny on {cpu_name()}." in report
    assert (tmp_path / "out" / "transfer.png").stat().st_size > 1000
    assert not (tmp_path / "models" / "transfer" / "tiny").exists() or not any((tmp_path / "models" / "transfer" / "tiny").iterdir())

    # A second run reuses every saved fold: nothing is trained again.
    monkeypatch.setattr(transfer, "_fold_recipe", lambda *a, **k: pytest.fail("retrained a saved fold"))
    monkeypatch.setattr(transfer, "_fold_baseline", lambda *a, **k: pytest.fail("refitted a saved fold"))
    again = transfer.run_transfer([recipe], GROUPS, data_dir=DATA, out_dir=tmp_path / "out", log=lambda m: None)
    assert [r.macro_f1 for r in again] == [r.macro_f1 for r in results]
    # A changed recipe is a different system state: its folds run again.
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    changed = transfer.run_transfer([recipe], {"russia": GROUPS["russia"]}, data_dir=DATA, out_dir=tmp_path / "out",
                                    baseline=False, overrides=["training.seed=8"], log=lambda m: None)
    assert len(changed) == 1


def test_cli_refuses_unknown_groups(capsys):
    from diplostance.cli import main

    assert main(["transfer", "--groups", "mars"]) == 2
    assert "unknown group(s) ['mars']" in capsys.readouterr().err
