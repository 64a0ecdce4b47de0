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


def test_bootstrap_intervals_hold_the_estimate_and_a_tie_is_no_win():
    import numpy as np

    from diplostance import metrics

    rng = np.random.default_rng(1)
    y = rng.random((400, 4)) < 0.3
    pred = y.copy()
    pred[:60] = ~pred[:60]  # some errors
    report = metrics.multilabel_report(y.astype(int), pred.astype(int))
    ci = metrics.confidence_intervals(y, pred, ["a", "b", "c", "d"])["intervals"]
    assert ci["macro_f1"][0] <= report["macro_f1"] <= ci["macro_f1"][1] and ci["macro_f1"][1] - ci["macro_f1"][0] < 0.2
    same = metrics.paired_difference(y, pred, pred)
    assert same["difference"] == 0 and not same["wins"] and not same["loses"]
    better = metrics.paired_difference(y, y, pred)
    assert better["wins"] and better["interval"][0] > 0
    tiny = metrics.paired_difference(y, pred, np.where(np.arange(400)[:, None] == 0, ~pred, pred))
    assert not tiny["wins"]  # one sentence's difference is smaller than its interval: no win


def test_multilabel_confusion_and_breakdown():
    import numpy as np

    from diplostance import metrics

    names = ["commitment", "support"]
    y = np.array([[1, 0], [1, 0], [0, 1], [1, 1]], dtype=bool)
    p = np.array([[1, 0], [0, 0], [1, 0], [1, 1]], dtype=bool)
    c = metrics.multilabel_confusion(y, p, names)
    assert c["commitment"] == {"gold": 3, "found": 2, "missed_as_none": 1, "instead": {"support": 0}}
    assert c["support"] == {"gold": 2, "found": 1, "missed_as_none": 0, "instead": {"commitment": 1}}
    b = metrics.breakdown(y, p, [["x"], ["x"], ["y"], ["x", "y"]], names, minimum=2)
    assert b["x"]["n"] == 3 and b["y"]["n"] == 2 and 0 <= b["x"]["macro_f1"] <= 1
