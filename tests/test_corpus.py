import json

import pytest

from diplostance.corpus import CorpusError, assemble, check_corpus, load_examples

from conftest import DATA


def write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def test_shipped_corpus_passes_the_validator():
    report = check_corpus(DATA)
    assert report.ok, "\n".join(map(str, report.problems[:20]))
    for split in ("train", "dev", "test"):
        assert report.stats[split]["sentences"] > 0
        for label in ("commitment", "support", "opposition", "greeting"):
            assert report.stats[split][label] > 0, (split, label)


def test_load_dataset_offline():
    import datasets

    ds = datasets.load_dataset(str(DATA))
    assert set(ds) == {"train", "dev", "test"}
    row = ds["dev"][0]
    assert isinstance(row["text"], str) and isinstance(row["labels"], list)
    docs = datasets.load_dataset(str(DATA), "documents")
    doc = {d["id"]: d["text"] for d in docs["dev"]}[row["doc_id"]]
    assert doc[row["start"]:row["end"]] == row["text"]


@pytest.mark.parametrize("row, message", [
    ({"text": "Le Mali salue l'accord.", "labels": ["praise"]}, r":1: unknown label\(s\) \['praise'\]"),
    ({"text": "", "labels": []}, r":1: missing or empty 'text'"),
    ({"labels": []}, r":1: missing or empty 'text'"),
    ({"text": "Une phrase."}, r":1: missing 'labels'"),
    ('{"text": "x", "labels": [', r":1: invalid JSON"),
])
def test_bad_rows_name_file_and_line(tmp_path, row, message):
    path = write(tmp_path / "bad.jsonl", [row])
    with pytest.raises(CorpusError, match=message):
        load_examples(path)


def test_duplicate_ids_and_conflicting_labels(tmp_path):
    path = write(tmp_path / "dup.jsonl", [{"id": "a", "text": "Le Mali salue l'accord.", "labels": ["support"]},
                                          {"id": "a", "text": "Autre phrase ici.", "labels": []}])
    with pytest.raises(CorpusError, match=r"dup.jsonl:2: duplicate id 'a' \(first on line 1\)"):
        load_examples(path)
    path = write(tmp_path / "conf.jsonl", [{"id": "a", "text": "Le Mali salue l'accord.", "labels": ["support"]},
                                           {"id": "b", "text": "Le Mali salue l’accord !", "labels": []}])
    with pytest.raises(CorpusError, match=r"conf.jsonl:2: conflicting labels"):
        load_examples(path)


def test_non_utf8_file_is_refused(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes('{"text": "Déclaration", "labels": []}\n'.encode("latin-1"))
    with pytest.raises(CorpusError, match=r"latin1.jsonl:1: not valid UTF-8"):
        load_examples(path)


def _mini_corpus(root, dev_text="Le Tchad appuie la médiation de l'Union africaine au Soudan voisin.",
                 offset_shift=0):
    docs = {"train": "La Chine salue les efforts du Kenya. Les entretiens ont duré deux heures.",
            "dev": dev_text, "test": "Le Canada condamne fermement les frappes."}
    for split, text in docs.items():
        (root / "documents").mkdir(parents=True, exist_ok=True)
        (root / "sentences").mkdir(parents=True, exist_ok=True)
        write(root / "documents" / f"{split}.jsonl", [{"id": f"d-{split}", "text": text}])
        rows, start = [], 0  # every sentence, so that the sentences cover the document
        for i, sentence in enumerate(text.split(". ")):
            sentence = sentence.rstrip(".") + "."
            rows.append({"id": f"d-{split}-{i}", "doc_id": f"d-{split}", "start": start + offset_shift,
                         "end": start + len(sentence) + offset_shift, "text": sentence,
                         "labels": ["support"] if i == 0 else []})
            start += len(sentence) + 1
        write(root / "sentences" / f"{split}.jsonl", rows)


def test_validator_finds_offsets_and_leakage(tmp_path):
    _mini_corpus(tmp_path / "ok")
    assert check_corpus(tmp_path / "ok").ok
    _mini_corpus(tmp_path / "shift", offset_shift=1)
    problems = [str(p) for p in check_corpus(tmp_path / "shift").problems]
    assert any("sentences/train.jsonl:1: offsets [1, 37) give" in p for p in problems), problems
    _mini_corpus(tmp_path / "leak", dev_text="La Chine salue les efforts du Kenya.")
    problems = [str(p) for p in check_corpus(tmp_path / "leak").problems]
    assert any("leakage" in p for p in problems), problems


def test_assemble_gives_offsets_that_slice_back():
    doc = {"sentences": [{"text": "Titre", "sep": "\n\n"}, {"text": "Première phrase.", "sep": ""},
                         {"text": "Deuxième\nphrase."}]}
    text, spans = assemble(doc)
    assert text == "Titre\n\nPremière phrase.Deuxième\nphrase."
    assert [text[a:b] for a, b in spans] == ["Titre", "Première phrase.", "Deuxième\nphrase."]


def _authored_doc(doc_id: str, style: str, version: int) -> dict:
    return {"doc_id": doc_id, "style": style, "source": "s", "date": "2025-01-01", "parties": ["A", "B"],
            "topic": "t", "corpus_version": version,
            "sentences": [{"text": f"Phrase {i} du document {doc_id}.", "labels": []} for i in range(3)]}


def test_new_corpus_versions_never_move_earlier_documents(tmp_path):
    from diplostance.corpus import build_corpus

    v1 = [_authored_doc(f"a-{i:03d}", style, 1) for i, style in enumerate(["x", "y"] * 10)]
    v2 = [_authored_doc(f"b-{i:03d}", style, 2) for i, style in enumerate(["x", "y", "z"] * 5)]
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_text("\n".join(json.dumps(d) for d in v1), encoding="utf-8")
    second.write_text("\n".join(json.dumps(d) for d in v2), encoding="utf-8")

    def splits(out):
        return {json.loads(l)["id"]: s for s in ("train", "dev", "test")
                for l in open(out / "documents" / f"{s}.jsonl", encoding="utf-8")}

    build_corpus([first], tmp_path / "v1")
    build_corpus([first, second], tmp_path / "v2")
    before, after = splits(tmp_path / "v1"), splits(tmp_path / "v2")
    assert {k: after[k] for k in before} == before
    assert {after[d["doc_id"]] for d in v2} == {"train", "dev", "test"}
    row = json.loads(open(tmp_path / "v2" / "sentences" / "train.jsonl", encoding="utf-8").readline())
    assert "corpus_version" in row


def test_adjudication_for_an_unknown_sentence_is_refused(tmp_path):
    from diplostance.corpus import CorpusError, build_corpus

    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps(_authored_doc("a-001", "x", 1)), encoding="utf-8")
    with pytest.raises(CorpusError, match="no authored document has.*a-009-01"):
        build_corpus([path], tmp_path / "out", adjudicated={"a-009-01": ["support"]})


def _problems(root) -> list[str]:
    return [str(p) for p in check_corpus(root).problems]


def _rewrite(path, change):
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    write(path, change(rows))


def test_overlapping_and_uncovered_spans_are_problems(tmp_path):
    _mini_corpus(tmp_path / "c")
    train = tmp_path / "c" / "sentences" / "train.jsonl"

    def overlap(rows):
        rows[1]["start"] -= 5
        doc = "La Chine salue les efforts du Kenya. Les entretiens ont duré deux heures."
        rows[1]["text"] = doc[rows[1]["start"]:rows[1]["end"]]
        return rows

    _rewrite(train, overlap)
    assert any("train.jsonl:2: sentence [32, 73) overlaps the previous sentence" in p
               for p in _problems(tmp_path / "c")), _problems(tmp_path / "c")
    _mini_corpus(tmp_path / "d")
    _rewrite(tmp_path / "d" / "sentences" / "train.jsonl", lambda rows: rows[:1])
    assert any("train.jsonl:1: text [36, 73) of document 'd-train' is in no sentence: 'Les entretiens" in p
               for p in _problems(tmp_path / "d")), _problems(tmp_path / "d")


def test_boolean_offsets_and_non_string_fields_are_problems(tmp_path):
    _mini_corpus(tmp_path / "c")
    test = tmp_path / "c" / "sentences" / "test.jsonl"
    _rewrite(test, lambda rows: [{**rows[0], "start": False}])
    assert any("test.jsonl:1: expected string id, doc_id and text and whole-number start and end, got start=False"
               in p for p in _problems(tmp_path / "c"))
    for field, value in (("text", 5), ("doc_id", ["d-test"]), ("id", {"x": 1})):
        _mini_corpus(tmp_path / field)
        _rewrite(tmp_path / field / "sentences" / "test.jsonl", lambda rows: [{**rows[0], field: value}])
        problems = _problems(tmp_path / field)  # a problem, not a TypeError
        assert any(f"got {field}={value!r}" in p for p in problems), problems


def test_an_empty_corpus_is_a_problem(tmp_path):
    for kind in ("documents", "sentences"):
        (tmp_path / kind).mkdir()
        for split in ("train", "dev", "test"):
            (tmp_path / kind / f"{split}.jsonl").write_text("")
    problems = _problems(tmp_path)
    assert any("documents/train.jsonl: no documents" in p for p in problems), problems
    assert any("sentences/test.jsonl: no sentences" in p for p in problems), problems


def test_the_challenge_set_never_meets_training_or_tuning():
    """The blind challenge set is held out: none of its sentences is (nearly) a corpus sentence,
    and no recipe reads it."""
    import json

    from diplostance.corpus import near_duplicate_pairs, normalise

    challenge = [json.loads(l)["text"] for l in (DATA / "challenge" / "sentences" / "challenge.jsonl")
                 .read_text(encoding="utf-8").splitlines() if l.strip()]
    corpus = [json.loads(l)["text"] for split in ("train", "dev", "test")
              for l in (DATA / "sentences" / f"{split}.jsonl").read_text(encoding="utf-8").splitlines() if l.strip()]
    assert len(challenge) == 420
    assert not {normalise(t) for t in challenge} & {normalise(t) for t in corpus}
    pairs = near_duplicate_pairs(challenge + corpus)
    assert not [p for p in pairs if (p[0] < len(challenge)) != (p[1] < len(challenge))]
    for recipe in (DATA.parent / "training").glob("*.toml"):
        assert "challenge" not in recipe.read_text(encoding="utf-8"), recipe
