import numpy as np

from diplostance.metrics import decide, expected_calibration_error, multilabel_report, tune_thresholds


def test_thresholds_maximise_each_label_f1():
    y = np.array([[1, 0], [1, 0], [0, 1], [0, 0]])
    p = np.array([[0.9, 0.2], [0.35, 0.1], [0.3, 0.8], [0.1, 0.3]])
    t = tune_thresholds(y, p)
    pred = decide(p, t)
    assert (pred == y).all()  # separable: tuned thresholds classify perfectly
    assert 0.3 < t[0] <= 0.35


def test_label_without_positives_keeps_default():
    y = np.array([[1, 0], [0, 0]])
    p = np.array([[0.9, 0.9], [0.1, 0.1]])
    assert tune_thresholds(y, p)[1] == 0.5


def test_report_counts_and_primary_confusion():
    # label order: commitment, support, opposition, greeting
    y = np.array([[1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]])
    pred = np.array([[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    r = multilabel_report(y, pred)
    assert r["per_label"]["commitment"]["f1"] == 1.0
    assert r["per_label"]["support"]["recall"] == 0.0
    assert r["exact_match"] == 1 / 3
    names = r["primary_confusion"]["labels"]
    m = np.array(r["primary_confusion"]["matrix"])
    assert m[names.index("opposition"), names.index("none")] == 1
    assert m[names.index("commitment"), names.index("commitment")] == 1


def test_ece_is_zero_when_calibrated():
    y = np.array([[1], [0]] * 50)
    p = np.where(y == 1, 0.999, 0.001)
    ece, bins = expected_calibration_error(y, p)
    assert ece < 0.01 and sum(b["count"] for b in bins) == 100
