"""Dataset layouts -> ``Study``. ``FORMATS`` maps ``data.format`` to a function ``(DataConfig) -> Study``."""
from __future__ import annotations

from typing import Callable

from ..study import DataError, Study
from . import lebel, synthetic


def _synthetic(cfg) -> Study:
    s = cfg.synthetic
    spec = synthetic.SyntheticSpec(s.participants, s.stories, s.story_seconds, list(s.targets), s.noise, s.seed)
    return synthetic.open_study(cfg.root, spec)


FORMATS: dict[str, Callable] = {
    "lebel": lambda cfg: lebel.open_study(cfg.root),
    "synthetic": _synthetic,
}


def open_study(data_cfg) -> Study:
    """Open ``data_cfg.root`` with the adapter named by ``data_cfg.format``."""
    if data_cfg.format not in FORMATS:
        raise DataError(f"data.format '{data_cfg.format}' has no reader; available: {', '.join(sorted(FORMATS))}")
    return FORMATS[data_cfg.format](data_cfg)
