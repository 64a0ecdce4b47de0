import pytest

from diplostance.labels import LABELS, check_labels, from_vector, primary_label, to_vector


def test_primary_label_follows_the_spec_order():
    assert primary_label(["support", "commitment"]) == "commitment"
    assert primary_label(["greeting", "opposition", "support"]) == "opposition"
    assert primary_label(["greeting", "support"]) == "support"
    assert primary_label(["greeting"]) == "greeting"
    assert primary_label([]) == "none"


def test_check_labels_orders_and_rejects_unknown():
    assert check_labels(["greeting", "commitment"]) == ["commitment", "greeting"]
    with pytest.raises(ValueError, match=r"unknown label\(s\) \['praise'\].*expected a subset"):
        check_labels(["praise"])
    with pytest.raises(ValueError, match="must be a list"):
        check_labels("support")
    with pytest.raises(ValueError, match="repeated"):
        check_labels(["support", "support"])


def test_vectors_round_trip():
    assert from_vector(to_vector(["opposition", "support"])) == ["support", "opposition"]
    assert len(to_vector([])) == len(LABELS)
