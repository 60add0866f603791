"""Per-model alignment arrays -> a model-class comparison with an explicit pairing unit, and maps written as data.

Oota et al. 2025 (analysis_methods.md §4.8.1) compare instruction-tuned MLLMs with a multimodal
(TVLT) and unimodal (VideoMAE, AST) baselines, each model at its best layer, with a Wilcoxon test. With 4
participants no test whose pairs are participants can reach p ≤ 0.05: an exact two-sided Wilcoxon test
bottoms out at 0.125, a one-sided sign-flip test at 1/2⁴ = 0.0625. ``compare_classes`` therefore states its
pairing unit and the smallest p its design can give:

* ``pairing="participant_x_region"`` (default): one pair per participant and region (atlas parcels or ROIs),
  the class difference averaged over the region's targets; a sign-flip permutation test of the mean
  difference. Regions, not single targets, because neighbouring voxels share signal and noise, so voxel
  pairs would overstate the number of independent observations. The inference is about these participants'
  regions (fixed effects), not about the population of participants.
* ``pairing="participant"``: one pair per participant, exact sign-flip test; honest, but underpowered.

Pairs of (participant × instruction × layer) are not offered: the baselines have no instructions and other
layer counts, so such pairs would be matched arbitrarily, and 13 × L pairs of one participant are not
independent. Correct several comparisons (classes × regions) with ``braintune.evaluation.stats.fdr_bh``.
"""
from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PAIRINGS = ("participant_x_region", "participant")
ALTERNATIVES = ("greater", "less", "two-sided")


def best_layer(scores) -> int:
    """Layer with the highest mean score over instructions, participants and targets of (I, L, P, V) scores."""
    scores = np.asarray(scores, float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return int(np.nanargmax(np.nanmean(scores, axis=(0, 2, 3))))


def model_scores(scores, layer: int | None = None) -> np.ndarray:
    """(I, L, P, V) -> (P, V): one model at ``layer`` (None: its best layer), averaged over instructions.

    A model without instructions (a baseline) is passed with I = 1. Choosing the best layer on the same
    test data favours every model alike; report it as such.
    """
    scores = np.asarray(scores, float)
    if scores.ndim != 4:
        raise ValueError(f"model_scores: expected (n_instructions, n_layers, n_participants, n_targets), "
                         f"got shape {scores.shape}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(scores[:, best_layer(scores) if layer is None else layer], axis=0)


def sign_flip_test(diffs, alternative: str = "greater", n_perm: int = 10000, seed: int = 0) -> tuple[float, float]:
    """Sign-flip permutation test of mean(diffs) = 0; exact (all 2ⁿ sign patterns) when 2ⁿ ≤ n_perm.

    Returns (p, smallest p the design can give).
    """
    diffs = np.asarray(diffs, float)
    if alternative not in ALTERNATIVES:
        raise ValueError(f"sign_flip_test: alternative='{alternative}' is not one of {ALTERNATIVES}")
    n = len(diffs)
    if 2 ** min(n, 62) <= n_perm:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))  # includes the observed (all +1)
    else:
        rng = np.random.default_rng(seed)
        signs = np.vstack([np.ones(n), rng.choice((1.0, -1.0), size=(n_perm, n))])
    null, obs = signs @ diffs / n, diffs.mean()
    stat = {"greater": lambda m: m, "less": lambda m: -m, "two-sided": np.abs}[alternative]
    p = float(np.mean(stat(null) >= stat(obs) - 1e-12))
    floor = 1 / len(signs) if alternative != "two-sided" or len(signs) > n_perm else 2 / len(signs)
    return p, floor


@dataclass(frozen=True)
class ClassComparison:
    """Outcome of ``compare_classes``: the pairing unit, pairs used, mean of a − b, p and the p floor."""
    pairing: str
    n_pairs: int
    mean_diff: float
    pvalue: float
    min_pvalue: float
    alternative: str
    test: str


def _pair_diffs(a: np.ndarray, b: np.ndarray, regions, pairing: str) -> np.ndarray:
    diff = a - b  # (P, V); NaN where either class excluded a target
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if pairing == "participant":
            out = np.nanmean(diff, axis=1)
        else:
            labels = np.asarray(regions)
            if labels.shape != (a.shape[1],):
                raise ValueError(f"compare_classes: regions must label each of the {a.shape[1]} targets, got "
                                 f"shape {labels.shape}; pass an atlas parcel / ROI name per target")
            names = [r for r in np.unique(labels) if r not in ("", None)]
            out = np.stack([np.nanmean(diff[:, labels == r], axis=1) for r in names], axis=1).ravel()
    return out[np.isfinite(out)]


def compare_classes(a, b, regions=None, pairing: str = "participant_x_region", alternative: str = "greater",
                    n_perm: int = 10000, seed: int = 0, alpha: float = 0.05) -> ClassComparison:
    """Is class ``a`` more aligned than class ``b``? Sign-flip test over explicit pairs (module docstring).

    Parameters
    ----------
    a, b : (n_participants, n_targets) class scores, e.g. the mean of ``model_scores`` over the class's models
    regions : (n_targets,) region / parcel name per target ("" = none); needed for "participant_x_region"
    pairing : "participant_x_region" or "participant"
    alternative : "greater" (a > b), "less" or "two-sided"
    n_perm : random sign patterns when exact enumeration would exceed it
    alpha : only for the warning when the design cannot reach it
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    if pairing not in PAIRINGS:
        raise ValueError(f"compare_classes: pairing='{pairing}' is not one of {PAIRINGS}")
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"compare_classes: a and b must both be (n_participants, n_targets), got {a.shape}, {b.shape}")
    diffs = _pair_diffs(a, b, regions, pairing)
    if len(diffs) == 0:
        raise ValueError("compare_classes: no pair has a finite difference (all targets excluded?)")
    p, floor = sign_flip_test(diffs, alternative, n_perm, seed)
    if floor > alpha:
        warnings.warn(f"compare_classes: {len(diffs)} {pairing} pairs cannot give p below {floor:.4g} > "
                      f"alpha={alpha}; use pairing='participant_x_region' or report effect sizes", stacklevel=2)
    exact = "exact" if 2 ** min(len(diffs), 62) <= n_perm else f"{n_perm} random sign patterns"
    return ClassComparison(pairing, len(diffs), float(diffs.mean()), p, floor, alternative,
                           f"sign-flip permutation of the mean difference ({exact})")


def save_maps(path: str | Path, **maps) -> Path:
    """Write arrays (and ``WinnerMap`` objects, as ``<name>_winner`` / ``_best`` / ``_labels``) to one npz."""
    arrays = {}
    for name, value in maps.items():
        if hasattr(value, "winner"):
            arrays.update({f"{name}_winner": value.winner, f"{name}_best": value.best,
                           f"{name}_labels": np.asarray(value.labels)})
        else:
            arrays[name] = np.asarray(value)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


def write_volume(values, mask_path: str | Path, out_path: str | Path) -> Path:
    """(n_targets,) values -> NIfTI in the grid of ``mask_path``, one value per nonzero mask voxel (C order,
    as the BIDS reader orders targets); NaN outside the mask."""
    import nibabel as nib

    img = nib.load(str(mask_path))
    mask = np.asarray(img.get_fdata()).round() != 0
    values = np.asarray(values, np.float32)
    if values.shape != (int(mask.sum()),):
        raise ValueError(f"write_volume: {values.shape[0] if values.ndim else 0} values but mask '{mask_path}' "
                         f"has {int(mask.sum())} voxels; pass one value per mask voxel")
    volume = np.full(mask.shape, np.nan, np.float32)
    volume[mask] = values
    nib.save(nib.Nifti1Image(volume, img.affine), str(out_path))
    return Path(out_path)


def write_surface(values, reference_path: str | Path, out_path: str | Path) -> Path:
    """(n_vertices,) values -> a GIfTI functional file matching the vertices of ``reference_path``
    (a .surf.gii or .func.gii of the same hemisphere and mesh, e.g. fsaverage6)."""
    import nibabel as nib

    ref = nib.load(str(reference_path))
    n_vertices = ref.darrays[0].data.shape[0]
    values = np.asarray(values, np.float32)
    if values.shape != (n_vertices,):
        raise ValueError(f"write_surface: {values.size} values but '{reference_path}' has {n_vertices} vertices; "
                         "pass one value per vertex of that hemisphere")
    img = nib.gifti.GiftiImage(darrays=[nib.gifti.GiftiDataArray(values, intent="NIFTI_INTENT_NONE")])
    nib.save(img, str(out_path))
    return Path(out_path)
