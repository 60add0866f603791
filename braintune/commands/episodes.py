"""The models of ``evaluate.py downstream`` -> the Friends episodes they were tuned on, and each MUStARD task's test
clips split into seen / unseen episodes (``downstream.exclude_seen_episodes``, ``downstream.episode_table``;
matching in ``downstream.contamination``).

Where a checkpoint's training runs come from, in this order:

1. ``RUN/summary.json`` beside ``RUN/checkpoints/*.ckpt``, its ``runs.train``, when the training command wrote it (it
   has ``optimizer_steps``): the exact list the data module trained on (after missing runs, showings kept together and
   participants chosen), needing no dataset. It is a side file: absent after an interrupted run or for a checkpoint
   copied alone, and any later command run with the same ``out_dir`` overwrites it (hence the ``optimizer_steps`` check).
2. Else the checkpoint's own config (``Model.config``, stored inside the checkpoint, so it travels with the weights):
   its dataset opened and split by ``data.datamodule.make_splits``, the function training used. This needs the
   dataset at the config's ``data.root``, and gives a different list if runs were added there since.

The runs of a checkpoint the model started from (``init_from``, followed to its own start) are added: its weights saw
them too. A control (``shuffled:RUN/...``) counts its model's runs. ``base`` was tuned on nothing.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from ..config import Config, from_dict
from ..controls import CONTROLS
from ..data.datamodule import make_splits
from ..data.formats import open_study
from ..downstream import contamination as ct
from ..errors import ConfigError, DataError, UserError
from ..models import load_checkpoint

log = logging.getLogger(__name__)

MUSTARD_TASKS = ("mustard", "mustard_dependent")
FRIENDS_FORMATS = ("algonauts", "synthetic_friends")  # layouts whose runs are Friends episodes
MAX_INIT_CHAIN = 8  # init_from links followed (a longer chain is refused as a likely loop)


def _recorded(path: Path) -> tuple[list[str] | None, str]:
    """``runs.train`` of the training summary beside checkpoint ``path`` (``RUN/checkpoints/x.ckpt``), or None + why."""
    summary = path.resolve().parent.parent / "summary.json"
    if path.resolve().parent.name != "checkpoints" or not summary.is_file():
        return None, f"no training summary at '{summary}'"
    try:
        record = json.loads(summary.read_text())
    except (OSError, json.JSONDecodeError) as err:
        return None, f"'{summary}' cannot be read ({err})"
    runs = (record.get("runs") or {}).get("train") if isinstance(record, dict) else None
    if "optimizer_steps" not in record or not isinstance(runs, list):
        return None, f"'{summary}' is not a training summary with runs.train (another command wrote it)"
    return [str(r) for r in runs], f"'{summary}' runs.train"


def _reconstructed(own: Config) -> tuple[list[str] | None, str]:
    """The training runs that ``own``'s data config gives today (``make_splits``), or None + why."""
    where = f"data.format={own.data.format}, data.root={own.data.root}"
    if not Path(own.data.root).exists():
        return None, f"the checkpoint's data.root '{own.data.root}' does not exist"
    try:
        return make_splits(open_study(own.data), own.data).train_runs, f"split of the checkpoint's config ({where})"
    except UserError as err:
        return None, f"the checkpoint's config ({where}) cannot be split: {err}"


def training_runs(entry: str, own: Config) -> tuple[list[str] | None, list[str]]:
    """Model ``entry`` (with its own config ``own``) -> (the runs its weights were tuned on, or None when they cannot be
    told; where each part came from)."""
    runs: list[str] = []
    sources: list[str] = []
    for _ in range(MAX_INIT_CHAIN):
        head, _, rest = entry.partition(":")
        while rest and head in CONTROLS:  # a control transforms a model: it keeps that model's runs
            entry = rest
            head, _, rest = entry.partition(":")
        if entry == "base":
            return runs, sources + ["base: not tuned"]
        found, why = _recorded(Path(entry)) if Path(entry).is_file() else (None, "not a checkpoint file")
        if found is None:
            found, how = _reconstructed(own)
            why = f"{why}; {how}"
        if found is None:
            return None, sources + [f"{entry}: {why}"]
        runs += [r for r in found if r not in runs]
        sources.append(f"{entry}: {why}")
        if not own.init_from:
            return runs, sources
        entry = own.init_from
        try:
            own = from_dict(load_checkpoint(entry)["config"])
        except UserError as err:
            return None, sources + [f"init_from '{entry}': {err}"]
    raise ConfigError(f"init_from chain longer than {MAX_INIT_CHAIN} checkpoints from '{entry}'; is it a loop?")


def _tested(item) -> bool:
    """A task item that some probe is scored on: the test split, or a cross-validation fold."""
    return item.split == "test" or item.split.startswith("fold")


class EpisodeCheck:
    """Collects the measured models' tuned Friends episodes (``add``, right after each model is loaded, before any of
    its features) and, once the check is on, splits every MUStARD task's test clips by episode (matching runs once).

    ``downstream.exclude_seen_episodes``: None = on when a measured model was tuned on Friends episodes; true / false.
    """

    def __init__(self, cfg: Config, tasks: dict, task_roots: dict[str, str | None]):
        self.cfg, self.mode = cfg, cfg.downstream.exclude_seen_episodes
        self.tasks = {n: d for n, d in tasks.items() if n in MUSTARD_TASKS} if self.mode is not False else {}
        self.task_roots, self.roots = task_roots, [cfg.data.root]
        table = cfg.downstream.episode_table
        self.table = ct.read_episode_table(table) if table and self.tasks else None  # a bad table fails before encoding
        self.tuned: set[str] = set()
        self.record: dict[str, dict] = {}
        self.splits: dict[str, ct.EpisodeSplit] = {}

    def add(self, model, name: str) -> None:
        """Model ``model`` (``models.Model``, called ``name`` in the summary): its training runs; the clips are matched
        when the check turns on."""
        if not self.tasks:
            return
        runs, sources = training_runs(model.entry, model.config)
        if runs is None and (self.mode or model.config.data.format in FRIENDS_FORMATS):
            raise ConfigError(f"model '{model.entry}' was tuned on {model.config.data.format} data, but its training runs "
                              f"cannot be told ({'; '.join(sources)}); put its training summary.json back in its run "
                              "directory, make its data.root readable, or set downstream.exclude_seen_episodes=false")
        if runs is None:
            log.warning("training runs of '%s' cannot be told (%s); its episodes are not checked", model.entry,
                        "; ".join(sources))
        episodes = ct.seen_episodes(runs or [])
        self.tuned |= episodes
        self.record[name] = {"n_runs": None if runs is None else len(runs), "n_friends_episodes": len(episodes),
                             "source": sources}
        self.roots.append(model.config.data.root)
        if not self.splits and (self.mode or self.tuned):
            self.splits = {n: self._split(n, d) for n, d in self.tasks.items()}

    def _split(self, task: str, data) -> ct.EpisodeSplit:
        roots = [r for i, r in enumerate(self.roots) if r and r not in self.roots[:i]]
        transcripts = next((t for t in map(ct.friends_transcripts, roots) if t), None)
        if transcripts is None and self.table is None:
            raise DataError(f"downstream.exclude_seen_episodes is on, but no Friends transcripts were found under "
                            f"{[str(Path(r) / 'stimuli/transcripts/friends') for r in roots]} and no "
                            "downstream.episode_table is set; give the Algonauts 2025 root (data.root=DIR), a "
                            "clip_id<TAB>episode table, or set downstream.exclude_seen_episodes=false")
        tested = [it.id for it in data.items if _tested(it)]
        clips = ct.friends_clips(self.task_roots[task], tested)
        return ct.split_by_episode(clips, self.tuned, transcripts, self.table, str(self.cfg.downstream.episode_table))

    def result(self, task: str) -> tuple[dict | None, dict]:
        """(item groups for ``evaluate.run_task``: {"seen": ids, "unseen": ids, "unknown": ids}, or None when not
        checked; the record for summary.json)."""
        if task not in self.tasks or task not in self.splits:
            why = ("downstream.exclude_seen_episodes=false" if self.mode is False else
                   "not a MUStARD task" if task not in MUSTARD_TASKS else
                   "no measured model was tuned on Friends episodes")
            return None, {"checked": False, "why": why, **({"training_runs": self.record} if self.record else {})}
        split = self.splits[task]
        split.tuned = set(self.tuned)  # every model's episodes, also those loaded after the matching
        friends = set(split.matches)
        other = {it.id for it in self.tasks[task].items  # test clips of other shows: never in Friends tuning
                 if _tested(it) and it.id not in friends}
        groups = {"seen": split.ids("seen"), "unseen": split.ids("unseen") | other, "unknown": split.ids("unknown")}
        why = "on (downstream.exclude_seen_episodes=true)" if self.mode else "on: a measured model was tuned on Friends"
        return groups, {"checked": True, "why": why, "training_runs": self.record, "n_other_show": len(other),
                        **split.summary()}
