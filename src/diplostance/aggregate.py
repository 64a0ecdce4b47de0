"""Who to whom, counted: :func:`aggregate` reads scored rows (``diplostance score``'s output)
and counts each label per dyad (actor, target), per actor, per document or per month;
:func:`plover_events` writes one event per stance in PLOVER's terms.

Dates: a row's ``date`` field (an input table's column, copied into every row), else the
readout's dateline or first date ("PÉKIN, 3 mars (Xinhua)", "Le 20 mai 2024"), read by
``dateparser`` with the year from the date itself, the document, or the rows' ``year`` field;
a document with none is counted under month ``unknown``.

PLOVER (``--format plover``, :data:`PLOVER`): commitment → AGREE (CAMEO root 03, express
intent to cooperate), support → SUPPORT (05, diplomatic cooperation: praise, endorse),
opposition → ACCUSE (11, disapprove) when it condemns, denounces, accuses or criticises a named
party, else REJECT (12).  A greeting (thanks, congratulations, condolences) is no PLOVER event:
it is left out unless asked for (``greetings=True``), then a CONSULT event of mode ``message``
with CAMEO code 018 (make empathetic comment).  Field names are PLOVER's as POLECAT writes them,
in snake case: ``event_type``, ``event_mode``, ``actor``, ``recipient``, ``event_date``.
"""
from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DiplostanceError

BY = ("dyad", "actor", "document", "month")
PLOVER = {"commitment": ("AGREE", "03"), "support": ("SUPPORT", "05"), "opposition": ("REJECT", "12"),
          "greeting": ("CONSULT", "018")}
ACCUSE = re.compile(r"\b(?:condamn|dénon|accus|critiqu|fustig|reproch|blâm|impute|incrimin|stigmatis)\w*", re.I)
NO_PARTY = ""  # a stance whose target (or actor) nothing resolved


@dataclass
class Aggregate:
    by: str
    labels: list[str]
    rows: list[dict]
    stances: int = 0
    unattributed: int = 0
    files: list[str] = field(default_factory=list)

    def table(self) -> str:
        """The rows as CSV text."""
        import csv
        import io

        buf = io.StringIO()
        if self.rows:
            writer = csv.DictWriter(buf, fieldnames=list(self.rows[0]))
            writer.writeheader()
            writer.writerows(self.rows)
        return buf.getvalue()


def _json(value, default):
    if isinstance(value, str):
        try:
            return json.loads(value) if value else default
        except ValueError:
            return default
    return default if value is None else value


def read_scores(path: str | Path) -> list[dict]:
    """Scored rows of any output format, their party fields as data (CSV and Parquet keep them
    as JSON text)."""
    from .outputs import read_rows

    if not Path(path).exists():
        raise DiplostanceError(f"{path}: no such file (scored rows from 'diplostance score --out')")
    rows = read_rows(path)
    for row in rows:
        row["labels"] = _json(row.get("labels"), []) if not isinstance(row.get("labels"), list) else row["labels"]
        for key in ("actors", "targets", "actor_spans", "target_spans"):
            if key in row:
                row[key] = _json(row[key], [])
        if "parties" in row:
            row["parties"] = _json(row["parties"], {})
    if rows and not any("parties" in r for r in rows):
        raise DiplostanceError(f"{path}: the rows carry no parties (scored with --no-actors, or by an older "
                               f"diplostance); score again without --no-actors")
    return rows


# --------------------------------------------------------------------------- dates

_DATE = re.compile(r"\b(?:le\s+)?(\d{1,2}(?:er)?\s+(?:janvier|février|fevrier|mars|avril|mai|juin|juillet|août|aout|"
                   r"septembre|octobre|novembre|décembre|decembre)(?:\s+\d{4})?)\b", re.I)
_YEAR = re.compile(r"\b(19[5-9]\d|20\d\d)\b")


def document_dates(rows: list[dict]) -> dict[str, str | None]:
    """ISO date (YYYY-MM-DD) of each document, or None."""
    import dateparser

    by_doc: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_doc[row["doc_id"]].append(row)
    dates = {}
    for doc_id, doc_rows in by_doc.items():
        doc_rows.sort(key=lambda r: r.get("sentence_index", 0))
        first = doc_rows[0]
        value = first.get("date") or first.get("meta_date")
        parsed = None
        if value:
            parsed = dateparser.parse(str(value), languages=["fr", "en"],
                                      settings={"REQUIRE_PARTS": ["day", "month", "year"]})
        if parsed is None:
            text = " ".join(r.get("text", "") for r in doc_rows)
            found = _DATE.search(" ".join(r.get("text", "") for r in doc_rows[:3]))
            years = _YEAR.findall(text)
            year = first.get("year") or (years[0] if years else None)
            if found:
                candidate = found.group(1)
                if not _YEAR.search(candidate) and year:
                    candidate = f"{candidate} {year}"
                if _YEAR.search(candidate):
                    parsed = dateparser.parse(candidate, languages=["fr"],
                                              settings={"REQUIRE_PARTS": ["day", "month", "year"]})
        dates[doc_id] = parsed.date().isoformat() if parsed else None
    return dates


# --------------------------------------------------------------------------- stances

def stances(rows: list[dict]):
    """One item per (row, label): (row, label, actor codes, target codes, the label's parties)."""
    for row in rows:
        parties = row.get("parties") or {}
        for label in row.get("labels") or []:
            roles = parties.get(label) or {}
            actors = list(dict.fromkeys(p["code"] for p in roles.get("actors", [])))
            targets = list(dict.fromkeys(p["code"] for p in roles.get("targets", [])))
            yield row, label, actors, targets, roles


def _labels(rows: list[dict]) -> list[str]:
    found = list(dict.fromkeys(l for r in rows for l in r.get("labels") or []))
    order = ["commitment", "support", "opposition", "greeting"]
    return [l for l in order if l in found] + [l for l in found if l not in order]


def aggregate(scores: str | Path | list[dict], by: str = "dyad", out: str | Path | None = None,
              figure: str | Path | None = None, top: int = 12) -> Aggregate:
    """Counts of each label per ``by`` (:data:`BY`).  ``out``: .csv or .parquet; ``figure``: a
    PNG (the dyad heatmap and the top dyads over time)."""
    if by not in BY:
        raise DiplostanceError(f"--by {by}: expected one of {', '.join(BY)}")
    rows = read_scores(scores) if not isinstance(scores, list) else scores
    labels = _labels(rows) or ["commitment", "support", "opposition", "greeting"]
    dates = document_dates(rows) if by == "month" or figure else {}
    counts: dict[tuple, Counter] = defaultdict(Counter)
    result = Aggregate(by, labels, [])
    for row, label, actors, targets, _ in stances(rows):
        result.stances += 1
        if not actors:
            result.unattributed += 1
        if by == "dyad":
            keys = [(a, t) for a in actors or [NO_PARTY] for t in targets or [NO_PARTY] if a != t] or \
                   [(a, NO_PARTY) for a in actors or [NO_PARTY]]
        elif by == "actor":
            keys = [(a,) for a in actors or [NO_PARTY]]
        elif by == "document":
            keys = [(row["doc_id"],)]
        else:
            date = dates.get(row["doc_id"])
            keys = [(date[:7] if date else "unknown",)]
        for key in keys:
            counts[key][label] += 1
    names = {"dyad": ["actor", "target"], "actor": ["actor"], "document": ["doc_id"], "month": ["month"]}[by]
    ordered = sorted(counts.items(), key=(lambda kv: kv[0]) if by == "month" else (lambda kv: (-sum(kv[1].values()),
                                                                                                kv[0])))
    for key, c in ordered:
        result.rows.append({**dict(zip(names, key)), **{l: c.get(l, 0) for l in labels},
                            "total": sum(c.values())})
    if out:
        _write_table(result.rows, out)
        result.files.append(str(out))
    if figure:
        dyad = result if by == "dyad" else aggregate(rows, "dyad")
        draw(dyad.rows, rows, dates, figure, labels, top)
        result.files.append(str(figure))
    return result


def _write_table(rows: list[dict], out: str | Path) -> None:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = out.suffix.lower()
    if suffix == ".parquet":
        from .outputs import parquet_table
        import pyarrow.parquet as pq

        pq.write_table(parquet_table(rows), out)
    elif suffix == ".csv":
        import csv

        with open(out, "w", newline="", encoding="utf-8") as f:
            if rows:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
    elif suffix in (".jsonl", ".json"):
        out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    else:
        raise DiplostanceError(f"--out {out}: expected a .csv, .parquet or .jsonl file")


def draw(dyad_rows: list[dict], rows: list[dict], dates: dict, path: str | Path, labels: list[str],
         top: int = 12) -> None:
    """Left: stances per (actor, target), the most active parties; right: stances per month of
    the five busiest dyads."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    named = [r for r in dyad_rows if r["actor"] and r["target"]]
    weight = Counter()
    for r in named:
        weight[r["actor"]] += r["total"]
        weight[r["target"]] += r["total"]
    parties = [p for p, _ in weight.most_common(top)]
    grid = np.zeros((len(parties), len(parties)), dtype=int)
    for r in named:
        if r["actor"] in parties and r["target"] in parties:
            grid[parties.index(r["actor"]), parties.index(r["target"])] += r["total"]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 5.5), gridspec_kw={"width_ratios": [1, 1.2]})
    ax.imshow(grid, cmap="Blues")
    for i in range(len(parties)):
        for j in range(len(parties)):
            if grid[i, j]:
                ax.text(j, i, str(grid[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if grid[i, j] > grid.max() / 2 else "black")
    ax.set_xticks(range(len(parties)), parties, rotation=60, fontsize=8)
    ax.set_yticks(range(len(parties)), parties, fontsize=8)
    ax.set_xlabel("target")
    ax.set_ylabel("actor")
    ax.set_title("stances per dyad (all labels)")
    busiest = [(r["actor"], r["target"]) for r in named[:5]]
    months = sorted({(dates.get(r["doc_id"]) or "")[:7] for r in rows} - {""})
    series = {d: Counter() for d in busiest}
    for row, label, actors, targets, _ in stances(rows):
        month = (dates.get(row["doc_id"]) or "")[:7]
        for d in busiest:
            if month and d[0] in actors and d[1] in targets:
                series[d][month] += 1
    for d, c in series.items():
        ax2.plot(range(len(months)), [c.get(m, 0) for m in months], marker="o", label=f"{d[0]} → {d[1]}")
    ax2.set_xticks(range(len(months)), months, rotation=60, fontsize=7)
    ax2.set_ylabel("stances")
    ax2.set_title("the five busiest dyads over time" + ("" if months else " (no dates found)"))
    if busiest:
        ax2.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --------------------------------------------------------------------------- PLOVER

def plover_events(scores: str | Path | list[dict], out: str | Path | None = None,
                  greetings: bool = False) -> list[dict]:
    """One event per stance (each actor with each target: PLOVER events are dyadic), in PLOVER's
    field names; a stance without a resolved target has an empty ``recipient``."""
    rows = read_scores(scores) if not isinstance(scores, list) else scores
    dates = document_dates(rows)
    events = []
    for row, label, actors, targets, roles in stances(rows):
        if label not in PLOVER or (label == "greeting" and not greetings):
            continue
        event_type, cameo = PLOVER[label]
        mode = "message" if label == "greeting" else ""
        if label == "opposition" and targets and ACCUSE.search(row.get("text", "")):
            event_type, cameo = "ACCUSE", "11"
        spans = {p["code"]: p for p in roles.get("actors", []) + roles.get("targets", []) if p.get("text")}
        for actor in actors or [NO_PARTY]:
            for recipient in [t for t in targets if t != actor] or [NO_PARTY]:
                a, r = spans.get(actor, {}), spans.get(recipient, {})
                events.append({
                    "id": f"{row['doc_id']}:{row['sentence_index']}:{label}:{actor}:{recipient}",
                    "event_date": dates.get(row["doc_id"]), "event_type": event_type, "event_mode": mode,
                    "cameo_root": cameo, "label": label, "actor": actor, "recipient": recipient,
                    "actor_text": a.get("text"), "recipient_text": r.get("text"),
                    "doc_id": row["doc_id"], "sentence_index": row["sentence_index"],
                    "source_text": row.get("text", ""), "start": row.get("start"), "end": row.get("end"),
                    "probability": row.get(f"p_{label}")})
    if out:
        _write_table(events, out)
    return events
