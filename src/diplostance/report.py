"""HTML view of scored readouts: one self-contained page per document and an index.

Each sentence is coloured by its primary label; hovering shows every label's probability.
No scripts, fonts or styles are fetched from the network.
"""
from __future__ import annotations

import html
from collections import Counter
from pathlib import Path

from .labels import LABELS, NONE, PRIMARY_ORDER

COLOURS = {"opposition": "#f4a6a6", "commitment": "#a8c8f0", "support": "#b5e3b0", "greeting": "#f7dc8f",
           NONE: "transparent"}

CSS = """
body{font-family:Georgia,'DejaVu Serif',serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#222;line-height:1.6}
h1{font-size:1.3rem} .meta{color:#666;font-size:.9rem}
.legend span,.counts span{display:inline-block;padding:.1rem .5rem;margin:.15rem;border-radius:.3rem;font-family:sans-serif;font-size:.85rem}
.text{white-space:pre-wrap;border-top:1px solid #ddd;padding-top:1rem}
.s{border-radius:.2rem;padding:.05rem 0;border-left:2px solid rgba(0,0,0,.25);-webkit-box-decoration-break:clone;box-decoration-break:clone} .s:hover{outline:2px solid #333}
.s.none{border-bottom:1px dotted #bbb}
table{border-collapse:collapse;font-family:sans-serif;font-size:.9rem} td,th{border:1px solid #ccc;padding:.2rem .5rem}
.fail{color:#a00}
"""


def _legend() -> str:
    items = [f'<span style="background:{COLOURS[l]}">{l}</span>' for l in PRIMARY_ORDER]
    items.append('<span style="border-bottom:1px dotted #999">none</span>')
    return '<div class="legend">Primary label: ' + "".join(items) + "</div>"


def _tooltip(record) -> str:
    probs = ", ".join(f"{l} {record.probabilities[l]:.2f}" for l in LABELS)
    labels = ", ".join(record.labels) or "none"
    extra = f"; scored in {record.windows} windows" if record.long else ""
    return f"#{record.index}: {labels} ({probs}){extra}"


def document_page(doc, records, model_name: str) -> str:
    """The HTML of one document, its text untouched between the sentence spans."""
    parts, pos = [], 0
    for r in records:
        parts.append(html.escape(doc.text[pos:r.start]))
        parts.append(f'<span class="s {r.primary}" style="background:{COLOURS[r.primary]}" '
                     f'title="{html.escape(_tooltip(r))}" data-labels="{" ".join(r.labels)}">'
                     f"{html.escape(doc.text[r.start:r.end])}</span>")
        pos = r.end
    parts.append(html.escape(doc.text[pos:]))
    counts = Counter(l for r in records for l in r.labels)
    count_html = "".join(f'<span style="background:{COLOURS[l]}">{l}: {counts.get(l, 0)}</span>' for l in PRIMARY_ORDER)
    count_html += f'<span>none: {sum(not r.labels for r in records)}</span>'
    return (f"<!DOCTYPE html><html lang=\"fr\"><head><meta charset=\"utf-8\"><title>{html.escape(doc.id)}</title>"
            f"<style>{CSS}</style></head><body><p><a href=\"index.html\">&larr; all documents</a></p>"
            f"<h1>{html.escape(doc.id)}</h1><p class=\"meta\">{html.escape(doc.source)} &middot; model "
            f"{html.escape(model_name)} &middot; {len(records)} sentences</p>{_legend()}"
            f"<div class=\"counts\">Counts: {count_html}</div><div class=\"text\">{''.join(parts)}</div></body></html>")


class HtmlWriter:
    """Writes ``doc-NNNN.html`` as each document comes (memory stays flat), then ``index.html``."""

    def __init__(self, out_dir: str | Path, model_name: str):
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.model_name = model_name
        self.rows: list[str] = []

    def add(self, doc, records) -> Path:
        name = f"doc-{len(self.rows) + 1:04d}.html"
        (self.out / name).write_text(document_page(doc, records, self.model_name), encoding="utf-8")
        counts = Counter(l for r in records for l in r.labels)
        cells = "".join(f"<td>{counts.get(l, 0)}</td>" for l in PRIMARY_ORDER)
        self.rows.append(f'<tr><td><a href="{name}">{html.escape(doc.id)}</a></td><td>{len(records)}</td>{cells}</tr>')
        return self.out / name

    def close(self, failures=()) -> Path:
        fail_rows = "".join(f'<li class="fail">{html.escape(f.source)}: {html.escape(f.reason)}</li>' for f in failures)
        head = "".join(f'<th style="background:{COLOURS[l]}">{l}</th>' for l in PRIMARY_ORDER)
        page = (f"<!DOCTYPE html><html lang=\"fr\"><head><meta charset=\"utf-8\"><title>diplostance: {len(self.rows)} "
                f"documents</title><style>{CSS}</style></head><body><h1>Scored readouts</h1>"
                f"<p class=\"meta\">model {html.escape(self.model_name)}</p>{_legend()}"
                f"<table><tr><th>document</th><th>sentences</th>{head}</tr>{''.join(self.rows)}</table>"
                + (f"<h2>Not scored</h2><ul>{fail_rows}</ul>" if fail_rows else "") + "</body></html>")
        (self.out / "index.html").write_text(page, encoding="utf-8")
        return self.out / "index.html"


def write_html(out_dir: str | Path, docs, model_name: str, failures=()) -> Path:
    """Write one page per (document, records) pair and the index; return the index path."""
    writer = HtmlWriter(out_dir, model_name)
    for doc, records in docs:
        writer.add(doc, records)
    return writer.close(failures)
