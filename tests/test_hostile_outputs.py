"""Issue #25, data loss (items 1-8) and unclear failures (20, 21): each repro, and that nothing
that existed before changed or vanished."""
import errno
import json
import logging
import os
import shutil
import subprocess
import sys

import pytest

from diplostance.cli import main
from diplostance.outputs import RowWriter, read_rows

from conftest import DATA, ROOT, tiny_config

TINY = str(ROOT / "training" / "tiny.toml")
DATA_SETS = [x for s in ("train", "dev", "test") for x in ("--set", f"data.{s}={DATA / 'sentences' / f'{s}.jsonl'}")]


def snapshot(folder):
    """Every file under ``folder`` (hidden ones too) and its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [l for l in err.splitlines() if l.startswith("diplostance: error: ")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture()
def readouts(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    rows = [json.loads(l) for l in (DATA / "documents" / "test.jsonl").read_text(encoding="utf-8").splitlines()[:3]]
    for row in rows:
        (folder / f"{row['id']}.txt").write_text(row["text"], encoding="utf-8")
    return folder


@pytest.fixture()
def scored(tiny_model, readouts, tmp_path):
    """A good finished output of the readouts."""
    out = tmp_path / "good.jsonl"
    assert main(["score", str(tiny_model.output), str(readouts), "--out", str(out), "--quiet"]) == 0
    return out


# --------------------------------------------------------------------------- A. train --force (1, 2)

def test_1_train_force_never_deletes_a_folder_that_is_not_a_model(tmp_path, capsys):
    folder = tmp_path / "v"
    folder.mkdir()
    (folder / "thesis.txt").write_text("keep")
    before = snapshot(tmp_path)
    code = main(["train", TINY, "--output", str(folder), "--force", "--set", "model.base=/nonexistent/x", *DATA_SETS])
    assert code == 2
    line = error_line(capsys)
    assert str(folder) in line and "replaces only a model directory" in line and "kept" in line
    assert snapshot(tmp_path) == before


def test_2_train_force_keeps_the_old_model_when_the_new_run_fails(tiny_model, tmp_path, capsys):
    model = tmp_path / "m"
    shutil.copytree(tiny_model.output, model)
    before = snapshot(tmp_path)
    code = main(["train", TINY, "--output", str(model), "--force", "--set", "model.base=/nonexistent/x", *DATA_SETS])
    assert code != 0
    assert "/nonexistent/x" in capsys.readouterr().err
    assert snapshot(tmp_path) == before  # the old model whole, and no half-built folder left beside it


def test_2_train_force_swaps_the_new_model_in_only_when_complete(tiny_model, tmp_path):
    from diplostance.model_dir import read_meta
    from diplostance.train import train

    model = tmp_path / "m"
    shutil.copytree(tiny_model.output, model)
    (model / "checkpoints").mkdir()  # the old run's leftovers go with it
    old = read_meta(model)
    result = train(tiny_config(**{"data.limit": 40, "training.epochs": 1}), output=model, force=True, quiet=True)
    assert result.output == model
    new = read_meta(model)
    assert new.config["data"]["limit"] == 40 and old.config["data"]["limit"] != 40
    assert not (model / "checkpoints").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no build or old folder left beside it


def test_2_an_interrupted_replacement_keeps_the_old_model_and_resumes(tiny_model, tmp_path, monkeypatch):
    import transformers
    from transformers import TrainerCallback

    from diplostance.model_dir import read_meta
    from diplostance.train import OutputExistsError, train

    class Stop(Exception):
        pass

    class Interrupt(TrainerCallback):
        def on_save(self, args, state, control, **kw):
            raise Stop()

    real = transformers.Trainer

    class InterruptingTrainer(real):
        def __init__(self, *a, **kw):
            super().__init__(*a, **{**kw, "callbacks": [*(kw.get("callbacks") or []), Interrupt()]})

    model = tmp_path / "m"
    shutil.copytree(tiny_model.output, model)
    before = snapshot(model)
    config = {"data.limit": 40, "training.epochs": 1}
    monkeypatch.setattr(transformers, "Trainer", InterruptingTrainer)
    with pytest.raises(Stop):
        train(tiny_config(**config), output=model, force=True, quiet=True)
    monkeypatch.setattr(transformers, "Trainer", real)
    assert snapshot(model) == before  # killed half-way: the old model is whole
    builds = [p for p in tmp_path.iterdir() if p.name.startswith(".m.training-")]
    assert len(builds) == 1 and (builds[0] / "checkpoints").exists()
    with pytest.raises(OutputExistsError, match="interrupted replacement of it is in .*--resume"):
        train(tiny_config(**config), output=model, quiet=True)
    train(tiny_config(**config), output=model, resume=True, quiet=True)
    assert read_meta(model).config["data"]["limit"] == 40
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


# --------------------------------------------------------------------------- A. score outputs (3-7)

def test_3_a_second_run_on_the_same_out_refuses_naming_the_first(tiny_model, readouts, scored, capsys):
    before = scored.read_bytes()
    running = RowWriter(scored, resume=True)  # what the first run holds while it writes
    try:
        code = main(["score", str(tiny_model.output), str(readouts), "--out", str(scored), "--resume", "--quiet"])
        assert code == 2
        line = error_line(capsys)
        assert f"another diplostance run (pid {os.getpid()}) is writing this output" in line
    finally:
        running.release()
    assert scored.read_bytes() == before
    assert sorted(p.name for p in scored.parent.iterdir() if p.name.startswith(".")) == []  # lock gone with its run


@pytest.mark.parametrize("case", ["summary-is-out", "summary-exists", "html-exists", "html-page-name"])
def test_4_summary_and_html_never_collide_nor_overwrite(tiny_model, readouts, scored, tmp_path, capsys, case):
    other = tmp_path / "kept.json"
    other.write_text("keep")
    html = tmp_path / "html"
    html.mkdir()
    (html / "index.html").write_text("keep")
    args = {"summary-is-out": ["--summary", str(scored), "--force"],
            "summary-exists": ["--summary", str(other)],
            "html-exists": ["--html", str(html)],
            "html-page-name": ["--html", str(tmp_path / "new"), "--summary", str(tmp_path / "new" / "index.html")]}[case]
    out = tmp_path / "o.jsonl"
    before = snapshot(tmp_path)
    code = main(["score", str(tiny_model.output), str(readouts), "--out", str(out if case != "summary-is-out" else scored),
                 "--quiet", *args])
    assert code == 2
    line = error_line(capsys)
    assert {"summary-is-out": "--out and --summary are the same path", "summary-exists": "--summary",
            "html-exists": "--html", "html-page-name": "inside the --html folder"}[case] in line
    if case in ("summary-exists", "html-exists"):
        assert "exists" in line and "--force" in line
    assert snapshot(tmp_path) == before


def test_4_force_replaces_summary_and_html(tiny_model, readouts, tmp_path):
    summary, html = tmp_path / "s.json", tmp_path / "html"
    html.mkdir()
    (html / "index.html").write_text("old")
    summary.write_text("old")
    assert main(["score", str(tiny_model.output), str(readouts), "--out", str(tmp_path / "o.csv"), "--summary",
                 str(summary), "--html", str(html), "--force", "--quiet"]) == 0
    assert json.loads(summary.read_text())["documents_scored"] == 3
    assert "Scored readouts" in (html / "index.html").read_text()


@pytest.mark.parametrize("bad", ["sampels", "notes.pdf"])
def test_5_a_typo_in_an_input_with_force_leaves_the_output_alone(tiny_model, readouts, scored, tmp_path, capsys, bad):
    if bad.endswith(".pdf"):
        (tmp_path / bad).write_bytes(b"%PDF-1.4")
    before = snapshot(tmp_path)
    code = main(["score", str(tiny_model.output), str(readouts), str(tmp_path / bad), "--out", str(scored),
                 "--force", "--quiet"])
    assert code == 2
    line = error_line(capsys)
    assert bad in line and ("no such file or folder" in line or "unknown input format '.pdf'" in line)
    assert snapshot(tmp_path) == before


def test_5_inputs_that_all_fail_do_not_empty_an_existing_output(tiny_model, scored, tmp_path, capsys):
    empty = tmp_path / "blank.txt"
    empty.write_text("  \n")
    before = scored.read_bytes()
    assert main(["score", str(tiny_model.output), str(empty), "--out", str(scored), "--force", "--quiet"]) == 1
    assert "kept as it was" in capsys.readouterr().err
    assert scored.read_bytes() == before
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


def _interrupted(scored, tmp_path, **change):
    """An interrupted run's partial: the first document of ``scored``, its rows changed by ``change``."""
    rows = read_rows(scored)
    first = [{**r, **change} for r in rows if r["doc_id"] == rows[0]["doc_id"]]
    out = tmp_path / "o.jsonl"
    writer = RowWriter(out)
    writer.start({"model": first[0]["model"], "model_version": first[0]["model_version"], "backend": "fp32"})
    writer.write_document(first)
    writer.release()
    return out


def test_6_resume_with_another_backend_refuses_naming_both(tiny_model, readouts, scored, tmp_path, capsys):
    out = _interrupted(scored, tmp_path)
    before = snapshot(tmp_path)
    code = main(["score", str(tiny_model.output), str(readouts), "--out", str(out), "--resume", "--backend",
                 "transformers", "--quiet"])
    assert code == 2
    line = error_line(capsys)
    assert "would mix two models' rows" in line and "backend fp32" in line and "backend transformers" in line
    assert snapshot(tmp_path) == before
    # with the same backend it continues, and gives the rows of an uninterrupted run
    assert main(["score", str(tiny_model.output), str(readouts), "--out", str(out), "--resume", "--quiet"]) == 0
    assert read_rows(out) == read_rows(scored)


def test_6_resume_with_another_model_refuses_naming_both(tiny_model, readouts, scored, tmp_path, capsys):
    out = _interrupted(scored, tmp_path, model_version="2020-01-01T00:00:00+00:00 (sha256:0123456789ab)")
    before = snapshot(tmp_path)
    code = main(["score", str(tiny_model.output), str(readouts), "--out", str(out), "--resume", "--quiet"])
    assert code == 2
    line = error_line(capsys)
    assert "version 2020-01-01T00:00:00+00:00 (sha256:0123456789ab)" in line
    assert f"version {read_rows(scored)[0]['model_version']}" in line and "--force" in line
    assert snapshot(tmp_path) == before


def test_7_an_interrupted_partial_is_not_discarded_without_resume_or_force(tiny_model, readouts, scored, tmp_path,
                                                                            capsys):
    out = _interrupted(scored, tmp_path)
    before = snapshot(tmp_path)
    assert main(["score", str(tiny_model.output), str(readouts), "--out", str(out), "--quiet"]) == 2
    line = error_line(capsys)
    assert "interrupted run" in line and "--resume" in line and "--force" in line
    assert snapshot(tmp_path) == before
    assert main(["score", str(tiny_model.output), str(readouts), "--out", str(out), "--force", "--quiet"]) == 0
    assert read_rows(out) == read_rows(scored)
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


# --------------------------------------------------------------------------- A. evaluate (8)

def test_8_evaluate_does_not_overwrite_a_report_without_force(tiny_model, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    report = tmp_path / "evaluate" / "tiny"
    report.mkdir(parents=True)
    (report / "metrics.json").write_text("committed")
    (report / "report.md").write_text("committed")
    before = snapshot(tmp_path)
    assert main(["evaluate", str(tiny_model.output), "--no-baseline"]) == 2
    line = error_line(capsys)
    assert str(report) in line or "evaluate/tiny" in line
    assert "holds a report already" in line and "--force" in line
    assert main(["baseline", "--config", TINY, "--out", str(report)]) == 2
    assert "holds a report already" in error_line(capsys)
    assert snapshot(tmp_path) == before
    data = tmp_path / "two.jsonl"
    data.write_text('{"text": "Le Canada condamne les frappes.", "labels": ["opposition"]}\n'
                    '{"text": "La rencontre a eu lieu.", "labels": []}\n', encoding="utf-8")
    assert main(["evaluate", str(tiny_model.output), "--data", str(data), "--no-baseline", "--force"]) == 0
    assert json.loads((report / "metrics.json").read_text())["metrics"]["n"] == 2


# --------------------------------------------------------------------------- C. checkpoints (20)

def _checkpoint(folder, step, truncate=False):
    from safetensors.numpy import save_file
    import numpy as np

    ckpt = folder / f"checkpoint-{step}"
    ckpt.mkdir(parents=True)
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    save_file({"w": np.zeros((64, 64), dtype=np.float32)}, str(ckpt / "model.safetensors"))
    for name in ("optimizer.pt", "scheduler.pt"):
        (ckpt / name).write_bytes(b"x" * 16)
    if truncate:
        data = (ckpt / "model.safetensors").read_bytes()
        (ckpt / "model.safetensors").write_bytes(data[: len(data) // 2])
    return ckpt


@pytest.mark.parametrize("damage", ["weights", "state", "optimizer"])
def test_20_resume_skips_a_truncated_newest_checkpoint_and_says_so(tmp_path, caplog, damage):
    from diplostance.train import _last_checkpoint

    good = _checkpoint(tmp_path, 10)
    bad = _checkpoint(tmp_path, 20, truncate=damage == "weights")
    if damage == "state":
        (bad / "trainer_state.json").write_text('{"global_st')
    elif damage == "optimizer":
        (bad / "optimizer.pt").unlink()
    with caplog.at_level(logging.WARNING, logger="diplostance.train"):
        assert _last_checkpoint(tmp_path) == good
    assert "checkpoint-20: skipped, not a whole checkpoint" in caplog.text
    assert {"weights": "truncated", "state": "trainer_state.json", "optimizer": "optimizer.pt"}[damage] in caplog.text
    assert bad.exists()  # kept: skipping is not deleting


def test_20_no_whole_checkpoint_starts_again_and_says_so(tmp_path, caplog):
    from diplostance.train import _last_checkpoint

    _checkpoint(tmp_path, 5, truncate=True)
    with caplog.at_level(logging.WARNING, logger="diplostance.train"):
        assert _last_checkpoint(tmp_path) is None
    assert "starts again from the beginning" in caplog.text


# --------------------------------------------------------------------------- C. clear failures (21)

@pytest.mark.parametrize("value", ["0", "-5", "many"])
def test_21_batch_size_must_be_a_positive_whole_number(tiny_model, readouts, capsys, value):
    with pytest.raises(SystemExit) as exc:
        main(["score", str(tiny_model.output), str(readouts), "--batch-size", value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--batch-size" in err and "expected a whole number" in err and "Traceback" not in err


def test_21_an_output_folder_that_cannot_be_written_is_named(tiny_model, readouts, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("keep")
    code = main(["score", str(tiny_model.output), str(readouts), "--out", str(blocker / "o.jsonl"), "--quiet"])
    assert code == 2
    line = error_line(capsys)
    assert "cannot write the output here" in line and str(blocker) in line
    assert blocker.read_text() == "keep"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_21_a_read_only_folder_is_named(tiny_model, readouts, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert main(["score", str(tiny_model.output), str(readouts), "--out", str(ro / "o.jsonl"), "--quiet"]) == 2
        line = error_line(capsys)
        assert str(ro) in line and "Permission denied" in line
    finally:
        ro.chmod(0o755)


def test_21_a_full_disk_keeps_the_rows_written_and_says_resume(tmp_path):
    from diplostance.outputs import OutputError

    writer = RowWriter(tmp_path / "o.jsonl")
    writer.start({"model": "m"})
    writer._file.close()
    writer._file = open("/dev/full", "w", encoding="utf-8")  # every write: ENOSPC
    with pytest.raises(OutputError, match="No space left on device.*--resume") as exc:
        writer.write_document([{"doc_id": "a", "sentence_index": 0, "n_sentences": 1}])
    assert exc.value.__cause__.errno == errno.ENOSPC
    writer.release()
    assert (tmp_path / ".o.jsonl.partial.jsonl").exists()


def test_21_verbose_shows_the_traceback_and_only_then(tiny_model, readouts, tmp_path, capsys):
    missing = str(tmp_path / "missing")
    assert main(["score", str(tiny_model.output), missing, "--quiet"]) == 2
    assert "no such file or folder" in error_line(capsys)
    assert main(["score", str(tiny_model.output), missing, "--quiet", "--verbose"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().splitlines()[-1].startswith("diplostance: error: ")
    assert main(["--verbose", "score", str(tiny_model.output), missing, "--quiet"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_21_a_closed_pipe_on_stdout_ends_quietly(tiny_model, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    lines = (DATA / "documents" / "train.jsonl").read_text(encoding="utf-8").splitlines()[:60]
    for i, line in enumerate(lines):  # far more rows than a pipe holds
        (folder / f"{i:03d}.txt").write_text(json.loads(line)["text"], encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "diplostance.cli", "score", str(tiny_model.output), str(folder),
                             "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    first = proc.stdout.readline()
    proc.stdout.close()  # what `| head -1` does
    err = proc.stderr.read().decode()
    code = proc.wait(timeout=120)
    assert json.loads(first)["doc_id"] == "000.txt"
    assert err == "" and code == 141
