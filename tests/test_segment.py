"""Sentence splitter: contract, readout rules and quality on the tricky cases."""
from __future__ import annotations

import importlib.util
import json
import random
import sys
from pathlib import Path

import pytest

from diplostance.segment import (
    SPLITTERS,
    Span,
    boundary_scores,
    get_splitter,
    split_sentences,
)

CASES = Path(__file__).parent / "data" / "split_cases.jsonl"

# The splitters that apply the readout rules; punkt_rules only where punkt is installed.
RULED = ["default"] + (["punkt_rules"] if importlib.util.find_spec("punkt") else [])
AVAILABLE = [n for n, mod in [("regex", None), ("punkt_rules", "punkt"), ("punkt", "punkt"),
                              ("pysbd", "pysbd"), ("syntok", "syntok")]
             if mod is None or importlib.util.find_spec(mod)]


def load_cases() -> list[tuple[str, list[Span]]]:
    """(text, gold spans) per case; each gold sentence occurs verbatim, in order."""
    out = []
    for line in CASES.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        case = json.loads(line)
        text, spans, pos = case["text"], [], 0
        for sentence in case["sentences"]:
            start = text.index(sentence, pos)
            spans.append(Span(start, start + len(sentence)))
            pos = start + len(sentence)
        out.append((text, spans))
    return out


def sentences(text: str, splitter: str = "default") -> list[str]:
    return [text[s.start:s.end] for s in split_sentences(text, splitter)]


def check_contract(text: str, spans: list[Span]) -> None:
    end = 0
    for s in spans:
        assert end <= s.start < s.end <= len(text), (spans, text)
        piece = text[s.start:s.end]
        assert piece == piece.strip(), piece
        assert not text[end:s.start].strip(), f"lost {text[end:s.start]!r}"
        end = s.end
    assert not text[end:].strip(), f"lost {text[end:]!r}"


# ----------------------------------------------------------------------------- quality

def test_cases_file_is_well_formed():
    cases = load_cases()
    assert len(cases) >= 60
    for text, spans in cases:
        check_contract(text, spans)


def test_default_on_tricky_cases():
    cases = load_cases()
    predicted = [split_sentences(text) for text, _ in cases]
    scores = boundary_scores(predicted, [gold for _, gold in cases])
    assert scores["precision"] >= 0.97, scores
    assert scores["recall"] >= 0.97, scores


def test_default_matches_the_corpus_gold_boundaries():
    """Boundary precision and recall of the default splitter on the corpus documents."""
    import json

    root = Path(__file__).resolve().parents[1] / "data"
    predicted, gold = [], []
    for split in ("dev", "test"):
        docs = {}
        for line in (root / "documents" / f"{split}.jsonl").read_text(encoding="utf-8").splitlines():
            doc = json.loads(line)
            docs[doc["id"]] = (doc["text"], [])
        for line in (root / "sentences" / f"{split}.jsonl").read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            docs[row["doc_id"]][1].append(Span(row["start"], row["end"]))
        for text, spans in docs.values():
            predicted.append(split_sentences(text))
            gold.append(spans)
    scores = boundary_scores(predicted, gold)
    assert scores["precision"] >= 0.98 and scores["recall"] >= 0.98, scores


# ----------------------------------------------------------------------------- contract

@pytest.mark.parametrize("name", AVAILABLE)
def test_contract_on_cases_and_noise(name):
    splitter = get_splitter(name)
    rng = random.Random(7)
    alphabet = "ab Ab. M.«»“”?!…\n\n \u00a0\t,;:-1é)"
    texts = [text for text, _ in load_cases()]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80))) for _ in range(300)]
    for text in texts:
        check_contract(text, splitter.split(text))


@pytest.mark.parametrize("name", AVAILABLE)
@pytest.mark.parametrize("text", ["", "   ", "\n\n\t \u00a0"])
def test_empty_text(name, text):
    assert split_sentences(text, name) == []


def test_offsets_slice_back_to_the_original_text():
    text = "  Il a dit\u00a0: «\u202fNous agirons.\u202f»\n\nLe ministre   est parti.  "
    spans = split_sentences(text)
    assert [text[s.start:s.end] for s in spans] == [
        "Il a dit\u00a0: «\u202fNous agirons.\u202f»",
        "Le ministre   est parti.",
    ]
    assert spans[0] == Span(2, 2 + len("Il a dit : « Nous agirons. »"))


def test_split_sentences_accepts_a_splitter_object():
    splitter = get_splitter("regex")
    assert split_sentences("Un. Deux.", splitter) == [Span(0, 3), Span(4, 9)]


def test_unknown_splitter_names_the_known_ones():
    with pytest.raises(ValueError) as err:
        get_splitter("spacy")
    message = str(err.value)
    assert "spacy" in message
    for name in ["default", *SPLITTERS]:
        assert name in message


def test_missing_optional_dependency_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pysbd", None)  # makes "import pysbd" fail
    with pytest.raises(ImportError, match="pip install pysbd"):
        SPLITTERS["pysbd"]()


# ----------------------------------------------------------------------------- rules

@pytest.mark.parametrize("name", RULED)
@pytest.mark.parametrize("text, expected", [
    ("M. Macron a reçu Mme Merkel. Ils ont parlé.",
     ["M. Macron a reçu Mme Merkel.", "Ils ont parlé."]),
    ("MM. Dupont et Durand sont là. S.E. M. Wang Yi aussi.",
     ["MM. Dupont et Durand sont là.", "S.E. M. Wang Yi aussi."]),
    ("Le Dr. Tedros a parlé de l'art. 5 et de la résolution n° 2231. Fin.",
     ["Le Dr. Tedros a parlé de l'art. 5 et de la résolution n° 2231.", "Fin."]),
    ("J.-N. Barrot est à Kyiv. Il y restera.", ["J.-N. Barrot est à Kyiv.", "Il y restera."]),
    ("Le sommet de l'U.E. a eu lieu. L'O.N.U. a réagi.",
     ["Le sommet de l'U.E. a eu lieu.", "L'O.N.U. a réagi."]),
    ("Il a plaidé pour l'U.E. Les ministres ont approuvé.",
     ["Il a plaidé pour l'U.E.", "Les ministres ont approuvé."]),
    ("Le 5 févr. (Reuters) le ministre a parlé. Les échanges ont atteint 1,5 milliard. "
     "La croissance est de 3.5 %. Fin.",
     ["Le 5 févr. (Reuters) le ministre a parlé.", "Les échanges ont atteint 1,5 milliard.",
      "La croissance est de 3.5 %.", "Fin."]),
    ("Ils ont parlé du climat, etc. Ils se reverront.",
     ["Ils ont parlé du climat, etc.", "Ils se reverront."]),
])
def test_abbreviations_initials_numbers(name, text, expected):
    assert sentences(text, name) == expected


@pytest.mark.parametrize("name", RULED)
@pytest.mark.parametrize("text, expected", [
    ("Il a déclaré : « La France est prête. » Le ministre est parti.",
     ["Il a déclaré : « La France est prête. »", "Le ministre est parti."]),
    ("Il a jugé la situation « inacceptable ». Il a protesté.",
     ["Il a jugé la situation « inacceptable ».", "Il a protesté."]),
    ("« Nous ne céderons pas », a-t-il affirmé. « Jamais. »",
     ["« Nous ne céderons pas », a-t-il affirmé.", "« Jamais. »"]),
    ("« Nous sommes prêts ! » a lancé le ministre. « Est-ce juste ? » s'est-il demandé.",
     ["« Nous sommes prêts ! » a lancé le ministre.", "« Est-ce juste ? » s'est-il demandé."]),
    ("Il a dit : “Nous agirons.” Puis il est parti.",
     ["Il a dit : “Nous agirons.”", "Puis il est parti."]),
    ("Nous verrons… Le dialogue continue… sans relâche.",
     ["Nous verrons…", "Le dialogue continue… sans relâche."]),
])
def test_quotes_and_ellipses(name, text, expected):
    assert sentences(text, name) == expected


@pytest.mark.parametrize("name", RULED)
@pytest.mark.parametrize("text, expected", [
    ("la côte californienne.Park Chung-hee", ["la côte californienne.", "Park Chung-hee"]),
    ("Signé en 2024.Il prévoit une trêve.", ["Signé en 2024.", "Il prévoit une trêve."]),
    ("Quelle réponse?Nul ne sait.", ["Quelle réponse?", "Nul ne sait."]),
    ("Il a reçu M.Dupont et l'U.E.Le texte.", ["Il a reçu M.Dupont et l'U.E.Le texte."]),
    ("Voir www.diplomatie.gouv.fr pour le texte.", ["Voir www.diplomatie.gouv.fr pour le texte."]),
])
def test_glued_sentences(name, text, expected):
    assert sentences(text, name) == expected


@pytest.mark.parametrize("name", RULED)
@pytest.mark.parametrize("text, expected", [
    # a single line break inside a sentence is no boundary
    ("Le ministre a rappelé que la France\nsoutient l'initiative. Il l'a redit.",
     ["Le ministre a rappelé que la France\nsoutient l'initiative.", "Il l'a redit."]),
    ("Les deux dirigeants ont longuement évoqué la situation avec\nM. Dupont. Fin.",
     ["Les deux dirigeants ont longuement évoqué la situation avec\nM. Dupont.", "Fin."]),
    # a line followed by a blank line is its own sentence
    ("Entretien avec le Chancelier\n\nLe Président a reçu le Chancelier.",
     ["Entretien avec le Chancelier", "Le Président a reçu le Chancelier."]),
    # a short heading directly over its text
    ("Texte. »\n\nFaits en bref\nLe Canada figure parmi les donateurs.",
     ["Texte. »", "Faits en bref", "Le Canada figure parmi les donateurs."]),
    # bullets and numbered points
    ("Ils sont convenus :\n- de renforcer la coopération ;\n• d'organiser un sommet",
     ["Ils sont convenus :", "- de renforcer la coopération ;", "• d'organiser un sommet"]),
    ("Le Conseil,\n1. Le Conseil condamne l'attaque.\n2. Il exige une trêve.",
     ["Le Conseil,", "1. Le Conseil condamne l'attaque.", "2. Il exige une trêve."]),
    # datelines stay with their sentence
    ("PÉKIN, 3 mars (Xinhua) -- Le président a reçu son hôte. Ils ont parlé.",
     ["PÉKIN, 3 mars (Xinhua) -- Le président a reçu son hôte.", "Ils ont parlé."]),
    ("Tanger, 19 nov. 2024 (MAP) - Le ministre a parlé. Kinshasa, 3 mai (ACP).- Fin.",
     ["Tanger, 19 nov. 2024 (MAP) - Le ministre a parlé.", "Kinshasa, 3 mai (ACP).- Fin."]),
])
def test_layout(name, text, expected):
    assert sentences(text, name) == expected


# ----------------------------------------------------------------------------- scores

def test_boundary_scores():
    gold = [[Span(0, 5), Span(6, 10), Span(11, 15)], [Span(0, 4)]]
    pred = [[Span(0, 10), Span(11, 13), Span(14, 15)], [Span(0, 4)]]
    s = boundary_scores(pred, gold)
    # gold boundaries {5, 10}; predicted {10, 13}
    assert (s["tp"], s["fp"], s["fn"]) == (1, 1, 1)
    assert s["precision"] == s["recall"] == s["f1"] == 0.5
    assert s["exact_span_rate"] == 1 / 4  # only Span(0, 4) of the second document
    assert s["documents"] == 2 and s["gold_sentences"] == 4


def test_boundary_scores_edge_cases():
    assert boundary_scores([], [])["f1"] == 1.0
    one = [[Span(0, 3)]]
    assert boundary_scores(one, one)["precision"] == 1.0
    with pytest.raises(ValueError):
        boundary_scores(one, [])
