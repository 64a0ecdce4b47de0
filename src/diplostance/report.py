"""HTML view of scored readouts: one self-contained page per document and an index.

Each sentence is coloured by its primary label and followed by a chip for every label it has,
so a sentence with two stances shows both; hovering a sentence shows every label's probability,
and a switch shows them all on the page.  Each sentence is its own bordered block, so two
neighbours with the same label stay two.  The palette stays distinct under red-green and
blue-yellow colour blindness (:data:`COLOURS`; ``tests/test_report.py`` checks it).  Pages are
named after the document id, made safe for a file name and unique, and link to the previous and
next documents; the index has totals per label, sorting and a filter (a few lines of inline
script: nothing is fetched from the network).
"""
from __future__ import annotations

import html
import re
from collections import Counter
from pathlib import Path

from .labels import DEFAULT, NONE, LabelSet

#: Light enough for black text; every pair, white included, at least 25 apart (CIELAB ΔE) in
#: normal vision and under simulated deuteranopia, protanopia and tritanopia (Machado et al. 2009).
COLOURS = {"opposition": "#ea98a6", "commitment": "#c198ea", "support": "#a4f77b", "greeting": "#f7d631",
           NONE: "#ffffff"}
#: Colours for the labels of a model trained on another label set, in turn.
SPARE_COLOURS = ("#8fd3f5", "#f5b97a", "#d9d9d9", "#b7e4d8", "#f0c8e0", "#e3e39a")

CSS = """
body{font-family:Georgia,'DejaVu Serif',serif;max-width:54rem;margin:2rem auto;padding:0 1rem;color:#222;line-height:1.9}
h1{font-size:1.3rem} .meta{color:#555;font-size:.9rem} nav{font-family:sans-serif;font-size:.9rem}
nav a{margin-right:1rem}
.legend span,.counts span{display:inline-block;padding:.05rem .5rem;margin:.15rem;border-radius:.3rem;font-family:sans-serif;font-size:.85rem;border:1px solid #888}
.text{white-space:pre-wrap;border-top:1px solid #ddd;padding-top:1rem}
.s{border:1px solid rgba(0,0,0,.35);border-radius:.25rem;padding:.05rem .15rem;margin:0 .1rem;-webkit-box-decoration-break:clone;box-decoration-break:clone}
.s:hover{outline:2px solid #000}
.s.none{border:1px dashed #bbb}
.chip{font-family:sans-serif;font-size:.65rem;vertical-align:super;border:1px solid #666;border-radius:.2rem;padding:0 .2rem;margin-left:.1rem;white-space:nowrap}
.who{font-family:sans-serif;font-size:.65rem;vertical-align:super;color:#333;margin-left:.2rem;white-space:nowrap}
.p{display:none} #probs:checked ~ .text .p{display:inline}
table{border-collapse:collapse;font-family:sans-serif;font-size:.9rem} td,th{border:1px solid #ccc;padding:.2rem .5rem}
th{cursor:pointer} td.n{text-align:right} tr.total td{font-weight:bold;background:#f2f2f2}
.fail{color:#a00}
"""

#: Sorting by a column and filtering the rows of the index, inline.
INDEX_SCRIPT = """
const table=document.getElementById('docs'), body=table.tBodies[0];
document.getElementById('filter').addEventListener('input',e=>{const q=e.target.value.toLowerCase();
  for(const r of body.rows){r.hidden=!r.textContent.toLowerCase().includes(q);}});
table.tHead.addEventListener('click',e=>{const th=e.target.closest('th'); if(!th)return;
  const i=th.cellIndex, num=th.dataset.num==='1', dir=th.dataset.dir==='1'?-1:1; th.dataset.dir=dir===1?'1':'0';
  const rows=[...body.rows].sort((a,b)=>{const x=a.cells[i].dataset.v, y=b.cells[i].dataset.v;
    return dir*(num?(+x)-(+y):x.localeCompare(y));}); rows.forEach(r=>body.appendChild(r));});
"""


def colours(labels: LabelSet) -> dict[str, str]:
    """A background colour for each label of ``labels`` (the task's own keep theirs)."""
    spare = iter(SPARE_COLOURS * (1 + len(labels) // len(SPARE_COLOURS)))
    return {**{l: COLOURS.get(l) or next(spare) for l in labels}, NONE: COLOURS[NONE]}


def page_names() -> "PageNames":
    return PageNames()


class PageNames:
    """A file name for each document id: its safe characters, unique (case-insensitively, for
    file systems that fold case), never ``index``."""

    def __init__(self):
        self.used: set[str] = {"index"}

    def __call__(self, doc_id: str) -> str:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "-", doc_id).strip("-.")[:80] or "document"
        name, k = stem, 1
        while name.lower() in self.used:
            k += 1
            name = f"{stem}-{k}"
        self.used.add(name.lower())
        return f"{name}.html"


def _legend(labels: LabelSet, palette: dict[str, str]) -> str:
    items = [f'<span style="background:{palette[l]}">{l}</span>' for l in labels.primary_order]
    items.append(f'<span style="background:{palette[NONE]};border-style:dashed">{NONE}</span>')
    return '<div class="legend">Colour: the primary label; a chip for every label. ' + "".join(items) + "</div>"


def _tooltip(record) -> str:
    probs = ", ".join(f"{l} {p:.2f}" for l, p in record.probabilities.items())
    labels = ", ".join(record.labels) or NONE
    extra = f"; scored in {record.windows} windows" if record.long else ""
    return f"#{record.index}: {labels} ({probs}){extra}"


def _chips(record, palette: dict[str, str]) -> str:
    return "".join(f'<span class="chip" style="background:{palette[l]}">{html.escape(l)}'
                   f'<span class="p"> {record.probabilities[l]:.2f}</span></span>' for l in record.labels) + _who(record)


def who_text(parties: dict) -> str:
    """"actor → target" of a sentence's stances: one for all labels when they agree, else per
    label ("support: CHN → KHM; opposition: CHN → ?"); ? where nothing resolved."""
    def one(roles) -> str:
        actors = "+".join(dict.fromkeys(p.code for p in roles.actors)) or "?"
        targets = "+".join(dict.fromkeys(p.code for p in roles.targets)) or "?"
        return f"{actors} → {targets}"

    shown = {label: one(roles) for label, roles in parties.items()}
    if len(set(shown.values())) <= 1:
        return next(iter(shown.values()), "")
    return "; ".join(f"{label}: {text}" for label, text in shown.items())


def _who(record) -> str:
    parties = getattr(record, "parties", None)
    if not parties:
        return ""
    return f'<span class="who" title="actor → target">{html.escape(who_text(parties))}</span>'


def document_page(doc, records, model_name: str, labels: LabelSet = DEFAULT, previous: str | None = None,
                  following: str | None = None) -> str:
    """The HTML of one document, its text untouched between the sentence spans."""
    palette = colours(labels)
    parts, pos = [], 0
    for r in records:
        parts.append(html.escape(doc.text[pos:r.start]))
        parts.append(f'<span class="s {html.escape(r.primary)}" style="background:{palette[r.primary]}" '
                     f'title="{html.escape(_tooltip(r))}" data-labels="{html.escape(" ".join(r.labels))}">'
                     f"{html.escape(doc.text[r.start:r.end])}</span>{_chips(r, palette)}")
        pos = r.end
    parts.append(html.escape(doc.text[pos:]))
    counts = Counter(l for r in records for l in r.labels)
    count_html = "".join(f'<span style="background:{palette[l]}">{l}: {counts.get(l, 0)}</span>'
                         for l in labels.primary_order)
    count_html += f'<span style="border-style:dashed">{NONE}: {sum(not r.labels for r in records)}</span>'
    nav = ['<a href="index.html">all documents</a>']
    if previous:
        nav.append(f'<a href="{html.escape(previous)}" rel="prev">&larr; previous</a>')
    if following:
        nav.append(f'<a href="{html.escape(following)}" rel="next">next &rarr;</a>')
    return (f"<!DOCTYPE html><html lang=\"fr\"><head><meta charset=\"utf-8\"><title>{html.escape(doc.id)}</title>"
            f"<style>{CSS}</style></head><body><nav>{''.join(nav)}</nav>"
            f"<h1>{html.escape(doc.id)}</h1><p class=\"meta\">{html.escape(doc.source)} &middot; model "
            f"{html.escape(model_name)} &middot; {len(records)} sentences</p>{_legend(labels, palette)}"
            f"<div class=\"counts\">Counts: {count_html}</div>"
            f"<input type=\"checkbox\" id=\"probs\"><label for=\"probs\"> show the probabilities</label>"
            f"<div class=\"text\">{''.join(parts)}</div></body></html>")


class HtmlWriter:
    """Writes a page per document as each comes (memory stays flat: only the last document is
    kept, to give its page the link to the next one), then ``index.html``."""

    def __init__(self, out_dir: str | Path, model_name: str, labels: LabelSet = DEFAULT):
        self.labels = labels
        self.palette = colours(labels)
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.model_name = model_name
        self.names = PageNames()
        self.rows: list[str] = []
        self.totals: Counter = Counter()
        self.sentences = 0
        self._last: tuple | None = None  # (name, previous name, doc, records)

    def _write(self, name, previous, doc, records, following=None) -> None:
        page = document_page(doc, records, self.model_name, self.labels, previous, following)
        (self.out / name).write_text(page, encoding="utf-8")

    def add(self, doc, records) -> Path:
        name = self.names(doc.id)
        previous = None
        if self._last is not None:
            last_name, last_previous, last_doc, last_records = self._last
            self._write(last_name, last_previous, last_doc, last_records, following=name)
            previous = last_name
        self._write(name, previous, doc, records)
        self._last = (name, previous, doc, records)
        counts = Counter(l for r in records for l in r.labels)
        counts[NONE] = sum(not r.labels for r in records)
        self.totals.update(counts)
        self.sentences += len(records)
        cells = "".join(f'<td class="n" data-v="{counts.get(l, 0)}">{counts.get(l, 0)}</td>'
                        for l in (*self.labels.primary_order, NONE))
        self.rows.append(f'<tr><td data-v="{html.escape(doc.id)}"><a href="{html.escape(name)}">{html.escape(doc.id)}'
                         f'</a></td><td class="n" data-v="{len(records)}">{len(records)}</td>{cells}</tr>')
        return self.out / name

    def close(self, failures=()) -> Path:
        fail_rows = "".join(f'<li class="fail">{html.escape(f.source)}: {html.escape(f.reason)}</li>' for f in failures)
        shown = (*self.labels.primary_order, NONE)
        head = "".join(f'<th data-num="1" style="background:{self.palette[l]}">{l}</th>' for l in shown)
        total = "".join(f'<td class="n">{self.totals.get(l, 0)}</td>' for l in shown)
        page = (f"<!DOCTYPE html><html lang=\"fr\"><head><meta charset=\"utf-8\"><title>diplostance: {len(self.rows)} "
                f"documents</title><style>{CSS}</style></head><body><h1>Scored readouts</h1>"
                f"<p class=\"meta\">model {html.escape(self.model_name)} &middot; {len(self.rows)} documents &middot; "
                f"{self.sentences} sentences &middot; counts are sentences with the label</p>"
                f"{_legend(self.labels, self.palette)}"
                f"<p><label>Filter: <input id=\"filter\" type=\"search\" placeholder=\"document id\"></label> "
                f"(click a column to sort)</p>"
                f"<table id=\"docs\"><thead><tr><th>document</th><th data-num=\"1\">sentences</th>{head}</tr>"
                f"<tr class=\"total\"><td>all documents</td><td class=\"n\">{self.sentences}</td>{total}</tr></thead>"
                f"<tbody>{''.join(self.rows)}</tbody></table>"
                + (f"<h2>Not scored</h2><ul>{fail_rows}</ul>" if fail_rows else "")
                + f"<script>{INDEX_SCRIPT}</script></body></html>")
        (self.out / "index.html").write_text(page, encoding="utf-8")
        return self.out / "index.html"
