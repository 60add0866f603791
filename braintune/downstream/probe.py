"""Pooled features (N, L, D) + labels + splits -> per-layer linear-probe predictions, metrics, bootstrap CIs.

Probes are scikit-learn estimators: standardisation fitted on the training items only, then
LogisticRegressionCV (multinomial; C chosen by stratified k-fold CV on the training items) or
RidgeClassifierCV / RidgeCV (alpha chosen by efficient leave-one-out CV on the training items).
Multi-label targets (TIMIT phone presence) use RidgeCV on +-1 indicators; regression targets use
RidgeCV and report Pearson r. Tasks with published splits train on train + validation and test on
test; cross-validated tasks (splits ``fold0..``) predict every item once from the other folds.
The headline layer is the one with the best training-split CV score (never chosen on test items).
"""
from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn.linear_model import LogisticRegressionCV, RidgeClassifierCV, RidgeCV
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ..errors import DataError

C_GRID = np.logspace(-4, 2, 7)
ALPHA_GRID = np.logspace(-2, 5, 8)


def fit_predict(x_train, y_train, x_test, kind: str, probe: str, n_folds: int, seed: int):
    """Fit one probe on (N_train, D) features and predict (N_test, D). Returns (predictions, CV score)."""
    if kind == "classification" and probe == "logistic":
        counts = np.unique(y_train, return_counts=True)[1]
        folds = int(min(n_folds, counts.min()))
        if len(counts) < 2 or folds < 2:
            raise DataError(f"the training items hold {len(counts)} classes with at least {counts.min()} items each; "
                            "a probe needs two classes with two items each (raise downstream.max_items)")
        est = LogisticRegressionCV(Cs=C_GRID, cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
                                   max_iter=2000, scoring="accuracy")
        model = make_pipeline(StandardScaler(), est).fit(x_train, y_train)
        score = float(np.mean(next(iter(est.scores_.values())), axis=0).max())
    elif kind == "classification":
        est = RidgeClassifierCV(alphas=ALPHA_GRID, scoring="accuracy")
        model = make_pipeline(StandardScaler(), est).fit(x_train, y_train)
        score = float(est.best_score_)
    else:  # multilabel (+-1 indicators, thresholded at 0) or regression
        target = 2.0 * y_train - 1.0 if kind == "multilabel" else y_train
        est = RidgeCV(alphas=ALPHA_GRID)
        model = make_pipeline(StandardScaler(), est).fit(x_train, target)
        score = float(est.best_score_)
        pred = model.predict(x_test)
        return ((pred > 0).astype(int) if kind == "multilabel" else pred), score
    return model.predict(x_test), score


def layerwise_predictions(features, labels, splits, kind, probe="logistic", n_folds=5, seed=0):
    """Test predictions of one probe per layer.

    Parameters
    ----------
    features : (N, L, D) pooled features; labels : (N,) or (N, K) for multilabel; splits : (N,) str.

    Returns
    -------
    test_idx : (N_test,) indices of the evaluated items; preds : (L, N_test[, K]); cv_scores : (L,);
    chance_pred : (N_test[, K]) majority-of-train predictions.
    """
    splits = np.asarray(splits)
    folds = sorted({s for s in splits if s.startswith("fold")})
    if folds:
        pairs = [(np.flatnonzero(splits != f), np.flatnonzero(splits == f)) for f in folds]
    else:
        pairs = [(np.flatnonzero(np.isin(splits, ["train", "validation"])), np.flatnonzero(splits == "test"))]
    if any(len(tr) == 0 or len(te) == 0 for tr, te in pairs):
        raise DataError(f"a split has no training or no test items (splits found: {sorted(set(splits))})")
    test_idx = np.concatenate([te for _, te in pairs])
    preds, scores = [], []
    for layer in range(features.shape[1]):
        fold_preds, fold_scores = [], []
        for tr, te in pairs:
            p, s = fit_predict(features[tr, layer], labels[tr], features[te, layer], kind, probe, n_folds, seed)
            fold_preds.append(p)
            fold_scores.append(s)
        preds.append(np.concatenate(fold_preds))
        scores.append(float(np.mean(fold_scores)))
    chance_pred = np.concatenate([_majority(labels[tr], len(te), kind) for tr, te in pairs])
    return test_idx, np.stack(preds), np.asarray(scores), chance_pred


def _majority(y_train, n: int, kind: str):
    if kind == "regression":
        return np.full(n, float(np.mean(y_train)))
    if kind == "multilabel":
        return np.tile((y_train.mean(axis=0) > 0.5).astype(int), (n, 1))
    values, counts = np.unique(y_train, return_counts=True)
    return np.full(n, values[np.argmax(counts)], dtype=y_train.dtype)


def metrics(y_true, y_pred, kind: str) -> dict:
    """accuracy / macro-F1 / weighted-F1 (classification), label accuracy / macro- and micro-F1 (multilabel), r."""
    if kind == "regression":
        r = float(stats.pearsonr(y_true, y_pred)[0]) if np.std(y_pred) > 0 else 0.0
        return {"r": r, "mse": float(np.mean((y_true - y_pred) ** 2))}
    if kind == "multilabel":
        return {"accuracy": float(np.mean(y_true == y_pred)),
                "f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
                "f1_micro": float(f1_score(y_true, y_pred, average="micro", zero_division=0))}
    return {"accuracy": float(accuracy_score(y_true, y_pred)),
            "f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
            "f1_weighted": float(f1_score(y_true, y_pred, average="weighted", zero_division=0))}


def headline_metric(kind: str) -> str:
    return "r" if kind == "regression" else "accuracy"


def bootstrap_ci(y_true, y_pred, kind: str, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                 accuracy_only: bool = False) -> dict:
    """Percentile bootstrap over test items: {metric: [low, high]} for every metric of ``metrics`` (or accuracy only)."""
    rng = np.random.default_rng(seed)
    n = len(y_true)
    draws: dict[str, list[float]] = {}
    if kind == "classification":  # accuracy is vectorised; F1 needs the loop below
        correct = (np.asarray(y_true) == np.asarray(y_pred)).astype(float)
        idx = rng.integers(0, n, size=(n_boot, n))
        draws["accuracy"] = list(correct[idx].mean(axis=1))
        for rows in idx[: 0 if accuracy_only else min(n_boot, 500)]:  # F1 CIs from 500 resamples keep the loop fast
            for key, value in metrics(y_true[rows], y_pred[rows], kind).items():
                if key != "accuracy":
                    draws.setdefault(key, []).append(value)
    else:
        for _ in range(n_boot):
            rows = rng.integers(0, n, size=n)
            for key, value in metrics(y_true[rows], y_pred[rows], kind).items():
                draws.setdefault(key, []).append(value)
    tail = 100 * (1 - level) / 2
    return {k: [float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail))] for k, v in draws.items()}


def paired_comparison(y_true, pred_a, pred_b, kind: str, n_boot: int = 1000, seed: int = 0) -> dict:
    """Model A minus model B on the same test items: paired bootstrap CI of the headline metric difference,
    and (classification) McNemar's exact test on the discordant items (scipy binomtest)."""
    key = headline_metric(kind)
    rng = np.random.default_rng(seed)
    n = len(y_true)
    if kind == "classification":  # accuracy difference = mean of per-item (a correct - b correct)
        per_item = (pred_a == y_true).astype(float) - (pred_b == y_true).astype(float)
        diffs = per_item[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    else:
        diffs = []
        for _ in range(n_boot):
            rows = rng.integers(0, n, size=n)
            diffs.append(metrics(y_true[rows], pred_a[rows], kind)[key] - metrics(y_true[rows], pred_b[rows], kind)[key])
    out = {"metric": key,
           "difference": metrics(y_true, pred_a, kind)[key] - metrics(y_true, pred_b, kind)[key],
           "ci": [float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))]}
    if kind == "classification":
        a_ok, b_ok = pred_a == y_true, pred_b == y_true
        only_a, only_b = int(np.sum(a_ok & ~b_ok)), int(np.sum(~a_ok & b_ok))
        p = stats.binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
        out.update({"only_a_correct": only_a, "only_b_correct": only_b, "mcnemar_p": float(p)})
    return out
