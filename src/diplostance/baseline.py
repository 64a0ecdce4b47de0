"""The baseline: TF-IDF (word and character n-grams) + one-vs-rest logistic regression,
with per-label thresholds tuned on dev exactly as for the neural model."""
from __future__ import annotations

import numpy as np

from . import metrics
from .corpus import Example
from .labels import DEFAULT, LabelSet


class TfidfBaseline:
    def __init__(self, C: float = 4.0, seed: int = 0, labels: LabelSet = DEFAULT):
        self.labels = labels
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.multiclass import OneVsRestClassifier
        from sklearn.pipeline import FeatureUnion, make_pipeline

        features = FeatureUnion([
            ("words", TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True, lowercase=True)),
            ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True)),
        ])
        clf = OneVsRestClassifier(LogisticRegression(C=C, class_weight="balanced", max_iter=3000, random_state=seed))
        self.pipeline = make_pipeline(features, clf)
        self.thresholds: list[float] = []

    def fit(self, train: list[Example], dev: list[Example]) -> "TfidfBaseline":
        y = np.array([self.labels.vector(e.labels) for e in train], dtype=int)
        self.pipeline.fit([e.text for e in train], y)
        y_dev = np.array([self.labels.vector(e.labels) for e in dev], dtype=int)
        self.thresholds = metrics.tune_thresholds(y_dev, self.predict_proba([e.text for e in dev]))
        return self

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.pipeline.predict_proba(texts), dtype=np.float32)
