"""Brain-alignment evaluation: features on the TR clock -> ridge encoding models -> r, ceilings, regions, statistics.

The public names below are the library API; ``evaluate.py alignment`` / ``compare`` drive them from a config.
"""
from .ceiling import noise_ceiling, normalized_r, select_by_ceiling
from .efficiency import efficiency_curve, fraction_to_match
from .encoding import RidgeEncoder, make_delayed
from .metrics import correlation
from .partition import banded_ridge, variance_partition
from .resample import lanczos_resample, mean_in_tr, zscore_runs

__all__ = [
    "RidgeEncoder", "make_delayed", "correlation", "noise_ceiling", "normalized_r", "select_by_ceiling",
    "efficiency_curve", "fraction_to_match", "variance_partition", "banded_ridge", "lanczos_resample", "mean_in_tr",
    "zscore_runs",
]
