"""Config -> the study, the participant and run splits, and Lightning dataloaders of segments.

Splits are by run (story / episode), never by TR; held-out participants never reach training.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial

import lightning as L
import torch
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from ..errors import DataError
from .dataset import SegmentDataset, collate_segments
from .formats import open_study
from .modalities import StimulusSpec
from .response_store import store_responses
from .responses import Responses
from .study import Study

log = logging.getLogger(__name__)


@dataclass
class Splits:
    participants: list[str]  # tuned on
    heldout: list[str]  # never tuned on; used to measure generalisation
    train_runs: list[str]
    val_runs: list[str]
    test_runs: list[str]


def make_splits(study: Study, data_cfg) -> Splits:
    """Resolve participants and runs from the config and the study's conventions; refuse unknown names.

    Runs that showed one stimulus (Life or Hidden Figures shown twice, a repeated story as separate runs) stay in
    one split: the other showings of a test or validation run join that split (logged), never training.
    """
    heldout = list(data_cfg.heldout_participants)
    participants = list(data_cfg.participants) if data_cfg.participants is not None else [p for p in study.participants if p not in heldout]
    named = list(data_cfg.test_runs) if data_cfg.test_runs is not None else list(study.default_test_runs)
    study.check_names(participants + heldout, named + list(data_cfg.val_runs or []))
    if not named:
        raise DataError(f"no test run: the {study.format} layout under '{study.root}' has no conventional test run; set data.test_runs")
    if not participants:
        raise DataError(f"no participant left to tune on under '{study.root}' after removing held-out {heldout}")
    test = _with_showings(study, named, "test")
    heard = sorted({r for p in participants for r in study.runs_of(p)} - set(test))
    if data_cfg.val_runs is not None:
        val = _with_showings(study, list(data_cfg.val_runs), "validation")
        overlap = [r for r in val if r in test]
        if overlap:
            raise DataError(f"runs {overlap} are both validation and test runs (named, or showing a test run's stimulus: "
                            f"{study.showings()}); a run, and every showing of its stimulus, belongs to one split")
    else:
        val = _with_showings(study, [r for r in study.default_val_runs if r in heard] or heard[:1], "validation")
        val = [r for r in val if r in heard]
    train = [r for r in heard if r not in val]
    if not train:
        raise DataError(f"no training run left under '{study.root}' after test {test} and validation {val}; add runs or set data.val_runs")
    return Splits(participants, heldout, train, val, test)


def _with_showings(study: Study, runs: list[str], split: str) -> list[str]:
    """``runs`` and the other showings of their stimuli, which join them in ``split``."""
    out = study.with_showings(runs)
    if len(out) > len(runs):
        log.warning("%s runs %s also take %s: they showed the same stimulus, and a stimulus never straddles splits",
                    split, runs, out[len(runs):])
    return out


class EpochShuffle(Sampler[int]):
    """A random order of ``n`` items that depends only on (seed, epoch).

    ``RandomSampler`` draws its order from the global RNG when the loader is first iterated, which Lightning does
    before any epoch hook on a resumed run, so a resumed epoch would see another order than the uninterrupted run.
    """

    def __init__(self, n: int, seed: int, epoch: int = 0):
        self.n, self.seed, self.epoch = n, seed, epoch

    def set_epoch(self, epoch: int) -> None:  # Lightning calls this before every epoch
        self.epoch = epoch

    def __iter__(self):
        return iter(torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist())

    def __len__(self) -> int:
        return self.n


class SegmentDataModule(L.LightningDataModule):
    """Training and validation segments of the tuned participants; ``spec`` (what the backbone reads) is set by
    whoever pairs the data with a model, before the loaders are asked for."""

    def __init__(self, study: Study, splits: Splits, responses: Responses, segment_trs: int, span, context_s: float,
                 batch_size: int, num_workers: int = 0, shuffle: bool = True, seed: int = 0):
        super().__init__()
        self.study, self.splits, self.responses = study, splits, responses
        self.kw = dict(participants=splits.participants, segment_trs=segment_trs, span=span, context_s=context_s)
        self.batch_size, self.num_workers, self.shuffle, self.seed = batch_size, num_workers, shuffle, seed
        self.collate = partial(collate_segments, participants=splits.participants, n_targets=responses.n_targets)
        self.spec: StimulusSpec | None = None

    def _dataset(self, runs: list[str], full_segments: bool = False) -> SegmentDataset:
        if self.spec is None:
            raise RuntimeError("SegmentDataModule.spec is unset: assign the backbone's spec before training")
        return SegmentDataset({r: self.study.runs[r] for r in runs}, self.responses.data, spec=self.spec,
                              full_segments=full_segments, **self.kw)

    def sample_batch(self, batch_size: int) -> dict:
        """The first ``batch_size`` training segments collated: what one training step of that size holds."""
        dataset = self._dataset(self.splits.train_runs, full_segments=True)
        return self.collate([dataset[i] for i in range(min(batch_size, len(dataset)))])

    def train_dataloader(self) -> DataLoader:
        dataset = self._dataset(self.splits.train_runs, full_segments=True)
        sampler = None
        trainer = self.trainer
        if self.shuffle and (trainer is None or trainer.world_size == 1):  # under DDP Lightning's DistributedSampler shuffles
            sampler = EpochShuffle(len(dataset), self.seed, trainer.current_epoch if trainer is not None else 0)
        elif not self.shuffle and trainer is not None and trainer.world_size > 1:
            # Lightning's own DistributedSampler always shuffles training data; keep the order fixed as asked
            sampler = DistributedSampler(dataset, num_replicas=trainer.world_size, rank=trainer.global_rank, shuffle=False)
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=self.shuffle and sampler is None, sampler=sampler,
                          collate_fn=self.collate, num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def val_dataloader(self) -> DataLoader:
        # one segment per batch: every TR scored once and no segment padded with another's audio
        return DataLoader(self._dataset(self.splits.val_runs), batch_size=1, shuffle=False,
                          collate_fn=self.collate, num_workers=self.num_workers)


def _check_band(cfg, study: Study, runs: list[str]) -> None:
    """A block may not reach past its segment: ``band.lookahead_s`` must stay below one segment's duration."""
    if not cfg.band.training:
        return
    shortest = min(study.runs[r].timing.tr for r in runs) * cfg.data.segment_trs
    if cfg.band.lookahead_s >= shortest:
        raise DataError(f"band.lookahead_s is {cfg.band.lookahead_s} s but a segment of data.segment_trs="
                        f"{cfg.data.segment_trs} TRs lasts {shortest:.2f} s; allowed: 0 <= band.lookahead_s < {shortest:.2f}")


def build_datamodule(cfg, span) -> SegmentDataModule:
    """Open the dataset named by ``cfg.data``, split it, load and prepare the tuned participants' responses.

    ``span`` maps a segment's first and last TR times to the stimulus seconds its pooling windows need.
    """
    study = open_study(cfg.data)
    splits = make_splits(study, cfg.data)
    _check_band(cfg, study, splits.train_runs + splits.val_runs)
    # one z-scored copy per node, read per batch (data/response_store.py), not one per process in RAM
    responses = store_responses(study, splits.participants, splits.train_runs + splits.val_runs, cfg.data.zscore,
                                cfg.data.cache_dir)
    log.info("participants %s (held out %s); %d train, %d val, %d test runs",
             splits.participants, splits.heldout, len(splits.train_runs), len(splits.val_runs), len(splits.test_runs))
    d = cfg.data
    return SegmentDataModule(study, splits, responses, d.segment_trs, span, d.context_s, d.batch_size, d.num_workers,
                             d.shuffle, cfg.trainer.seed)
