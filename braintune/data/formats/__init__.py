"""Dataset layouts -> ``Study``. ``FORMATS`` maps ``data.format`` to a ``DatasetFormat``: how to open the layout,
its own config section (``data.<format>``), its defaults for generic settings and the facts generic code asks
about (label tables, target geometry). Formats from other packages register through the ``braintune.formats``
entry point group (docs/extending.md).

``open_study(data_cfg)`` opens any layout the same way: the format's reader, then the generic edge trim
(``data.trim_trs``, default the format's), target selection (regions, noise ceiling) and the response cache.
"""
from __future__ import annotations

from pathlib import Path

from ...errors import DataError
from ...registry import Registry
from ..paths import allow_outside_root
from ..study import Study
from .base import DatasetFormat, TargetSpace

__all__ = ["FORMATS", "DatasetFormat", "TargetSpace", "format_options", "layout_labels", "open_study", "target_space",
           "trim_trs"]


def _builtins() -> dict[str, DatasetFormat]:
    from . import algonauts, bids, lebel, manifest, synthetic, synthetic_friends

    return {"lebel": lebel.FORMAT, "algonauts": algonauts.FORMAT, "bids": bids.FORMAT, "manifest": manifest.FORMAT,
            "synthetic": synthetic.FORMAT, "synthetic_friends": synthetic_friends.FORMAT}


FORMATS: Registry[DatasetFormat] = Registry("braintune.formats", "data.format", _builtins())


def format_options(data_cfg, name: str | None = None):
    """The ``data.<format>`` section of ``data_cfg`` (None when the format has none)."""
    name = name or data_cfg.format
    return getattr(data_cfg, name, None) if FORMATS[name].options is not None else None


def trim_trs(data_cfg) -> int:
    """``data.trim_trs``, or the format's default when it is None."""
    value = getattr(data_cfg, "trim_trs", None)
    return FORMATS[data_cfg.format].trim_trs if value is None else int(value)


def open_study(data_cfg) -> Study:
    """Open ``data_cfg.root`` with the format named by ``data_cfg.format``; trim, select targets, cache."""
    fmt = FORMATS[data_cfg.format]
    with allow_outside_root(getattr(data_cfg, "allow_outside_root", False)):  # paths named in data files (data.paths)
        study = fmt.open(Path(data_cfg.root), format_options(data_cfg))
    study.trim(trim_trs(data_cfg))
    return _prepare(study, data_cfg)


def _prepare(study: Study, data_cfg) -> Study:
    """Apply the config's target selection and response cache to any layout's study."""
    from .. import cache, targets

    if getattr(data_cfg, "regions", None) or getattr(data_cfg, "ceiling_threshold", None) is not None:
        labels = getattr(data_cfg, "labels", None)
        if labels is not None and not Path(labels).is_file():
            raise DataError(f"data.labels '{labels}' does not exist; give a TSV of index, name per target")
        labels_of = (lambda p: Path(labels)) if labels else (lambda p: layout_labels(study, p))
        targets.select_targets(study, data_cfg.regions, labels_of, data_cfg.ceiling_threshold)
    cache.configure(getattr(data_cfg, "cache_dir", None))  # the config, not a stale environment, decides
    if getattr(data_cfg, "cache_dir", None):
        study.sources = {k: cache.CachedSource(s, data_cfg.cache_dir) for k, s in study.sources.items()}
    return study


def layout_labels(study: Study, participant: str) -> Path | None:
    """The label table the study's layout ships for ``participant`` (None when it ships none)."""
    fmt = FORMATS.get(study.format)
    return fmt.labels(study, participant) if fmt is not None and fmt.labels is not None else None


def target_space(study: Study, participant: str, data_cfg) -> TargetSpace | None:
    """Where ``participant``'s targets live, as the study's layout declares it (None: unknown)."""
    fmt = FORMATS.get(study.format)
    if fmt is None or fmt.space is None:
        return None
    return fmt.space(study, participant, format_options(data_cfg, study.format) if data_cfg is not None else None)
