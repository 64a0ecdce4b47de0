"""Check one or more authored corpus files (data/authored/*.jsonl) and print statistics.

Usage: python tools/check_authored.py data/authored/w1.jsonl [more files...]
Exits non-zero on format errors. Prints figures to compare with the targets.
"""
import collections
import itertools
import json
import re
import sys

LABELS = {"commitment", "support", "opposition", "greeting"}
STYLES = {
    "chinese_state_media", "vietnamese_media", "asian_media", "french_presidency", "french_ministry",
    "belgian_government", "swiss_government", "russian_ministry", "russian_media", "maghreb_agency",
    "west_african_outlet", "central_african_outlet", "african_union", "un", "eu", "canadian_government",
    "latin_american", "middle_east_agency", "other",
}
WORD = re.compile(r"\w+(?:[-'’]\w+)*")


def words(s):
    return WORD.findall(s)


def grams(s, n=4):
    w = [x.lower() for x in words(s)]
    return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}


def main(paths):
    errors = []
    sents = []
    docs = 0
    ids = set()
    for path in paths:
        for ln, line in enumerate(open(path, encoding="utf-8"), 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except ValueError as e:
                errors.append(f"{path}:{ln}: bad JSON: {e}")
                continue
            docs += 1
            for k in ("doc_id", "style", "source", "date", "parties", "topic", "sentences"):
                if k not in d:
                    errors.append(f"{path}:{ln}: missing key {k}")
            if d.get("doc_id") in ids:
                errors.append(f"{path}:{ln}: duplicate doc_id {d.get('doc_id')}")
            ids.add(d.get("doc_id"))
            if d.get("style") not in STYLES:
                errors.append(f"{path}:{ln}: unknown style {d.get('style')!r}; expected one of {sorted(STYLES)}")
            ss = d.get("sentences", [])
            if not 5 <= len(ss) <= 20:
                errors.append(f"{path}:{ln}: {len(ss)} sentences (need 5 to 20)")
            for i, s in enumerate(ss):
                t = s.get("text", "")
                if not t or t != t.strip():
                    errors.append(f"{path}:{ln}: sentence {i}: empty or leading/trailing whitespace")
                bad = set(s.get("labels", [])) - LABELS
                if bad:
                    errors.append(f"{path}:{ln}: sentence {i}: unknown labels {bad}")
                if s.get("sep", " ") not in (" ", "\n", "\n\n", ""):
                    errors.append(f"{path}:{ln}: sentence {i}: sep must be ' ', '\\n', '\\n\\n' or ''")
                for r in s.get("rules", []):
                    if not (isinstance(r, int) and 1 <= r <= 19):
                        errors.append(f"{path}:{ln}: sentence {i}: rule {r!r} not an int 1..19")
                sents.append((path, ln, i, s))
    for e in errors[:50]:
        print("ERROR", e)
    n = len(sents)
    if not n:
        print("no sentences")
        return 1
    lens = [len(words(s["text"])) for *_, s in sents]
    lab = collections.Counter(l for *_, s in sents for l in s.get("labels", []))
    multi = sum(1 for *_, s in sents if len(s.get("labels", [])) >= 2)
    none = sum(1 for *_, s in sents if not s.get("labels"))
    rules = collections.Counter(r for *_, s in sents for r in s.get("rules", []))
    openings = collections.Counter(" ".join(w.lower() for w in words(s["text"])[:3]) for *_, s in sents)
    print(f"documents {docs}  sentences {n}")
    print(f"words/sentence mean {sum(lens)/n:.1f}  <15: {100*sum(l<15 for l in lens)/n:.1f}%  >50: {100*sum(l>50 for l in lens)/n:.1f}%")
    print(f"labels {dict(lab)}  none {none}  multi-label {multi}")
    print(f"rules {dict(sorted(rules.items()))}")
    print(f"distinct first-three-word openings {100*len(openings)/n:.1f}%  most common: {openings.most_common(5)}")
    g = [grams(s["text"]) for *_, s in sents]
    index = collections.defaultdict(set)
    for i, gs in enumerate(g):
        for x in gs:
            index[x].add(i)
    near = 0
    for i, gs in enumerate(g):
        cand = collections.Counter(j for x in gs for j in index[x] if j > i)
        for j, inter in cand.items():
            union = len(gs) + len(g[j]) - inter
            if union and inter / union >= 0.5:
                near += 1
                if near <= 10:
                    print("NEAR-DUPLICATE:", sents[i][3]["text"][:80], "||", sents[j][3]["text"][:80])
    print(f"pairs with 4-gram Jaccard >= 0.5: {near}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
