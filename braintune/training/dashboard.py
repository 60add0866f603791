"""A training run's pictures and tables -> the dashboard (TensorBoard, W&B); the CSV logger keeps the scalars.

At the start: the resolved config and the dataset's ``inspect`` summary. At the start and the end of training
(``Dashboard.alignment("before" | "after", ...)``): the alignment-by-layer plot, the brain maps
(``evaluation.brainmaps.write_brain_maps``, under ``out_dir/brain_maps/<tag>``), a table of per-participant and
per-region alignment, and the mean r as scalars (CSV too). Pictures are PNG files in ``out_dir`` first, so the
report (``python -m braintune.report``) shows the same ones. Only the first process writes (DDP ranks > 0 do nothing).
"""
from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from ..data.formats import target_space
from ..evaluation.brainmaps import write_brain_maps
from ..evaluation.plots import plot_layers
from ..evaluation.results import AlignmentResult

TABLE_COLUMNS = ["when", "group", "participant", "layer", "mean r", "mean normalised r"]


def _png_pixels(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 of a PNG (TensorBoard's image format)."""
    import matplotlib.image as mpimg

    pixels = mpimg.imread(path)[..., :3]
    return (pixels * 255).round().astype(np.uint8) if pixels.dtype != np.uint8 else pixels


class Dashboard:
    """The loggers of a Lightning ``trainer`` that take pictures and tables (TensorBoard, W&B), for one run."""

    def __init__(self, trainer, cfg, study, out_dir: str | Path):
        self.active = bool(trainer.is_global_zero)
        self.loggers = list(trainer.loggers) if self.active else []
        self.trainer, self.cfg, self.study, self.out_dir = trainer, cfg, study, Path(out_dir)
        self.summaries: dict[str, dict] = {}

    def _each(self):
        """(kind, logger) for the loggers that take more than scalars: ``tensorboard`` or ``wandb``."""
        from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

        for lg in self.loggers:
            if isinstance(lg, TensorBoardLogger):
                yield "tensorboard", lg
            elif isinstance(lg, WandbLogger):
                yield "wandb", lg

    def text(self, key: str, text: str, step: int = 0) -> None:
        for kind, lg in self._each():
            if kind == "tensorboard":  # markdown: indent four spaces to keep the text preformatted
                lg.experiment.add_text(key, "\n".join("    " + line for line in text.splitlines()), step)
            else:
                import wandb

                lg.experiment.log({key: wandb.Html(f"<pre>{html.escape(text)}</pre>")})

    def table(self, key: str, columns: list[str], rows: list[list], step: int = 0) -> None:
        for kind, lg in self._each():
            if kind == "tensorboard":
                lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
                lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
                lg.experiment.add_text(key, "\n".join(lines), step)
            else:
                lg.log_table(key, columns=columns, data=[[str(c) for c in r] for r in rows])

    def image(self, key: str, path: Path, step: int = 0) -> None:
        for kind, lg in self._each():
            if kind == "tensorboard":
                lg.experiment.add_image(key, _png_pixels(path), step, dataformats="HWC")
            else:
                lg.log_image(key, [str(path)])

    def start(self, config: dict, inspect: dict) -> None:
        """The resolved config (YAML) and the dataset's ``inspect`` summary (a participants table and the JSON)."""
        if not self.active:
            return
        import yaml

        self.text("run/config", yaml.safe_dump(config, sort_keys=False))
        rows = [[p, inspect["n_targets"].get(p), len(inspect["runs_of"].get(p, []))] for p in inspect.get("participants", [])]
        self.table("dataset/participants", ["participant", "targets", "runs"], rows)
        self.text("dataset/inspect", json.dumps(inspect, indent=1, default=str))

    def alignment(self, tag: str, result: AlignmentResult, groups: dict[str, dict]) -> dict | str:
        """Log the alignment measured ``tag`` ("before" / "after") training: ``result`` (every participant) and its
        ``groups`` summaries ({"tuned": summary, "heldout": summary}); returns the brain maps' summary entry."""
        if not self.active:
            return "not written: not the first process"
        step = self.trainer.global_step
        self.summaries[tag] = groups.get("tuned") or next(iter(groups.values()))
        plot = plot_layers(self.summaries, self.out_dir / "alignment_by_layer.png")
        self.image(f"alignment/by_layer/{tag}", plot, step)
        rows = []
        for group, summary in groups.items():
            for p, e in summary.get("participants", {}).items():
                rows.append([tag, group, p, summary.get("layer"), f"{e['mean_r']:.4f}",
                             "" if e.get("mean_r_normalized") is None else f"{e['mean_r_normalized']:.4f}"]
                            + [f"{r}: {v:.4f}" for r, v in (e.get("regions") or {}).items() if v is not None])
            for lg in self.loggers:  # scalars reach every logger, CSV included
                lg.log_metrics({f"alignment/{tag}/{group}/mean_r": summary["mean_r"]}, step)
        self.table(f"alignment/table/{tag}", TABLE_COLUMNS + ["regions"], [r[:6] + ["; ".join(r[6:])] for r in rows], step)
        spaces = {p: target_space(self.study, p, self.cfg.data) for p in result.participants}
        maps = write_brain_maps(result, self.study, spaces, self.out_dir / "brain_maps" / tag, relative_to=self.out_dir)
        for entry in (maps.values() if isinstance(maps, dict) else []):
            for name in entry["files"]:
                if name.endswith(".png"):
                    self.image(f"brain_maps/{tag}/{Path(name).stem}", self.out_dir / name, step)
        if isinstance(maps, str):
            self.text(f"brain_maps/{tag}", maps, step)
        self._flush()
        return maps

    def _flush(self) -> None:
        """Write what is buffered: the end-of-training entries come after Lightning has finalised its loggers."""
        for lg in self.loggers:
            lg.save()
            if hasattr(lg.experiment, "flush"):  # TensorBoard's SummaryWriter
                lg.experiment.flush()
