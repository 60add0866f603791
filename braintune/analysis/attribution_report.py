"""BA and NWP word attributions of the same TRs (rows pooled over participants and runs) in; the comparison of
Proietti, Capobianco & Toneva 2025 per layer group out, as plain numbers for summary.json (analysis_methods.md §3.6).

Per group: IoU of the important-word sets at every threshold against the closed-form random baseline, set sizes
and spread AUC of BA vs NWP (two-sided paired t-tests, Benjamini-Hochberg over thresholds, or over groups for the
AUC), positional statistics and profiles, and the linguistic breakdown when word annotations are given. The tests
pair BA and NWP on each TR (BA averaged over participants first). Neighbouring TRs share most of their context,
so these p-values treat correlated TRs as independent: read them as descriptive. Also here: the outputs' other
parts (``attributions.npz``, the context and look-ahead records, pooled word annotations).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from braintune.analysis import attribution_metrics as M
from braintune.errors import ConfigError, DataError


@dataclass
class Paired:
    """Rows of attributions: ``ba`` and ``nwp`` (N, L) signed scores of the same contexts, ``word`` (N,) the last
    context word as an index into the pooled words of every run, ``tr`` (N,) the (run, TR) each row belongs to."""

    ba: np.ndarray
    nwp: np.ndarray
    word: np.ndarray
    tr: np.ndarray


def pool(items) -> Paired:
    """``items``: (BA ``Attributions``, NWP ``Attributions`` of the same TRs, word offset of the run, TR-key offset)."""
    for ba, nwp, _, _ in items:
        if not np.array_equal(ba.trs, nwp.trs) or ba.scores.shape != nwp.scores.shape:
            raise ValueError("attribution_report.pool: BA and NWP attributions cover different TRs or context widths; "
                             "attribute both objectives on the same TRs with the same context_words")
    return Paired(np.concatenate([b.scores for b, _, _, _ in items]), np.concatenate([n.scores for _, n, _, _ in items]),
                  np.concatenate([b.last_word + off for b, _, off, _ in items]),
                  np.concatenate([np.arange(len(b.trs)) + key for b, _, _, key in items]))


def by_tr(values, tr) -> np.ndarray:
    """Mean of ``values`` (..., N) over the rows of each TR key -> (..., n_keys), keys in increasing order."""
    keys, index = np.unique(tr, return_inverse=True)
    values = np.asarray(values, float)
    sums = np.zeros(values.shape[:-1] + (len(keys),))
    np.add.at(sums, (..., index), values)
    return sums / np.bincount(index)


def set_metrics(ba, nwp, thresholds, chunk: int = 1024) -> dict[str, np.ndarray]:
    """Per row: IoU and random IoU (n_thr, N), set sizes (n_thr, N) and spread AUC (N,) of both objectives; computed
    ``chunk`` rows at a time (the sets are n_thr x rows x context booleans)."""
    parts = []
    for s in range(0, len(ba), chunk):
        sa, sb = M.important_sets(ba[s:s + chunk], thresholds), M.important_sets(nwp[s:s + chunk], thresholds)
        iou, base = M.iou_table(sa, sb, M.context_lengths(ba[s:s + chunk]))
        parts.append({"iou": iou, "iou_random": base, "size_ba": sa.sum(-1), "size_nwp": sb.sum(-1),
                      "auc_ba": M.spread_auc(sa, thresholds), "auc_nwp": M.spread_auc(sb, thresholds)})
    return {k: np.concatenate([p[k] for p in parts], axis=-1) for k in parts[0]}


def profile_edges(width: int) -> np.ndarray:
    """Bin edges of positional profiles: one bin per word up to 8 words back, then ~16 log-spaced bins to ``width``."""
    if width <= 8:
        return np.arange(width + 1)
    return np.unique(np.r_[np.arange(8), np.round(np.geomspace(8, width, 16)).astype(int)])


def _tests(result: dict) -> dict:
    return {k: np.asarray(v).tolist() for k, v in result.items()}


def positional(scores) -> dict[str, float]:
    """Mean over rows of each positional statistic (``attribution_metrics.positional_stats``)."""
    return {k: float(np.nanmean(v)) for k, v in M.positional_stats(scores).items()}


def group_summary(p: Paired, thresholds, profile_thresholds, annotations=None, q: float = 0.05) -> tuple[dict, dict]:
    """Summary of one layer group and the per-TR arrays the cross-group tests need (``auc_ba``, ``auc_nwp``)."""
    m = set_metrics(p.ba, p.nwp, thresholds)
    iou_tr, base_tr = by_tr(m["iou"], p.tr), by_tr(m["iou_random"], p.tr)
    com = {k: by_tr(M.positional_stats(s)["center_of_mass"], p.tr) for k, s in (("ba", p.ba), ("nwp", p.nwp))}
    edges = profile_edges(p.ba.shape[1])
    out = {
        "n_rows": len(p.ba), "n_trs": iou_tr.shape[-1], "thresholds": list(thresholds),
        "iou": {"mean": np.nanmean(m["iou"], 1).tolist(), "random": np.nanmean(m["iou_random"], 1).tolist(),
                "vs_random": _tests(M.compare_paired(iou_tr, base_tr, q))},
        "set_size": {"ba": m["size_ba"].mean(1).tolist(), "nwp": m["size_nwp"].mean(1).tolist(),
                     "ba_vs_nwp": _tests(M.compare_paired(by_tr(m["size_ba"], p.tr), by_tr(m["size_nwp"], p.tr), q))},
        "spread_auc": {"ba": float(m["auc_ba"].mean()), "nwp": float(m["auc_nwp"].mean())},
        "positional": {"ba": positional(p.ba), "nwp": positional(p.nwp),
                       "center_of_mass_ba_vs_nwp": _tests(M.compare_paired(com["ba"], com["nwp"], q))},
        "profile": {"edges": edges.tolist(), **{
            k: {f"{t:g}": row.tolist() for t, row in zip(profile_thresholds, M.positional_profile(
                M.important_sets(s, profile_thresholds), s, edges))} for k, s in (("ba", p.ba), ("nwp", p.nwp))}},
    }
    if annotations:
        sa, sb = M.important_sets(p.ba, profile_thresholds), M.important_sets(p.nwp, profile_thresholds)
        out["linguistic"] = {f"{t:g}": {name: dict(zip(("ba_only", "nwp_only", "both"), map(float, shares)))
                                      for name, shares in M.linguistic_breakdown(a, b, p.word, p.ba, annotations).items()}
                             for t, a, b in zip(profile_thresholds, sa, sb)}
    return out, {"auc_ba": by_tr(m["auc_ba"], p.tr), "auc_nwp": by_tr(m["auc_nwp"], p.tr)}


def spread_tests(per_tr: dict[str, dict], q: float = 0.05) -> dict:
    """BA vs NWP spread AUC per group (paired over TRs), Benjamini-Hochberg across the groups."""
    names = list(per_tr)
    res = M.compare_paired([per_tr[n]["auc_ba"] for n in names], [per_tr[n]["auc_nwp"] for n in names], q)
    return {name: {k: np.asarray(v)[i].item() for k, v in res.items()} for i, name in enumerate(names)}


def pooled_annotations(template: str, texts: dict, runs: list[str], offsets: dict) -> dict[str, np.ndarray]:
    """Word annotations of every run (``template`` with ``{run}``; ``attribution_metrics.read_word_annotations``)
    pooled on the word offsets of `pool`: feature type -> bool (total words,)."""
    pooled: dict[str, np.ndarray] = {}
    total = sum(len(texts[r]) for r in runs)
    for r in runs:
        file = Path(template.replace("{run}", r))
        if not file.is_file():
            raise ConfigError(f"'attribution.annotations' names '{file}' for run {r}, which is not a file; give a TSV "
                              f"(word_index, word, features) per run, '{{run}}' standing for the run's name")
        try:
            table = M.read_word_annotations(file, len(texts[r]), texts[r])
        except ValueError as err:
            raise DataError(str(err)) from err
        for name, has in table.items():
            pooled.setdefault(name, np.zeros(total, bool))[offsets[r]:offsets[r] + len(texts[r])] = has
    return pooled


def write_attributions(path: Path, runs: list[str], texts: dict, chosen: dict, results: dict) -> Path:
    """``attributions.npz``: per run its words and attributed TRs; per objective (``nwp/<run>``,
    ``ba/<group>/<participant>/<run>``) the scores (n_trs, context_words; column j is word ``last_word - j``, NaN
    beyond the context), F(x) and, for IG, the completeness error; ``layer/<group>`` the chosen hidden state."""
    arrays = {f"layer/{g}": np.asarray(layer) for g, layer in chosen.items()}
    for r in runs:
        nwp = results[f"nwp/{r}"]
        arrays.update({f"run/{r}/words": np.asarray(texts[r]), f"run/{r}/trs": nwp.trs,
                       f"run/{r}/last_word": nwp.last_word})
    for key, att in results.items():
        arrays.update({f"{key}/scores": att.scores.astype(np.float32), f"{key}/objective": att.objective})
        if np.isfinite(att.delta).any():
            arrays[f"{key}/ig_delta"] = att.delta
    np.savez_compressed(path, **arrays)
    return path


def context_record(requested: int, positions, results: dict) -> dict:
    """The context actually used: words per attributed TR (the model's positions may have cut ``requested``)."""
    n = np.concatenate([M.context_lengths(att.scores) for key, att in results.items() if key.startswith("nwp/")])
    return {"requested_words": requested, "model_positions": positions, "words_mean": float(n.mean()),
            "words_min": int(n.min()), "words_max": int(n.max())}


def lookahead_record(delays, tr: dict) -> dict:
    """How far past each TR's time the attributed words reach (they never do)."""
    return {"lookahead_s": 0.0, "rule": ("TR j holds the words that ended in [t_j - TR, t_j) (t_j: the middle of volume "
                                         "j); the context of TR t ends at the last word of TR t - min(delays)"),
            "min_delay_trs": int(min(delays)), "words_end_s_before_tr": {r: min(delays) * v for r, v in tr.items()}}
