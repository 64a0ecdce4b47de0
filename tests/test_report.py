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
    page = (html_dir / "doc-0001.html").read_text(encoding="utf-8")
    assert 'href="doc-0001.html"' in index and "readout.txt" in index
    for text in (page, index):
        assert "http://" not in text and "https://" not in text and "<script" not in text
    assert page.count('class="s ') == 4  # one span per sentence
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
                    (html_dir / "doc-0001.html").as_uri()], check=True, timeout=120, capture_output=True)
    from PIL import Image

    image = Image.open(shot).convert("RGB")
    colours = image.getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 20  # text and coloured spans, not a blank page
    white = max(colours)[0] / (image.width * image.height)
    assert white < 0.995
