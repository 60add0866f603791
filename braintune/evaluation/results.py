"""Per-participant encoding results -> one typed ``AlignmentResult`` per model, serialised to summary.json here only.

``train``, ``alignment``, ``compare`` and the analyses consume the object (r per layer and target, ceilings, the
headline layer's test predictions); ``summary()`` is the one place that turns it into JSON.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .ceiling import normalized_r


@dataclass
class ParticipantAlignment:
    """One participant's encoding results: ``r[layer]`` (n_targets,) Pearson r per target on the test runs."""

    r: dict[int, np.ndarray]
    n_targets: int
    train_runs: list[str]
    test_runs: list[str]
    excluded: dict[str, int]
    kept: np.ndarray  # indices of the kept targets among the study's targets
    ceiling: np.ndarray | None = None  # (n_targets,) repeat-based noise ceiling, when the test run was repeated
    y_test: np.ndarray | None = None  # (n_test_trs, n_targets) responses of the headline layer's test rows
    pred: np.ndarray | None = None  # (n_test_trs, n_targets) the headline layer's predictions
    names: np.ndarray | None = None  # (n_study_targets,) label of each study target, when a label table exists

    def summary(self, layer: int, regions: tuple[str, ...], min_ceiling: float) -> dict:
        entry = {"mean_r": float(np.mean(self.r[layer])), "n_targets": self.n_targets,
                 "layers": {str(k): float(np.mean(v)) for k, v in self.r.items()}, "excluded_targets": self.excluded}
        if regions and self.names is not None:
            masks = region_masks(self.names[self.kept], list(regions))
            entry["regions"] = {k: float(self.r[layer][m].mean()) if m.any() else None for k, m in masks.items()}
        if self.ceiling is not None:
            entry["mean_ceiling"] = float(np.nanmean(self.ceiling))
            kept = np.isfinite(normalized_r(self.r[layer], self.ceiling, min_ceiling))
            entry.update(mean_r_normalized=self._normalized(self.r[layer], min_ceiling), n_targets_normalized=int(kept.sum()),
                         layers_normalized={str(k): self._normalized(v, min_ceiling) for k, v in self.r.items()})
        return entry

    def _normalized(self, r: np.ndarray, min_ceiling: float) -> float | None:
        """mean r / ceiling over the targets with ceiling >= min_ceiling (None when no target qualifies)."""
        nr = normalized_r(r, self.ceiling, min_ceiling)
        return float(np.nanmean(nr)) if np.isfinite(nr).any() else None


def region_masks(names: np.ndarray, regions: list[str]) -> dict[str, np.ndarray]:
    """(n_targets,) label names -> {region: targets whose name contains it (case-insensitive), "other": the rest}."""
    low = np.char.lower(names.astype(str))
    masks = {r: np.char.find(low, r.lower()) >= 0 for r in regions}
    masks["other"] = ~np.any(list(masks.values()), axis=0) if masks else np.ones(len(names), bool)
    return masks


@dataclass
class AlignmentResult:
    """The alignment of one model: every participant at every layer, the headline ``layer``, and the settings."""

    layer: int
    participants: dict[str, ParticipantAlignment]
    settings: dict = field(default_factory=dict)
    regions: tuple[str, ...] = ()
    min_ceiling: float = 0.05
    features: dict[str, np.ndarray] | None = field(default=None, repr=False)  # run -> (L, n_trs, D) used
    layers: list[int] = field(default_factory=list)  # hidden-state index of each features row

    def subset(self, participants: list[str]) -> AlignmentResult:
        return replace(self, participants={p: self.participants[p] for p in participants})

    def summary(self) -> dict:
        """The JSON summary: mean r at the headline layer, per participant, per layer, per region, normalised."""
        parts = {p: res.summary(self.layer, self.regions, self.min_ceiling) for p, res in self.participants.items()}
        out: dict = {}
        per_region = [e["regions"] for e in parts.values() if "regions" in e]
        if per_region:
            out["regions"] = {k: float(np.mean([d[k] for d in per_region if d[k] is not None] or [np.nan])) for k in per_region[0]}
        normalized = [e["mean_r_normalized"] for e in parts.values() if e.get("mean_r_normalized") is not None]
        if normalized:
            out.update(mean_r_normalized=float(np.mean(normalized)), min_ceiling=self.min_ceiling)
        layers = sorted(next(iter(self.participants.values())).r) if self.participants else []
        out.update(mean_r=float(np.mean([e["mean_r"] for e in parts.values()])) if parts else float("nan"),
                   layer=self.layer, participants=parts,
                   layers={str(k): float(np.mean([res.r[k].mean() for res in self.participants.values()])) for k in layers})
        if self.settings:
            out["settings"] = self.settings
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        """Per-target arrays, keyed ``{participant}/layer{l}`` (and ``{participant}/ceiling``), for ``np.savez``."""
        arrays = {}
        for p, res in self.participants.items():
            for k, r in res.r.items():
                arrays[f"{p}/layer{k}"] = r
            if res.ceiling is not None:
                arrays[f"{p}/ceiling"] = res.ceiling
        return arrays
