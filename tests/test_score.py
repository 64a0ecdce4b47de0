"""End-to-end scoring: files in, rows out, offsets, formats, bad inputs, resume after a kill."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from diplostance.cli import main
from diplostance.outputs import read_rows

from conftest import DATA, ROOT


def corpus_documents(split="test", n=6):
    rows = [json.loads(l) for l in (DATA / "documents" / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]
    return rows[:n]


@pytest.fixture()
def readouts(tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    docs = corpus_documents()
    for i, doc in enumerate(docs):
        target = folder / ("sub" if i % 2 else "") / f"{doc['id']}.txt"
        target.write_text(doc["text"], encoding="utf-8")
    return folder, docs


def test_score_folder_to_jsonl_offsets_slice_back(tiny_model, readouts, tmp_path, capsys):
    folder, docs = readouts
    out = tmp_path / "out.jsonl"
    summary = tmp_path / "summary.json"
    code = main(["score", str(tiny_model.output), str(folder), "--out", str(out), "--summary", str(summary), "--quiet"])
    assert code == 0
    rows = read_rows(out)
    texts = {f"{d['id']}.txt": d["text"] for d in docs}
    by_doc = {}
    for row in rows:
        name = row["doc_id"].split("/")[-1]
        text = texts[name]
        assert text[row["start"]:row["end"]] == row["text"]
        assert row["primary"] in ("opposition", "commitment", "support", "greeting", "none")
        assert set(row["labels"]) <= {"commitment", "support", "opposition", "greeting"}
        assert all(0.0 <= row[f"p_{l}"] <= 1.0 for l in ("commitment", "support", "opposition", "greeting"))
        assert row["model"] == "tiny"
        by_doc.setdefault(row["doc_id"], []).append(row)
    assert len(by_doc) == len(docs)  # nothing dropped
    # folders are read recursively in a stable (sorted path) order
    assert list(by_doc) == sorted(by_doc)
    s = json.loads(summary.read_text())
    assert s["documents_scored"] == len(docs) and s["failures"] == []
    any_doc = next(iter(s["documents"].values()))
    assert set(any_doc["counts"]) == {"commitment", "support", "opposition", "greeting", "none"}


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_output_formats_round_trip(tiny_model, readouts, tmp_path, suffix):
    folder, _ = readouts
    ref = tmp_path / "ref.jsonl"
    assert main(["score", str(tiny_model.output), str(folder), "--out", str(ref), "--quiet"]) == 0
    out = tmp_path / f"out{suffix}"
    assert main(["score", str(tiny_model.output), str(folder), "--out", str(out), "--quiet"]) == 0
    a, b = read_rows(ref), read_rows(out)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x["text"] == y["text"] and x["labels"] == list(y["labels"]) and x["start"] == y["start"]
        assert x["p_support"] == pytest.approx(y["p_support"], abs=1e-6)


def test_jsonl_and_csv_inputs_and_stdin(tiny_model, tmp_path, capsys):
    docs = corpus_documents(n=2)
    table = tmp_path / "docs.jsonl"
    table.write_text("".join(json.dumps({"ref": d["id"], "body": d["text"]}, ensure_ascii=False) + "\n" for d in docs))
    code = main(["score", str(tiny_model.output), str(table), "--id-field", "ref", "--text-field", "body", "--quiet"])
    assert code == 0
    rows = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert {r["doc_id"] for r in rows} == {d["id"] for d in docs}
    import csv

    with open(tmp_path / "docs.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "text"])
        w.writerow(["a", docs[0]["text"]])
    assert main(["score", str(tiny_model.output), str(tmp_path / "docs.csv"), "--quiet"]) == 0
    assert all(json.loads(l)["doc_id"] == "a" for l in capsys.readouterr().out.splitlines())


def test_bad_inputs_are_reported_and_the_rest_is_scored(tiny_model, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a_good.txt").write_text("Le Canada condamne fermement les frappes. La France salue l'accord.")
    (folder / "b_empty.txt").write_text("  \n")
    (folder / "c_binary.txt").write_bytes(b"\x00\x01\x02PNG")
    (folder / "d_cp1252.txt").write_bytes("Le Sénégal salue l’accord conclu à Dakar.".encode("cp1252"))
    (folder / "e_image.png").write_bytes(b"\x89PNG")
    out, summary = tmp_path / "out.jsonl", tmp_path / "s.json"
    code = main(["score", str(tiny_model.output), str(folder), "--out", str(out), "--summary", str(summary), "--quiet"])
    assert code == 1  # some inputs failed
    err = capsys.readouterr().err
    assert "b_empty.txt: empty document" in err
    assert "c_binary.txt: binary file" in err
    assert "d_cp1252.txt: not valid UTF-8" in err and "read as cp1252" in err
    assert "e_image.png: skipped: unsupported file type" in err
    rows = read_rows(out)
    assert {r["doc_id"] for r in rows} == {"a_good.txt", "d_cp1252.txt"}
    assert any("Sénégal salue l’accord" in r["text"] for r in rows)
    failures = json.loads(summary.read_text())["failures"]
    assert {os.path.basename(f["source"]) for f in failures} == {"b_empty.txt", "c_binary.txt", "e_image.png"}


def test_duplicate_ids_in_a_table_are_reported(tiny_model, tmp_path, capsys):
    table = tmp_path / "t.jsonl"
    table.write_text('{"id": "x", "text": "La Chine salue le Kenya."}\n{"id": "x", "text": "Autre texte."}\n')
    assert main(["score", str(tiny_model.output), str(table), "--quiet"]) == 1
    assert "t.jsonl:2: duplicate id 'x' (first on line 1)" in capsys.readouterr().err


def test_never_writes_over_an_input_or_an_existing_output(tiny_model, readouts, tmp_path, capsys):
    folder, _ = readouts
    target = next(folder.glob("*.txt"))
    before = target.read_bytes()
    assert main(["score", str(tiny_model.output), str(folder), "--out", str(target), "--quiet"]) == 2
    assert "refusing to write over an input" in capsys.readouterr().err
    assert target.read_bytes() == before
    out = tmp_path / "o.jsonl"
    out.write_text("keep me\n")
    assert main(["score", str(tiny_model.output), str(folder), "--out", str(out), "--quiet"]) == 2
    assert "use --resume" in capsys.readouterr().err and out.read_text() == "keep me\n"


def test_long_sentences_are_scored_whole_and_flagged(tiny_model):
    from diplostance import StanceClassifier

    clf = StanceClassifier.load(tiny_model.output)
    long = " ".join(["La délégation a rappelé les étapes du dialogue engagé depuis plusieurs années"] * 12) + "."
    pred = clf.predict([long, "Le Mali salue l'accord."])
    assert pred[0].long and pred[0].windows > 1
    assert not pred[1].long


def test_python_api_scores_documents(tiny_model):
    from diplostance import StanceClassifier

    clf = StanceClassifier.load(tiny_model.output)
    docs = corpus_documents(n=3)
    out = list(clf.score((d["id"], d["text"]) for d in docs))
    assert [recs[0].doc_id for recs in out] == [d["id"] for d in docs]
    for doc, recs in zip(docs, out):
        assert all(doc["text"][r.start:r.end] == r.text for r in recs)


def test_resume_after_kill_gives_the_clean_output(tiny_model, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    docs = corpus_documents("train", n=1000)  # enough work to be killed half-way
    for i, doc in enumerate(docs):
        (folder / f"{i:04d}-{doc['id']}.txt").write_text(doc["text"], encoding="utf-8")
    clean = tmp_path / "clean.jsonl"
    assert main(["score", str(tiny_model.output), str(folder), "--out", str(clean), "--quiet", "--batch-size", "1"]) == 0
    out = tmp_path / "killed.jsonl"
    partial = tmp_path / ".killed.jsonl.partial.jsonl"
    cmd = [sys.executable, "-m", "diplostance.cli", "score", str(tiny_model.output), str(folder), "--out", str(out),
           "--quiet", "--batch-size", "1"]
    import torch

    # the same number of threads as this process (training set it): another reduction order
    # changes the 6th decimal of some probabilities
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())})
    deadline = time.time() + 120
    while time.time() < deadline:
        if partial.exists() and partial.read_text(encoding="utf-8").count("\n") > 100:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists() and partial.exists()
    from diplostance.outputs import read_rows

    done_before = {row["doc_id"] for row in read_rows(partial)}  # the kill may tear the last line
    assert 0 < len(done_before) < len(docs)
    assert main(["score", str(tiny_model.output), str(folder), "--out", str(out), "--resume", "--quiet",
                 "--batch-size", "1"]) == 0
    assert out.read_text(encoding="utf-8") == clean.read_text(encoding="utf-8")
    assert not partial.exists()


def test_score_batch_isolates_a_document_that_raises(tiny_model):
    """The engines' one function (``score_batch``): a document whose scoring raises is a failure
    naming the exception; the rest of its batch is scored, with the rows local scoring writes."""
    from types import SimpleNamespace

    from diplostance.classifier import StanceClassifier
    from diplostance.documents import Document
    from diplostance.score import score_batch, score_documents

    clf = StanceClassifier.load(tiny_model.output)
    docs = [Document("a", "Le Canada condamne fermement ces frappes. Il appelle au calme.", "a.txt"),
            Document("b", "BOOM. Rien ne va plus.", "b.txt"),
            Document("c", "Les deux parties sont convenues d'ouvrir une ligne aérienne directe.", "c.txt")]
    expected = [row for item in score_documents(clf, [docs[0], docs[2]]) for row in item.rows]
    split = clf.splitter.split

    def boom(text):
        if "BOOM" in text:
            raise RuntimeError("the splitter broke")
        return split(text)

    clf.splitter = SimpleNamespace(split=boom)
    rows, failures = score_batch(clf, docs)
    assert [(f.id, f.source) for f in failures] == [("b", "b.txt")]
    assert "RuntimeError: the splitter broke" in failures[0].reason
    assert [(r["doc_id"], r["sentence_index"], r["text"]) for r in rows] == \
        [(r["doc_id"], r["sentence_index"], r["text"]) for r in expected]
    assert all(abs(r[k] - e[k]) <= 1e-6 for r, e in zip(rows, expected) for k in r if k.startswith("p_"))
