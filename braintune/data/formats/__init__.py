"""Dataset layouts -> ``Study``. ``FORMATS`` maps ``data.format`` to a function ``(DataConfig) -> Study``."""
from __future__ import annotations

from typing import Callable

from ..study import DataError, Study
from . import algonauts, bids, lebel, manifest, synthetic, synthetic_friends


def _synthetic(cfg) -> Study:
    s = cfg.synthetic
    spec = synthetic.SyntheticSpec(s.participants, s.stories, s.story_seconds, list(s.targets), s.noise, s.seed)
    return synthetic.open_study(cfg.root, spec)


def _synthetic_friends(cfg) -> Study:
    s = cfg.synthetic  # data.synthetic sizes it: stories -> episodes (two parts each), story_seconds -> seconds per part
    spec = synthetic_friends.FriendsSpec(s.participants, s.stories, s.story_seconds, list(s.targets), s.noise, s.seed)
    return synthetic_friends.open_study(cfg.root, spec)


FORMATS: dict[str, Callable] = {
    "lebel": lambda cfg: lebel.open_study(cfg.root, response_dir=cfg.response_dir or lebel.RESPONSE_DIR),
    "synthetic": _synthetic,
    "algonauts": lambda cfg: algonauts.open_study(cfg.root),
    "synthetic_friends": _synthetic_friends,
    "bids": lambda cfg: bids.open_study(cfg.root, cfg.task, cfg.mask, cfg.atlas),
    "manifest": lambda cfg: manifest.open_study(cfg.root),
}


def open_study(data_cfg) -> Study:
    """Open ``data_cfg.root`` with the adapter named by ``data_cfg.format``."""
    if data_cfg.format not in FORMATS:
        raise DataError(f"data.format '{data_cfg.format}' has no reader; available: {', '.join(sorted(FORMATS))}")
    study = FORMATS[data_cfg.format](data_cfg)
    return _prepare(study, data_cfg)


def _prepare(study: Study, data_cfg) -> Study:
    """Apply the config's target selection and response cache to any layout's study."""
    from pathlib import Path

    from .. import cache, targets

    if getattr(data_cfg, "regions", None) or getattr(data_cfg, "ceiling_threshold", None) is not None:
        labels = getattr(data_cfg, "labels", None)
        if labels is not None and not Path(labels).is_file():
            raise DataError(f"data.labels '{labels}' does not exist")
        labels_of = (lambda p: Path(labels)) if labels else (lambda p: layout_labels(study, p))
        targets.select_targets(study, data_cfg.regions, labels_of, data_cfg.ceiling_threshold)
    cache.configure(getattr(data_cfg, "cache_dir", None))  # the config, not a stale environment, decides
    if getattr(data_cfg, "cache_dir", None):
        study.sources = {k: cache.CachedSource(s, data_cfg.cache_dir) for k, s in study.sources.items()}
    return study


def layout_labels(study: Study, participant: str):
    """The label table a layout ships beside its atlas (algonauts: fmri/<p>/atlas/*.tsv), if any."""
    found = sorted((study.root / "fmri" / participant / "atlas").glob("*.tsv"))
    return found[0] if found else None
