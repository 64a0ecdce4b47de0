"""Compare the sentence splitters of diplostance.segment on two gold sets.

    python evaluate/segment_benchmark.py [--errors N] [--cases FILE] [--authored GLOB]

(a) tests/data/split_cases.jsonl: hand-written tricky cases, {"text", "sentences"};
(b) data/authored/w*.jsonl: the authored corpus, one document per line, rebuilt into
    text and gold spans by :func:`reconstruct`;
(c) shuffled: 300 documents of 2 to 6 authored sentences drawn at random (seeded) and
    joined by a space or a blank line (always a blank line after one without final
    punctuation, a heading), so that sentences meet that never met before.

For each available splitter it prints boundary precision / recall / F1, the exact-span
rate, the error counts and the speed, then up to N errors per splitter and set.
"""
from __future__ import annotations

import argparse
import glob
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from diplostance.segment import DEFAULT, SPLITTERS, Span, boundary_scores, get_splitter  # noqa: E402


def _trimmed(text: str, start: int, end: int) -> Span:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Span(start, end)


def reconstruct(doc: dict) -> tuple[str, list[Span]]:
    """A document's text and gold spans: each sentence's text followed by its ``sep``
    (default " "; the last sentence's sep is ignored)."""
    parts, spans, pos = [], [], 0
    sentences = doc["sentences"]
    for i, sentence in enumerate(sentences):
        text = sentence["text"]
        parts.append(text)
        spans.append((pos, pos + len(text)))
        pos += len(text)
        if i < len(sentences) - 1:
            sep = sentence.get("sep", " ")
            parts.append(sep)
            pos += len(sep)
    full = "".join(parts)
    return full, [_trimmed(full, a, b) for a, b in spans if full[a:b].strip()]


def case_gold(case: dict) -> tuple[str, list[Span]]:
    """Gold spans of a tricky case: each sentence found verbatim, in order."""
    text, spans, pos = case["text"], [], 0
    for sentence in case["sentences"]:
        start = text.index(sentence, pos)
        spans.append(Span(start, start + len(sentence)))
        pos = start + len(sentence)
    return text, spans


def load_cases(path: str | Path) -> list[tuple[str, list[Span]]]:
    with open(path, encoding="utf-8") as f:
        return [case_gold(json.loads(line)) for line in f if line.strip()]


def load_authored(pattern: str) -> list[tuple[str, list[Span]]]:
    docs = []
    for path in sorted(glob.glob(pattern)):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    doc = json.loads(line)
                except json.JSONDecodeError:  # a file being written right now
                    continue
                if doc.get("sentences"):
                    docs.append(reconstruct(doc))
    return docs


def shuffled(docs: list[tuple[str, list[Span]]], n: int = 300, seed: int = 0):
    """Synthetic documents from random authored sentences (see the module doc)."""
    rng = random.Random(seed)
    pool = [text[s.start:s.end] for text, spans in docs for s in spans]
    out = []
    for _ in range(n if pool else 0):
        picked = [rng.choice(pool) for _ in range(rng.randint(2, 6))]
        # A sentence without final punctuation is a heading: it keeps its blank line.
        seps = [rng.choice([" ", " ", " ", "\n\n"]) if t.rstrip("»”)\"' ")[-1:] in ".!?…"
                else "\n\n" for t in picked]
        out.append(reconstruct({"sentences": [{"text": t, "sep": sep} for t, sep in zip(picked, seps)]}))
    return out


def errors(text: str, pred: list[Span], gold: list[Span], width: int = 40) -> list[str]:
    """One line per missed (-) or spurious (+) boundary, with the text around it."""
    p = {s.end for s in pred[:-1]}
    g = {s.end for s in gold[:-1]}
    out = []
    for end in sorted(p ^ g):
        kind = "missed  " if end in g else "spurious"
        left = text[max(0, end - width):end].replace("\n", "⏎")
        right = text[end:end + width].replace("\n", "⏎")
        out.append(f"  {kind} …{left}‖{right}…")
    return out


def evaluate(splitter, docs) -> tuple[dict, list[str]]:
    t0 = time.perf_counter()
    predicted = [splitter.split(text) for text, _ in docs]
    seconds = time.perf_counter() - t0
    gold = [spans for _, spans in docs]
    scores = boundary_scores(predicted, gold)
    scores["sent_per_s"] = scores["gold_sentences"] / seconds if seconds else float("inf")
    errs = [e for (text, g), p in zip(docs, predicted) for e in errors(text, p, g)]
    return scores, errs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=str(ROOT / "tests/data/split_cases.jsonl"))
    ap.add_argument("--authored", default=str(ROOT / "data/authored/w*.jsonl"))
    ap.add_argument("--errors", type=int, default=10, help="errors shown per splitter and set")
    args = ap.parse_args(argv)

    authored = load_authored(args.authored)
    sets = {"tricky": load_cases(args.cases), "authored": authored, "shuffled": shuffled(authored)}
    print(" ".join(f"{k}: {len(v)} docs, {sum(len(s) for _, s in v)} sentences;"
                   for k, v in sets.items()))
    header = f"{'splitter':<9} {'set':<9} {'P':>6} {'R':>6} {'F1':>6} {'exact':>6} {'fp':>4} {'fn':>4} {'sent/s':>8}"
    print(header)
    print("-" * len(header))
    details = []
    print(f"default = {DEFAULT}")
    for name in SPLITTERS:
        try:
            splitter = get_splitter(name)
        except ImportError as exc:
            print(f"{name:<9} unavailable: {exc}")
            continue
        for set_name, docs in sets.items():
            if not docs:
                continue
            s, errs = evaluate(splitter, docs)
            print(f"{name:<9} {set_name:<9} {s['precision']:6.3f} {s['recall']:6.3f} {s['f1']:6.3f} "
                  f"{s['exact_span_rate']:6.3f} {s['fp']:4d} {s['fn']:4d} {s['sent_per_s']:8.0f}")
            if errs and args.errors:
                details.append(f"\n{name} on {set_name}: {len(errs)} errors"
                               + (f" (first {args.errors})" if len(errs) > args.errors else ""))
                details.extend(errs[:args.errors])
    print("\n".join(details))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
