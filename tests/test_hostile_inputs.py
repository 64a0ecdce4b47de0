"""Hostile and faulty inputs (issue #25, items 9-19 and metadata pass-through): each repro asserts
the exit code, the message's key words, and that no file that existed changed or vanished."""
import csv
import json
import shutil
import struct

import pytest

from diplostance.cli import main
from diplostance.documents import decode, iter_documents
from diplostance.outputs import read_rows

from conftest import ROOT

GOOD = "Le Canada condamne fermement les frappes. La France salue l'accord conclu à Dakar."


def snapshot(root):
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def unchanged(before, root, new=()):
    """Every file of ``before`` is still there, byte for byte; nothing appeared but ``new``."""
    after = snapshot(root)
    assert {p: after.get(p) for p in before} == before
    assert set(after) - set(before) <= set(new), sorted(set(after) - set(before))


@pytest.fixture()
def model(tiny_model, tmp_path):
    """A copy of the tiny model, free to corrupt."""
    return shutil.copytree(tiny_model.output, tmp_path / "model")


@pytest.fixture()
def readout(tmp_path):
    path = tmp_path / "in" / "a.txt"
    path.parent.mkdir()
    path.write_text(GOOD, encoding="utf-8")
    return path


def score(capsys, *args):
    code = main(["score", *map(str, args), "--quiet"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def edit_json(path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


# --------------------------------------------------------------------------- 9, 12: model directories

@pytest.mark.parametrize("damage, words", [
    (lambda m: [(m / f).unlink() for f in ("tokenizer.json", "sentencepiece.bpe.model")],
     ["incomplete model directory", "tokenizer vocabulary", "tokenizer.json"]),
    (lambda m: [(m / f).unlink() for f in ("tokenizer.json", "sentencepiece.bpe.model")] + [(m / "vocab.txt").write_text("")],
     ["reads every word", "<unk>"]),
    (lambda m: edit_json(m / "diplostance.json", thresholds=[None, 0.5, 0.5, 0.5]),
     ["diplostance.json", "thresholds[0]", "None", "from 0 to 1"]),
    (lambda m: edit_json(m / "diplostance.json", thresholds=[float("nan"), 0.5, 0.5, 0.5]),  # NaN in the file
     ["thresholds[0]", "nan"]),
    (lambda m: edit_json(m / "diplostance.json", thresholds=[0.5, "0.5", 0.5, 0.5]), ["thresholds[1]", "'0.5'"]),
    (lambda m: edit_json(m / "diplostance.json", thresholds=[0.5, 0.5, 1.5, 0.5]), ["thresholds[2]", "1.5"]),
    (lambda m: edit_json(m / "diplostance.json", thresholds=[0.5, 0.5, 0.5]), ["diplostance.json", "thresholds 3"]),
    (lambda m: edit_json(m / "diplostance.json", max_length=4096), ["max_length is 4096", "from 8 to 64"]),
    (lambda m: edit_json(m / "diplostance.json", max_length=4), ["max_length is 4"]),
    (lambda m: edit_json(m / "diplostance.json", max_length="64"), ["max_length is '64'"]),
    (lambda m: edit_json(m / "config.json", id2label={"0": "support", "1": "commitment", "2": "opposition",
                                                       "3": "greeting"}),
     ["config.json", "id2label", "different models"]),
    (lambda m: (m / "model.safetensors").write_bytes(bytes(range(256)) * 16),
     ["model.safetensors", "not a valid safetensors file", "header length"]),
    (lambda m: (m / "model.safetensors").write_bytes(struct.pack("<Q", 2 ** 62) + (m / "model.safetensors").read_bytes()[8:]),
     ["model.safetensors", "header length 4611686018427387904"]),
    (lambda m: (m / "model.safetensors").write_bytes((m / "model.safetensors").read_bytes()[:5000]),
     ["model.safetensors", "cut short"]),
], ids=["no-tokenizer-files", "empty-vocab", "threshold-null", "threshold-nan", "threshold-str", "threshold-1.5",
        "three-thresholds", "max-length-huge", "max-length-small", "max-length-str", "id2label", "random-safetensors",
        "huge-header", "truncated-safetensors"])
def test_a_damaged_model_directory_is_refused_by_name(model, readout, tmp_path, capsys, damage, words):
    damage(model)
    before = snapshot(tmp_path)
    code, out, err = score(capsys, model, readout, "--out", tmp_path / "o.jsonl")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, (word, err)
    unchanged(before, tmp_path, {tmp_path / ".o.jsonl.partial.jsonl"})
    assert not (tmp_path / "o.jsonl").exists()


def test_the_intact_model_and_a_sentencepiece_only_tokenizer_still_load(model, readout, capsys):
    (model / "tokenizer.json").unlink()  # the slow tokenizer from sentencepiece.bpe.model is a full tokenizer
    code, out, _ = score(capsys, model, readout)
    assert code == 0 and len(out.splitlines()) == 2


# --------------------------------------------------------------------------- 10: a bare string

def test_a_bare_string_is_one_sentence_or_one_document(tiny_model):
    from diplostance import StanceClassifier

    clf = StanceClassifier.load(tiny_model.output)
    preds = clf.predict("Bonjour.")
    assert len(preds) == 1 and preds[0].text == "Bonjour."
    docs = list(clf.score(GOOD))
    assert len(docs) == 1 and docs[0][0].doc_id == "0" and len(docs[0]) == 2
    assert [len(d) for d in clf.score([GOOD, "Le Mali salue l'accord."])] == [2, 1]


# --------------------------------------------------------------------------- 11: recipe values

@pytest.mark.parametrize("setting", ["training.epochs=-1", "data.limit=-5", "training.batch_size=0",
                                     "training.batch_size=-5", "model.num_heads=0", "training.learning_rate=0",
                                     "training.warmup_ratio=1.0", "model.dropout=1.5", "training.threads=-1",
                                     "model.num_layers=0", "training.learning_rate=nan"])
def test_recipe_values_out_of_range_are_refused_by_key(tmp_path, capsys, setting):
    out = tmp_path / "m"
    code = main(["train", str(ROOT / "training" / "tiny.toml"), "--set", setting, "--output", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and setting.split("=")[0] in err and "expected a number" in err, err
    assert not out.exists()


# --------------------------------------------------------------------------- 13: data check

def test_data_check_reports_an_empty_corpus(tmp_path, capsys):
    for kind in ("documents", "sentences"):
        (tmp_path / kind).mkdir()
        for split in ("train", "dev", "test"):
            (tmp_path / kind / f"{split}.jsonl").write_text("")
    assert main(["data", "check", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "no documents" in err and "no sentences" in err and "6 problem(s)" in err


def test_data_check_reports_overlaps_gaps_and_bad_types(tmp_path, capsys):
    text = "La Chine salue le Kenya. Les entretiens ont duré deux heures. Le Mali signe."
    for kind in ("documents", "sentences"):
        (tmp_path / kind).mkdir()
    sentences = [("La Chine salue le Kenya.", 0), ("Kenya. Les entretiens", 18), ("Le Mali signe.", 62)]
    for split in ("train", "dev", "test"):
        doc = f"{split}-d"
        (tmp_path / "documents" / f"{split}.jsonl").write_text(json.dumps({"id": doc, "text": text}) + "\n")
        rows = [{"id": f"{doc}-{i}", "doc_id": doc, "start": s, "end": s + len(t), "text": t, "labels": []}
                for i, (t, s) in enumerate(sentences)]
        rows.append({"id": f"{doc}-x", "doc_id": doc, "start": True, "end": 3, "text": 7, "labels": []})
        (tmp_path / "sentences" / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    before = snapshot(tmp_path)
    assert main(["data", "check", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "overlaps the previous sentence" in err
    assert "is in no sentence: 'ont duré deux heures.'" in err
    assert "got text=7, start=True" in err
    unchanged(before, tmp_path)


# --------------------------------------------------------------------------- 14: encodings

def test_one_bad_byte_in_utf8_keeps_the_accents():
    raw = ("Le Sénégal salue l’accord conclu à Dakar. " * 20).encode("utf-8")
    raw = raw[:100] + b"\xff" + raw[100:]
    text, warning = decode(raw)
    assert "Sénégal" in text and "l’accord" in text and text.count("\ufffd") == 1
    assert "mostly UTF-8" in warning and "1 byte(s)" in warning and "offset 100" in warning


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1"])
def test_a_file_in_another_encoding_is_detected(encoding):
    source = "Le Sénégal salue l'accord conclu à Dakar; la délégation a été reçue à l'Élysée."
    text, warning = decode(source.encode(encoding))
    assert text == source
    assert "not valid UTF-8" in warning and "read as cp1252" in warning


def test_short_cp1252_text_is_read_as_cp1252_not_a_look_alike():
    text, warning = decode("Le Sénégal salue l’accord.".encode("cp1252"))
    assert text == "Le Sénégal salue l’accord." and "cp1252" in warning


def test_an_encoding_warning_reaches_the_user(tiny_model, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.txt").write_bytes(GOOD.encode("utf-8").replace(b"Dakar", b"Dak\xe0r"))
    code, out, err = score(capsys, tiny_model.output, folder)
    assert code == 0 and "a.txt: mostly UTF-8" in err
    assert "conclu à Dak\ufffdr" in out


# --------------------------------------------------------------------------- 15: CSV in and out

def test_csv_rows_with_unquoted_commas_are_failures_by_line(tiny_model, tmp_path, capsys):
    table = tmp_path / "docs.csv"
    table.write_text('id,text,date\na,"La Chine salue le Kenya, et le Mali.",2024-01-01\n'
                     "b,Le Canada condamne, fermement, les frappes.,2024-01-02\nc,Le Mali signe.\n", encoding="utf-8")
    before = snapshot(tmp_path)
    summary = tmp_path / "s.json"
    code, out, err = score(capsys, tiny_model.output, table, "--summary", summary)
    assert code == 1
    assert "docs.csv:3: 5 fields, but the header has 3" in err and "Quote such fields" in err
    assert "docs.csv:4: 2 fields, but the header has 3" in err
    assert {json.loads(line)["doc_id"] for line in out.splitlines()} == {"a"}
    unchanged(before, tmp_path, {summary})


def test_csv_output_neutralises_formulas_and_reads_back(tiny_model, tmp_path, capsys):
    table = tmp_path / "docs.jsonl"
    cells = ['=HYPERLINK("http://x.example","clic") Le Canada condamne.', "+33 Le Mali signe.",
             "-Le Tchad appuie.", "@SUM(A1) La France salue.", "'Nous sommes prêts', dit-il."]
    table.write_text("".join(json.dumps({"id": f"=cmd{i}", "text": t, "note": "=1+1"}) + "\n"
                             for i, t in enumerate(cells)), encoding="utf-8")
    out = tmp_path / "o.csv"
    code, _, _ = score(capsys, tiny_model.output, table, "--out", out)
    assert code == 0
    with open(out, newline="", encoding="utf-8") as f:
        raw = list(csv.DictReader(f))
    for row in raw:
        for key in ("text", "doc_id", "note"):
            assert not row[key].startswith(("=", "+", "-", "@")), row[key]
    rows = read_rows(out)
    assert [r["text"] for r in rows] == cells and rows[0]["doc_id"] == "=cmd0" and rows[0]["note"] == "=1+1"


# --------------------------------------------------------------------------- 16, 17: document ids

def test_duplicate_ids_far_apart_in_a_table(tiny_model, tmp_path, capsys):
    rows = [{"id": str(i), "text": f"Le Mali salue l'accord numéro {i}."} for i in range(514)]  # > one chunk
    rows.append({"id": "3", "text": "Un autre document avec le même identifiant."})
    table = tmp_path / "t.jsonl"
    table.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    code, out, err = score(capsys, tiny_model.output, table)
    assert code == 1 and "t.jsonl:515: duplicate id '3' (first on line 4)" in err
    ids = [json.loads(line)["doc_id"] for line in out.splitlines()]
    assert len(ids) == len(set(ids)) == 514


def test_the_same_file_names_in_two_folders(tiny_model, tmp_path, capsys):
    for folder, text in (("2024", GOOD), ("2025", "Le Mali salue l'accord.")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "a.txt").write_text(text, encoding="utf-8")
    out = tmp_path / "o.jsonl"
    code, _, err = score(capsys, tiny_model.output, tmp_path / "2024", tmp_path / "2025", "--out", out)
    assert code == 0, err
    assert sorted({r["doc_id"] for r in read_rows(out)}) == ["2024/a.txt", "2025/a.txt"]


def test_two_tables_numbering_from_one(tiny_model, tmp_path, capsys):
    for name in ("a.jsonl", "b.jsonl"):
        (tmp_path / name).write_text("".join(json.dumps({"id": i, "text": f"Le Mali salue l'accord {name} {i}."}) + "\n"
                                             for i in (1, 2)), encoding="utf-8")
    out = tmp_path / "o.jsonl"
    code, _, err = score(capsys, tiny_model.output, tmp_path / "a.jsonl", tmp_path / "b.jsonl", "--out", out)
    assert code == 0, err
    assert [r["doc_id"] for r in read_rows(out)] == ["a.jsonl#1", "a.jsonl#2", "b.jsonl#1", "b.jsonl#2"]


def test_the_same_input_twice_is_scored_once(tiny_model, readout, capsys):
    code, out, err = score(capsys, tiny_model.output, readout, readout)
    assert code == 1 and "duplicate id 'a.txt'" in err
    assert {json.loads(line)["doc_id"] for line in out.splitlines()} == {"a.txt"}


def test_ids_are_documented_in_the_help(capsys):
    with pytest.raises(SystemExit):
        main(["score", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "relative to the common folder" in help_text and "a.jsonl#17" in help_text


# --------------------------------------------------------------------------- 18: a bad record

def test_a_lone_surrogate_fails_one_document_only(tiny_model, tmp_path, capsys):
    table = tmp_path / "t.jsonl"
    table.write_text('{"id": "a", "text": "La Chine salue le Kenya."}\n{"id": "b", "text": "Mauvais \\ud800 texte."}\n'
                     '{"id": "c\\udfff", "text": "Autre."}\n{"id": "d", "text": "Le Mali signe."}\n', encoding="utf-8")
    out, summary = tmp_path / "o.jsonl", tmp_path / "s.json"
    code, _, err = score(capsys, tiny_model.output, table, "--out", out, "--summary", summary)
    assert code == 1 and "t.jsonl:2: field 'text' holds a lone surrogate" in err and "t.jsonl:3: field 'id'" in err
    assert [r["doc_id"] for r in read_rows(out)] == ["a", "d"]
    failures = json.loads(summary.read_text(encoding="utf-8"))["failures"]
    assert [f["source"].rsplit(":", 1)[1] for f in failures] == ["2", "3"]


# --------------------------------------------------------------------------- 19: sizes

def test_dev_zero_is_a_failure_not_a_memory_exhaustion(tiny_model, readout, tmp_path, capsys):
    code, out, err = score(capsys, tiny_model.output, "/dev/zero", readout, "--max-doc-bytes", "100000")
    assert code == 1 and "/dev/zero: larger than the maximum document size (100,000 bytes)" in err
    (doc_id,) = {json.loads(line)["doc_id"] for line in out.splitlines()}
    assert doc_id.endswith("in/a.txt")  # relative to the common folder of /dev/zero and it: /


def test_a_document_over_the_size_limit_is_a_failure(tiny_model, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "big.txt").write_text(GOOD * 100, encoding="utf-8")
    (folder / "small.txt").write_text(GOOD, encoding="utf-8")
    (folder / "t.jsonl").write_text(json.dumps({"id": 1, "text": GOOD * 100}) + "\n", encoding="utf-8")
    code, out, err = score(capsys, tiny_model.output, folder, "--max-doc-bytes", "1000")
    assert code == 1 and f"big.txt: {len(GOOD.encode()) * 100:,} bytes, larger than the maximum document size (1,000 bytes)" in err
    assert "t.jsonl:1: text larger than the maximum document size" in err
    assert {json.loads(line)["doc_id"] for line in out.splitlines()} == {"small.txt"}
    with pytest.raises(SystemExit):
        main(["score", str(tiny_model.output), str(folder), "--max-doc-bytes", "0"])
    assert "--max-doc-bytes: expected a whole number of at least 1" in capsys.readouterr().err


def test_a_huge_sentence_is_scored_on_its_beginning_and_flagged(tiny_model, tmp_path, capsys, monkeypatch):
    import diplostance.classifier

    monkeypatch.setattr(diplostance.classifier, "MAX_SENTENCE_CHARS", 2000)
    path = tmp_path / "long.txt"
    path.write_text("La délégation a rappelé les étapes du dialogue " * 2000 + ".", encoding="utf-8")  # 94 kB
    code, out, err = score(capsys, tiny_model.output, path)
    assert code == 0, err
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert row["truncated"] and row["long"] and row["windows"] < 40
    assert row["end"] - row["start"] == len(row["text"]) > 90_000  # the row still holds the whole sentence


# --------------------------------------------------------------------------- D: metadata passes through

@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_input_metadata_reaches_every_output_format(tiny_model, tmp_path, capsys, suffix):
    import pyarrow as pa
    import pyarrow.parquet as pq

    docs = [{"id": "r1", "text": GOOD, "date": "2024-03-01", "source": "Élysée", "url": "https://x.example/1"},
            {"id": "r2", "text": "Le Mali salue l'accord.", "date": "2024-03-02", "source": "Xinhua",
             "url": "https://x.example/2"}]
    inputs = {"jsonl": tmp_path / "in.jsonl", "csv": tmp_path / "in.csv", "parquet": tmp_path / "in.parquet"}
    inputs["jsonl"].write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    with open(inputs["csv"], "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(docs[0]))
        writer.writeheader()
        writer.writerows(docs)
    pq.write_table(pa.Table.from_pylist(docs), inputs["parquet"])
    out = tmp_path / f"out{suffix}"
    code, _, err = score(capsys, tiny_model.output, *inputs.values(), "--out", out)
    assert code == 0, err
    rows = read_rows(out)
    assert len(rows) == 9  # three sentences from each input
    for row in rows:
        table, ident = row["doc_id"].split("#")
        doc = {d["id"]: d for d in docs}[ident]
        assert row["date"] == doc["date"] and row["url"] == doc["url"]
        assert row["meta_source"] == doc["source"] and row["source"].startswith(str(tmp_path / table))


def test_the_api_carries_metadata_too(tiny_model, tmp_path):
    from diplostance import StanceClassifier
    from diplostance.documents import Document

    clf = StanceClassifier.load(tiny_model.output)
    (records,) = list(clf.score([Document("x", GOOD, meta={"date": "2024-01-01"})]))
    assert records[0].meta == {"date": "2024-01-01"} and records[0].row()["date"] == "2024-01-01"
    table = tmp_path / "t.jsonl"
    table.write_text(json.dumps({"id": 1, "text": GOOD, "lang": "fr"}) + "\n", encoding="utf-8")
    (doc,) = list(iter_documents([str(table)]))
    assert doc.id == "1" and doc.meta == {"lang": "fr"}
