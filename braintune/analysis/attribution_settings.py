"""The ``attribution.*`` config section of ``evaluate.py attribute`` (a typed dataclass that ``braintune.config.Config``
includes), the allowed values of its choice keys (``CHOICES``) and the checks of its composite keys (``problems``).

The encoding model's delays, α grid and CV are ``alignment.*``, shared with ``evaluate.py alignment``; this section
holds only what the attribution adds.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Optional

THIRDS = ("early", "middle", "late")
TARGET_RULE = re.compile(r"^(all|top:[1-9][0-9]*|region:.+)$")


@dataclass
class AttributionConfig:
    """``evaluate.py attribute``: which words drive brain alignment vs next-word prediction (Proietti et al. 2025)."""

    layers: list[Any] = field(default_factory=lambda: list(THIRDS))  # thirds (best layer of each, on training runs) or hidden-state indices
    method: str = "gxi"  # gxi (Gradient x Input) | ig (Integrated Gradients, zero-embedding baseline: the validation option)
    ig_steps: int = 20  # IG interpolation steps
    context_words: int = 640  # words of context per TR (the paper's 640), capped at the model's positions (logged)
    targets: str = "all"  # BA objective's targets: all | top:K (K best by CV r on the training runs) | region:NAME (label table)
    ba_loss: str = "mse"  # mse (the paper's) | negcorr (minus each TR's share of the mean Pearson r)
    participants: Optional[list[str]] = None  # whose responses define BA objectives (None: every participant of the splits)
    runs: Optional[list[str]] = None  # runs attributed (None: the test runs); the encoders never see them
    max_trs: Optional[int] = None  # attribute at most this many evenly spaced TRs per run (None: every TR with a context)
    batch_size: int = 8  # contexts per forward / backward pass
    bf16: bool = True  # autocast the LM in bf16 on a GPU (head, pooling and losses stay float32)
    thresholds: list[float] = field(default_factory=lambda: [1, 2, 3, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98])
    profile_thresholds: list[float] = field(default_factory=lambda: [10, 60, 80])  # positional profiles, linguistic breakdown
    annotations: Optional[str] = None  # TSV (word_index, word, features) per run; "{run}" in the path is the run's name
    masking: bool = True  # the masking check (3 more forward passes per attributed TR and objective)
    mask_fraction: float = 0.01  # masking check: the top 1 % words (and as many random ones) replaced by random words
    fdr_q: float = 0.05  # Benjamini-Hochberg level of the BA vs NWP tests
    seed: int = 0  # random words of the masking check


CHOICES = {"attribution.method": ("gxi", "ig"), "attribution.ba_loss": ("mse", "negcorr")}


def problems(a: AttributionConfig) -> list[str]:
    """Every problem of the section at once, each naming its key, value and what is allowed."""
    out = []
    bad_layers = [v for v in a.layers if not (v in THIRDS or (isinstance(v, int) and not isinstance(v, bool)))]
    if not a.layers or bad_layers:
        out.append(f"'attribution.layers' is {a.layers}; give thirds ({', '.join(THIRDS)}) and/or hidden-state indices")
    if not TARGET_RULE.match(str(a.targets)):
        out.append(f"'attribution.targets' is {a.targets!r}; allowed: all, top:K (e.g. top:500), region:NAME")
    for key in ("context_words", "ig_steps", "batch_size"):
        if not isinstance(getattr(a, key), int) or getattr(a, key) < 1:
            out.append(f"'attribution.{key}' is {getattr(a, key)!r}; it must be a whole number of at least 1")
    if a.max_trs is not None and a.max_trs < 1:
        out.append(f"'attribution.max_trs' is {a.max_trs}; give at least 1, or null for every TR")
    for key in ("thresholds", "profile_thresholds"):
        values = getattr(a, key)
        if not values or not all(0 < v < 100 for v in values) or list(values) != sorted(set(values)):
            out.append(f"'attribution.{key}' is {values}; give increasing percentages strictly between 0 and 100")
    if not 0 < a.mask_fraction < 1:
        out.append(f"'attribution.mask_fraction' is {a.mask_fraction}; it must lie strictly between 0 and 1")
    if not 0 < a.fdr_q < 1:
        out.append(f"'attribution.fdr_q' is {a.fdr_q}; it must lie strictly between 0 and 1")
    return out
