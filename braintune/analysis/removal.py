"""Word representations (n_words, H) and per-word property labels in, representations with the
property removed out; linear probes to check the removal (Oota et al. 2023, analysis_methods.md §1.5–1.9).

Two removal methods. `ResidualRemover` (the paper's): a ridge map from the one-hot property
design to the representation, λ per output dimension by contiguous 10-fold CV, residual kept.
`INLP` (Ravfogel et al. 2020, arXiv 2004.07667): linear classifiers trained and projected out
until held-out accuracy is at the majority-class level. Folds are contiguous everywhere because
neighbouring words share sentence-level labels: a shuffled split lets a probe recognise the
sentence instead of the property.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.stats
from sklearn.base import BaseEstimator, clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from braintune.evaluation.encoding import RidgeEncoder

RESIDUAL_ALPHAS = np.logspace(-6, 9, 16)  # the paper's grid, penalty α‖w‖² (analysis_methods §1.5)


def one_hot(labels, classes=None) -> tuple[np.ndarray, np.ndarray]:
    """Design matrix of a categorical property.

    Parameters
    ----------
    labels : array of shape (n_words,)
    classes : array of shape (k,), optional
        Column order; default the sorted distinct labels. A label outside it is an error.

    Returns
    -------
    P : float array of shape (n_words, k), one 1 per row
    classes : array of shape (k,)
    """
    labels = np.asarray(labels)
    classes = np.unique(labels) if classes is None else np.asarray(classes)
    unknown = np.setdiff1d(labels, classes)
    if unknown.size:
        raise ValueError(f"one_hot: labels {unknown[:5].tolist()} are not among the fitted classes "
                         f"{classes.tolist()}; fit on words that contain every class.")
    return (labels[:, None] == classes[None, :]).astype(np.float64), classes


def _check_xy(R, labels, where: str) -> tuple[np.ndarray, np.ndarray]:
    R, labels = np.asarray(R, dtype=np.float64), np.asarray(labels)
    if R.ndim != 2 or labels.shape != (len(R),):
        raise ValueError(f"{where}: R must be (n_words, H) and labels (n_words,); got {R.shape} and "
                         f"{labels.shape}.")
    return R, labels


class ResidualRemover(BaseEstimator):
    """Remove what a ridge map from the one-hot property predicts of each representation dimension.

    ``R̃ = R − P Ŵ`` with ``Ŵ = (PᵀP + diag λ)⁻¹ Pᵀ(R − m)`` column by column, ``m`` the mean of
    the words given to ``fit`` (``center=True``, default) or 0 (``center=False``, the paper's code).
    No intercept: the one-hot columns span the constant. λ per dimension maximises the mean
    validation R² over ``n_folds`` contiguous folds (= minimises Σ_folds(1 − R²), the paper's
    criterion), then Ŵ is refit on every word given to ``fit``. The penalty shrinks class means
    towards ``m``, so ``Pᵀ(R̃ − m) = λ (PᵀP + λ)⁻¹ Pᵀ(R − m)`` per dimension: orthogonal to the
    design as λ → 0. Why centre: shrinking towards 0 leaves class c a mean offset
    ``λ/(n_c + λ)·m``; with classes of different sizes n_c that offset differs between classes
    along the common mean direction, and a standardised probe decodes the property from it.

    Parameters
    ----------
    alphas : array of shape (n_alphas,), penalties α‖w‖², default logspace(-6, 9, 16)
    n_folds : int, contiguous (unshuffled) CV folds
    center : bool, shrink towards the mean of the fit words (True) or towards 0 (False)

    Attributes
    ----------
    classes_ : array of shape (k,)
    coef_ : array of shape (k, H), the fitted map Ŵ
    alphas_ : array of shape (H,), chosen λ per representation dimension
    mean_ : array of shape (H,), ``m``
    """

    def __init__(self, alphas=RESIDUAL_ALPHAS, n_folds: int = 10, center: bool = True):
        self.alphas = alphas
        self.n_folds = n_folds
        self.center = center

    def fit(self, R, labels):
        """R : (n_words, H); labels : (n_words,)."""
        R, labels = _check_xy(R, labels, "ResidualRemover.fit")
        P, self.classes_ = one_hot(labels)
        self.mean_ = R.mean(0) if self.center else np.zeros(R.shape[1])
        ridge = RidgeEncoder(alphas=self.alphas, delays=(0,), cv=KFold(self.n_folds),
                             alpha_convention="himalaya", scoring="r2", solver="svd",
                             backend="numpy", n_targets_batch=None, dtype="float64").fit(P, R - self.mean_)
        self.coef_, self.alphas_ = ridge.coef_, ridge.alphas_
        return self

    def transform(self, R, labels) -> np.ndarray:
        """Residual ``R − P Ŵ`` of shape (n_words, H); labels must be among ``classes_``."""
        R, labels = _check_xy(R, labels, "ResidualRemover.transform")
        if not hasattr(self, "coef_"):
            raise RuntimeError("ResidualRemover.transform: call fit(R, labels) first.")
        return R - one_hot(labels, self.classes_)[0] @ self.coef_

    def fit_transform(self, R, labels) -> np.ndarray:
        return self.fit(R, labels).transform(R, labels)


def remove_property(R, labels, fit_on: str = "all", train=None, alphas=RESIDUAL_ALPHAS,
                    n_folds: int = 10) -> np.ndarray:
    """Residual approach on every word, fitted on all words or on the training words only.

    Parameters
    ----------
    R : array of shape (n_words, H)
    labels : array of shape (n_words,)
    fit_on : {"all", "train"}
        "all": fit and apply on the same words (the paper; the map sees only stimulus labels).
        "train": fit on ``train`` words and apply the map to every word (Oota et al. 2024's
        fit-on-train-stories, apply-to-test).
    train : bool array of shape (n_words,), needed for ``fit_on="train"``

    Returns
    -------
    R_removed : array of shape (n_words, H)
    """
    R, labels = _check_xy(R, labels, "remove_property")
    remover = ResidualRemover(alphas=alphas, n_folds=n_folds)
    if fit_on == "all":
        return remover.fit_transform(R, labels)
    if fit_on != "train":
        raise ValueError(f"remove_property: fit_on={fit_on!r} is not 'all' or 'train'.")
    train = np.asarray(train if train is not None else [], dtype=bool)
    if train.shape != (len(R),) or not train.any():
        raise ValueError(f"remove_property: fit_on='train' needs a boolean train mask of shape "
                         f"({len(R)},) with at least one True; got shape {train.shape}.")
    return remover.fit(R[train], labels[train]).transform(R, labels)


class INLP(BaseEstimator):
    """Iterative nullspace projection: project out linear classifiers of the property until it
    is no longer decodable.

    Each iteration scores ``estimator`` on the projected words by contiguous ``n_folds``-fold CV
    (`probe_accuracy`), stops if that accuracy is at most chance (the best constant guess of each
    held-out fold) + ``tol``, else fits it on every word and adds its weight rows to the removed
    directions. The projection is ``I − B Bᵀ`` with ``B`` an orthonormal basis of all removed
    directions (the intersection of the classifiers' nullspaces). Cross-validating the stop rule
    (rather than one held-out split) keeps a lucky split from stopping it early.

    Parameters
    ----------
    max_iter : int, most classifiers removed
    tol : float, accuracy above chance that still counts as chance
    n_folds : int, contiguous CV folds of the stop rule
    estimator : scikit-learn linear classifier with ``coef_``, default LogisticRegression

    Attributes
    ----------
    projection_ : array of shape (H, H), symmetric and idempotent
    directions_ : array of shape (H, n_removed), orthonormal
    accuracies_ : list of float, CV accuracy before each projection (the last one is the
        accuracy at stopping)
    majority_ : float, chance of those folds (`ProbeScore.chance`)
    n_iter_ : int, classifiers projected out
    """

    def __init__(self, max_iter: int = 20, tol: float = 0.01, n_folds: int = 5, estimator=None):
        self.max_iter = max_iter
        self.tol = tol
        self.n_folds = n_folds
        self.estimator = estimator

    def fit(self, R, labels):
        """R : (n_words, H); labels : (n_words,)."""
        R, labels = _check_xy(R, labels, "INLP.fit")
        if len(np.unique(labels)) < 2 or len(R) < 2 * self.n_folds:
            raise ValueError(f"INLP: needs 2 or more classes and >= {2 * self.n_folds} words; got "
                             f"{len(np.unique(labels))} classes in {len(R)} words.")
        base = self.estimator if self.estimator is not None else LogisticRegression(max_iter=1000)
        basis, proj = np.zeros((R.shape[1], 0)), np.eye(R.shape[1])
        self.accuracies_ = []
        for _ in range(self.max_iter + 1):
            score = probe_accuracy(R @ proj, labels, self.n_folds, base)
            self.accuracies_.append(score.accuracy)
            self.majority_ = score.chance
            if score.accuracy <= score.chance + self.tol or len(self.accuracies_) > self.max_iter:
                break
            clf = clone(base).fit(R @ proj, labels)
            basis = scipy.linalg.orth(np.hstack([basis, proj @ np.atleast_2d(clf.coef_).T]))
            proj = np.eye(R.shape[1]) - basis @ basis.T
        self.projection_, self.directions_ = proj, basis
        self.n_iter_ = len(self.accuracies_) - 1
        return self

    def transform(self, R) -> np.ndarray:
        """``R @ projection_``, shape (n_words, H)."""
        if not hasattr(self, "projection_"):
            raise RuntimeError("INLP.transform: call fit(R, labels) first.")
        return np.asarray(R, dtype=np.float64) @ self.projection_


@dataclass(frozen=True)
class ProbeScore:
    """Cross-validated linear-probe accuracy and the majority-class accuracy on the same folds."""

    accuracy: float
    sd: float
    chance: float


def probe_accuracy(R, labels, n_folds: int = 5, estimator=None) -> ProbeScore:
    """Linear probe of a property, contiguous ``n_folds``-fold CV inside the words given.

    Pass training words only: the probe reports what a removal fitted there left behind.
    ``chance`` is the accuracy of the best constant guess on each held-out fold (its most frequent
    class), averaged over folds: what a probe without information about the property can reach.
    With contiguous folds and sentence-level labels, a most-frequent-class classifier *trained* on
    the other folds often predicts the held-out fold's minority class and sits below that.

    Parameters
    ----------
    R : array of shape (n_words, H)
    labels : array of shape (n_words,)
    estimator : scikit-learn classifier, default LogisticRegression(max_iter=1000)
    """
    R, labels = _check_xy(R, labels, "probe_accuracy")
    cv = KFold(n_folds)
    acc = cross_val_score(estimator if estimator is not None else LogisticRegression(max_iter=1000),
                          R, labels, cv=cv)
    chance = [np.unique(labels[test], return_counts=True)[1].max() / len(test) for _, test in cv.split(R)]
    return ProbeScore(float(acc.mean()), float(acc.std()), float(np.mean(chance)))


def probe_layers(layers: Sequence[np.ndarray], labels, n_folds: int = 5, estimator=None) -> dict[str, np.ndarray]:
    """`probe_accuracy` of each layer: ``{"accuracy", "sd", "chance"}``, arrays of shape (n_layers,)."""
    scores = [probe_accuracy(R, labels, n_folds, estimator) for R in layers]
    return {k: np.array([getattr(s, k) for s in scores]) for k in ("accuracy", "sd", "chance")}


def reached_chance(score: ProbeScore, tol: float = 0.03) -> bool:
    """True when the probe is no better than majority class + ``tol`` (removal worked)."""
    return score.accuracy <= score.chance + tol


def removal_effect_corr(delta_probe, delta_align) -> tuple[np.ndarray, np.ndarray]:
    """Pearson r across layers between the probe's accuracy drop and the alignment drop.

    The paper's statistic per property and region (analysis_methods §1.9):
    ``r = corr_layers(acc_before − acc_after, align_before − align_after)``.

    Parameters
    ----------
    delta_probe : array of shape (n_layers,)
    delta_align : array of shape (n_layers,) or (n_layers, n_regions)

    Returns
    -------
    r, p : arrays of shape (n_regions,) (one entry for 1-D ``delta_align``); two-sided p
    """
    x, y = np.asarray(delta_probe, dtype=float), np.asarray(delta_align, dtype=float)
    if x.ndim != 1 or len(x) < 3 or y.ndim not in (1, 2) or len(y) != len(x):
        raise ValueError(f"removal_effect_corr: delta_probe must be (n_layers,) with n_layers >= 3 "
                         f"and delta_align (n_layers[, n_regions]); got {x.shape} and {y.shape}.")
    y = y.reshape(len(x), -1)
    res = [scipy.stats.pearsonr(x, y[:, j]) for j in range(y.shape[1])]
    return np.array([r.statistic for r in res]), np.array([r.pvalue for r in res])


def scaled_probe() -> BaseEstimator:
    """The probe of `remove_from_layers`: standardised features, then logistic regression, so that a property
    carried by low-variance directions counts as much as by high-variance ones."""
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))


@dataclass
class LayerRemoval:
    """A property removed from every layer, and the probes that check it (``probe_layers`` dicts, (L,) arrays)."""

    removed: np.ndarray  # (L, n_words, D)
    probe_before: dict[str, np.ndarray]
    probe_after: dict[str, np.ndarray]
    inlp_iterations: list[int] | None = None  # classifiers INLP projected out, per layer


def remove_from_layers(R, labels, method: str = "residual", fit_on: str = "all", train=None, n_folds: int = 5,
                       max_iter: int = 20, tol: float = 0.03, alphas=RESIDUAL_ALPHAS) -> LayerRemoval:
    """Remove a property from each layer's word representations and probe it before and after.

    Parameters
    ----------
    R : array of shape (L, n_words, D)
    labels : array of shape (n_words,), the property's class per word
    method : "residual" (`remove_property`) or "inlp" (`INLP` fitted on the ``train`` words standardised with
        their mean and sd, whatever ``fit_on``, so that its stop rule sees the probe's words; the projection
        is applied to every word, which stays in those standardised units)
    fit_on : residual only: "all" (every word, the paper) or "train" (fit on ``train`` words, apply to all)
    max_iter, tol : INLP's most classifiers and its stop rule (CV accuracy <= chance + ``tol``)
    alphas : the residual approach's λ grid (default the paper's, chosen per dimension by CV)
    train : bool array of shape (n_words,): the training runs' words; the probes (`scaled_probe`, contiguous
        ``n_folds``-fold CV) see only these. Default: every word.
    """
    R, labels = np.asarray(R, dtype=np.float64), np.asarray(labels)
    if R.ndim != 3 or R.shape[1] != len(labels):
        raise ValueError(f"remove_from_layers: R must be (L, n_words={len(labels)}, D), got {R.shape}")
    train = np.ones(len(labels), bool) if train is None else np.asarray(train, dtype=bool)
    removed, iterations = [], []
    for layer in R:
        if method == "residual":
            removed.append(remove_property(layer, labels, fit_on, train, alphas, n_folds=10))
        elif method == "inlp":
            mu, sd = layer[train].mean(0), layer[train].std(0) + 1e-12
            inlp = INLP(max_iter, tol, n_folds).fit((layer[train] - mu) / sd, labels[train])
            removed.append(inlp.transform((layer - mu) / sd))
            iterations.append(inlp.n_iter_)
        else:
            raise ValueError(f"remove_from_layers: method {method!r} is not 'residual' or 'inlp'")
    removed = np.stack(removed)
    before = probe_layers([layer[train] for layer in R], labels[train], n_folds, scaled_probe())
    after = probe_layers([layer[train] for layer in removed], labels[train], n_folds, scaled_probe())
    return LayerRemoval(removed, before, after, iterations or None)
