import json

import pytest

from diplostance.annotation import agreement, read_labels
from diplostance.corpus import CorpusError


def test_kappa_per_label_and_disagreements():
    first = {"a": ["support"], "b": [], "c": ["commitment", "support"], "d": ["greeting"]}
    second = {"a": ["support"], "b": [], "c": ["commitment"], "d": ["greeting"]}
    r = agreement(first, second)
    assert r["per_label"]["commitment"]["kappa"] == 1.0
    assert r["per_label"]["support"]["kappa"] < 1.0
    assert r["disagreements"] == ["c"] and r["exact_set_agreement"] == 0.75


def test_mismatched_ids_and_bad_rows(tmp_path):
    with pytest.raises(CorpusError, match="different sentences"):
        agreement({"a": []}, {"b": []})
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps({"id": "a", "labels": ["joy"]}) + "\n")
    with pytest.raises(CorpusError, match=r"x.jsonl:1: unknown label"):
        read_labels(path)
