import os
import shutil
import subprocess

import pytest

from diplostance.cli import main


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("DIPLOSTANCE_REQUIRE_CHROMIUM"):
        pytest.fail("headless Chromium is required here (.ci/run installs Debian's chromium)")
    pytest.skip("no chromium on this machine")


@pytest.fixture()
def html_dir(tiny_model, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "readout.txt").write_text(
        "PÉKIN, 3 mars (Xinhua) -- Le président chinois a reçu son homologue kényan.\n\n"
        "La Chine soutient fermement le Kenya dans la défense de sa souveraineté. "
        "Le Canada condamne fermement les frappes. Les entretiens ont duré deux heures.", encoding="utf-8")
    out = tmp_path / "html"
    assert main(["score", str(tiny_model.output), str(folder), "--html", str(out), "--out",
                 str(tmp_path / "o.jsonl"), "--quiet"]) == 0
    return out


def test_html_pages_are_self_contained_and_keep_the_text(html_dir):
    index = (html_dir / "index.html").read_text(encoding="utf-8")
    page = (html_dir / "readout.txt.html").read_text(encoding="utf-8")  # named after the document id
    assert 'href="readout.txt.html"' in index and "readout.txt" in index
    for text in (page, index):
        assert "http://" not in text and "https://" not in text and "<script src" not in text
    assert page.count('class="s ') == 4  # one span per sentence, never merged with its neighbour
    assert "PÉKIN, 3 mars (Xinhua) -- Le président chinois a reçu son homologue kényan." in page
    assert "title=\"#0: " in page and "commitment 0." in page  # every probability on hover
    for label in ("opposition", "commitment", "support", "greeting"):
        assert label in page  # legend


def test_html_page_renders_in_headless_chromium(html_dir, tmp_path):
    chromium = _chromium()
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1000,700",
                    (html_dir / "readout.txt.html").as_uri()], check=True, timeout=120, capture_output=True)
    from PIL import Image

    image = Image.open(shot).convert("RGB")
    colours = image.getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 20  # text and coloured spans, not a blank page
    white = max(colours)[0] / (image.width * image.height)
    assert white < 0.995


def _records(labels_per_sentence):
    from diplostance.classifier import SentenceRecord
    from diplostance.labels import DEFAULT

    text = " ".join(f"Phrase {i}." for i in range(len(labels_per_sentence)))
    records, pos = [], 0
    for i, labels in enumerate(labels_per_sentence):
        sentence = f"Phrase {i}."
        start = text.index(sentence, pos)
        probs = {l: (0.9 if l in labels else 0.1) for l in DEFAULT}
        records.append(SentenceRecord(sentence, list(labels), DEFAULT.primary(labels), probs, doc_id="d", index=i,
                                      n_sentences=len(labels_per_sentence), start=start, end=start + len(sentence)))
        pos = start + len(sentence)
    return text, records


def test_every_label_is_shown_and_neighbours_stay_apart(tmp_path):
    from diplostance.documents import Document
    from diplostance.report import HtmlWriter

    text, records = _records([["support"], ["support"], ["commitment", "opposition"], []])
    writer = HtmlWriter(tmp_path, "m")
    writer.add(Document("a/b c?.txt", text, "src"), records)
    writer.add(Document("A/B C?.txt", text, "src"), records)  # the same slug, another case: its own page
    writer.add(Document("index", text, "src"), records)
    index = writer.close()
    names = sorted(p.name for p in tmp_path.glob("*.html"))
    assert names == ["A-B-C-.txt-2.html", "a-b-c-.txt.html", "index-2.html", "index.html"]
    first = (tmp_path / "a-b-c-.txt.html").read_text(encoding="utf-8")
    second = (tmp_path / "A-B-C-.txt-2.html").read_text(encoding="utf-8")
    assert 'href="A-B-C-.txt-2.html" rel="next"' in first and 'rel="prev"' not in first
    assert 'href="a-b-c-.txt.html" rel="prev"' in second and 'href="index-2.html" rel="next"' in second
    # both labels of the third sentence are visible (a chip each), with their probabilities behind a switch
    assert first.count('class="chip"') == 4 and ">commitment<span class=\"p\"> 0.90</span>" in first
    assert ">opposition<span class=\"p\"> 0.90</span>" in first and 'id="probs"' in first
    assert first.count('class="s ') == 4  # two neighbours with the same label: two blocks
    page = index.read_text(encoding="utf-8")
    assert '<tr class="total"><td>all documents</td><td class="n">12</td>' in page
    assert 'id="filter"' in page and "localeCompare" in page  # filter and sort, inline


def test_the_palette_stays_distinct_under_colour_blindness():
    """Pairwise CIELAB distance of the label colours (and white, for none) in normal vision and
    simulated deuteranopia, protanopia and tritanopia (Machado et al. 2009, severity 1)."""
    import itertools

    import numpy as np

    from diplostance.report import COLOURS

    machado = {
        "normal": np.eye(3),
        "deuteranopia": [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.011820, 0.042940, 0.968881]],
        "protanopia": [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]],
        "tritanopia": [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602], [0.004733, 0.691367, 0.303900]],
    }

    def lab(hex_colour, matrix):
        c = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]) / 255
        linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
        linear = np.clip(np.asarray(matrix) @ linear, 0, 1)
        xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ linear
        t = xyz / np.array([0.95047, 1.0, 1.08883])
        f = np.where(t > (6 / 29) ** 3, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)
        return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])

    for vision, matrix in machado.items():
        for (a, x), (b, y) in itertools.combinations(COLOURS.items(), 2):
            distance = np.linalg.norm(lab(x, matrix) - lab(y, matrix))
            assert distance >= 20, f"{a} and {b} are only {distance:.1f} apart in {vision}"
        assert all(lab(x, np.eye(3))[0] >= 68 for x in COLOURS.values())  # light: black text stays readable
