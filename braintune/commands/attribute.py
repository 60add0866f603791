"""``evaluate.py attribute -c CONFIG [checkpoint=...] attribution.layers=[early,middle,late] out_dir=OUT``: which
input words drive a language model's brain-alignment predictions (BA) vs its next-word prediction (NWP)
(Proietti, Capobianco & Toneva 2025; analysis_methods.md §3; issue 12).

1. Word features: one context of ``attribution.context_words`` words per TR (capped at the model's positions) ending
   at the TR's last word; a word's state is the mean of its sub-tokens, a TR's feature the mean of its words.
2. Encoders: per participant and candidate layer, braintune's FIR ridge (``alignment.delays``, α grid, CV) on the
   runs that are not attributed; the layer of each third with the highest cross-validated r (training runs only).
3. Attribution on the attributed runs (default: the test runs): the ridge weights as a differentiable head (BA: MSE
   or minus correlation to the recorded response over ``attribution.targets``), the LM head for NWP (masked-word
   for bidirectional models); Captum Gradient x Input (or IG), token scores summed to words.
4. Metrics (``analysis.attribution_report``), ``OUT/attributions.npz``, ``OUT/summary.json`` and three PNGs.

Attributions are checkpointed per batch of TRs under ``OUT/attribution_checkpoints`` (a rerun resumes). Several
processes (``trainer.devices`` > 1, or torchrun / SLURM, launched as training is, through Lightning Fabric) each
attribute every n-th TR into those checkpoints; rank 0 then merges them and writes the outputs.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np

from ..analysis import attribution_metrics as M
from ..analysis.attribution import NextWordObjective, default_trs, story_layer_features
from ..analysis.attribution import attribute as attribute_words
from ..analysis.attribution_context import story_from_words
from ..analysis.attribution_encoding import brain_objective, choose_layers, fit_layer, layer_groups, select_targets
from ..analysis.attribution_plots import plot_iou, plot_profiles, plot_spread
from ..analysis.attribution_report import (
    context_record,
    group_summary,
    lookahead_record,
    pool,
    pooled_annotations,
    positional,
    spread_tests,
    write_attributions,
)
from ..analysis.attribution_settings import problems
from ..analysis.lm_head import language_model
from ..config import Config, save_config
from ..data.modalities import load_words
from ..data.responses import prepare_responses
from ..errors import ConfigError, DataError
from ..evaluation.alignment import target_names
from ..models import checkpoint_entry, load_model
from ..training.setup import n_devices
from .common import alignment_settings, open_splits, write_summary

log = logging.getLogger(__name__)
BARRIER_TIMEOUT = timedelta(hours=48)  # ranks wait for each other once, after hours of attribution


def launch(cfg: Config):
    """(rank, world size, barrier, device or None): one process, or Fabric's DDP launch when training's settings
    (``trainer.devices`` x ``trainer.num_nodes``, torchrun or SLURM) ask for several."""
    if n_devices(cfg.trainer) <= 1:
        return 0, 1, (lambda: None), None
    from lightning.fabric import Fabric
    from lightning.fabric.strategies import DDPStrategy

    fabric = Fabric(accelerator=cfg.trainer.accelerator, devices=cfg.trainer.devices, num_nodes=cfg.trainer.num_nodes,
                    strategy=DDPStrategy(timeout=BARRIER_TIMEOUT))
    fabric.launch()
    return fabric.global_rank, fabric.world_size, fabric.barrier, str(fabric.device)


def plan_runs(cfg: Config, study, splits) -> tuple[list[str], list[str], dict[str, list[str]]]:
    """(participants, attributed runs, training runs per participant): encoders never see an attributed run or another
    showing of its stimulus."""
    a = cfg.attribution
    runs = list(a.runs) if a.runs is not None else list(splits.test_runs)
    unknown = sorted(set(runs) - set(study.runs))
    if unknown or not runs:
        raise ConfigError(f"'attribution.runs' names {unknown or 'no run'}; runs of '{cfg.data.root}': {sorted(study.runs)}")
    shown = {r for group in study.showings().values() if set(group) & set(runs) for r in group}
    held = set(runs) | shown | set(splits.test_runs)
    everyone = splits.participants + splits.heldout
    participants = list(a.participants) if a.participants is not None else [
        p for p in everyone if set(study.runs_of(p)) & set(runs)]
    missing = [p for p in participants if p not in study.participants or not set(study.runs_of(p)) & set(runs)]
    if missing or not participants:
        raise ConfigError(f"'attribution.participants': {missing or 'none'} have no responses to the attributed runs "
                          f"{runs}; participants with them: {[p for p in everyone if set(study.runs_of(p)) & set(runs)]}")
    train = {p: [r for r in study.runs_of(p) if r not in held] for p in participants}
    no_words = [r for r in sorted(set(runs).union(*train.values())) if not study.runs[r].words]
    if no_words:
        raise DataError(f"runs {no_words} of '{cfg.data.root}' have no word timings (TextGrid / transcript); attribution "
                        f"needs them for every run it fits or attributes")
    return participants, runs, train


def fit_encoders(cfg: Config, study, feats, layers, participants, runs, train) -> tuple[dict, dict, dict]:
    """(fits[p][layer], responses[(p, run)], encoding summary) for every participant and candidate layer."""
    resp = prepare_responses(study, participants, sorted({r for p in participants for r in train[p] + runs}))
    params = alignment_settings(cfg).encoder_params()
    fits, table = {}, {}
    for p in participants:
        ys = {r: resp.data[(p, r)] for r in study.runs_of(p) if (p, r) in resp.data}
        tests = [r for r in runs if r in ys]
        try:
            fits[p] = {layer: fit_layer(feats, i, ys, train[p], tests, params) for i, layer in enumerate(layers)}
        except ValueError as err:
            raise ConfigError(f"participant {p}: {err}") from err
        table[p] = {layer: {"cv_r": float(np.nanmean(f.cv_r)), "test_r": float(np.nanmean(f.test_r))}
                    for layer, f in fits[p].items()}
    mean = {layer: {k: float(np.mean([table[p][layer][k] for p in participants])) for k in ("cv_r", "test_r")}
            for layer in layers}
    return fits, resp, {"layers": mean, "participants": table, "delays": list(params["delays"]),
                        "train_runs": train, "n_targets": resp.n_targets}


def objectives(cfg: Config, study, fits, resp, feats, layers, chosen, participants, runs) -> dict:
    """{(group, participant, run): BrainObjective} of the chosen layer of each group."""
    a, out = cfg.attribution, {}
    for p in participants:
        names = None
        if a.targets.startswith("region:"):
            names = target_names(study, p, cfg.data.labels)
            names = None if names is None else names[resp.kept[p]]
        for group, layer in chosen.items():
            fit = fits[p][layer]
            try:
                targets = select_targets(a.targets, fit.cv_r, names, p)
            except ValueError as err:
                raise ConfigError(str(err)) from err
            for r in runs:
                if (p, r) in resp.data:
                    out[(group, p, r)] = brain_objective(fit, feats[r][layers.index(layer)], resp.data[(p, r)], layer,
                                                         targets, a.ba_loss)
    return out


def attributed_trs(story, delays, max_trs: int | None) -> np.ndarray:
    """TRs with a context and a next word (both objectives on the same TRs); ``max_trs`` evenly spaced of them."""
    trs = default_trs(story, delays, next_word=True)
    if max_trs is not None and len(trs) > max_trs:
        trs = trs[np.unique(np.linspace(0, len(trs) - 1, max_trs).round().astype(int))]
    return trs


def attribute_all(cfg: Config, lm, stories, jobs: dict, trs: dict, rank: int, world: int, barrier) -> dict | None:
    """Every job ({key: (run, objective)}) attributed: this process takes every ``world``-th TR into the checkpoints;
    after the barrier rank 0 reads them all back (nothing left to compute) and the others return None."""
    a, root = cfg.attribution, Path(cfg.out_dir) / "attribution_checkpoints"
    kw = dict(method=a.method, n_steps=a.ig_steps, context_words=a.context_words, batch_size=a.batch_size, bf16=a.bf16)
    try:
        for key, (run, objective) in jobs.items():
            if len(trs[run][rank::world]):
                attribute_words(lm, stories[run], objective, trs=trs[run][rank::world], checkpoint_dir=root / key, **kw)
        barrier()
        if rank:
            return None
        return {key: attribute_words(lm, stories[run], objective, trs=trs[run], checkpoint_dir=root / key, **kw)
                for key, (run, objective) in jobs.items()}
    except ValueError as err:  # a checkpoint folder holding other settings
        raise ConfigError(f"{err} (folder under '{root}')") from err


@dataclass
class Setup:
    """What the attribution of one model needs, built once per process."""

    study: object
    participants: list[str]
    runs: list[str]
    train: dict[str, list[str]]
    lm: object
    head: dict
    texts: dict[str, list[str]]
    stories: dict
    groups: dict[str, list[int]]
    layers: list[int]
    entry: str
    offsets: dict[str, int]  # first word of each attributed run in the pooled word list (attribution_report.pool)
    annotations: dict | None  # attribution.annotations pooled on those offsets, read before any model work


def prepare(cfg: Config, device: str | None, rank: int = 0, barrier=lambda: None) -> Setup:
    """Study, runs, word annotations, the model with its LM head and every run's tokenized words; refuses what cannot
    work first. Rank 0 opens the study before the others (a synthetic dataset is written once)."""
    opened = open_splits(cfg) if rank == 0 else None
    barrier()
    study, splits = opened or open_splits(cfg)
    participants, runs, train = plan_runs(cfg, study, splits)
    needed = sorted(set(runs) | {r for p in participants for r in train[p]})
    words = {r: load_words(str(study.runs[r].words), study.runs[r].timing.tr) for r in needed}
    texts = {r: [w.text for w in words[r]] for r in needed}
    offsets = dict(zip(runs, np.cumsum([0] + [len(texts[r]) for r in runs]).tolist()))
    path = cfg.attribution.annotations
    ann = None if path is None else pooled_annotations(path, texts, runs, offsets)
    model = load_model(checkpoint_entry(cfg), cfg, device)
    lm, head = language_model(model.backbone, model.config.backbone.name, cfg.trainer.seed)
    try:
        groups = layer_groups(cfg.attribution.layers, model.backbone.num_layers)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    stories = {r: story_from_words(model.backbone.tokenizer, words[r], study.runs[r].timing) for r in needed}
    if head["objective"] == "masked" and stories[runs[0]].mask_id is None:
        raise ConfigError(f"model '{model.entry}' is bidirectional, so its word objective is the masked next word, but "
                          "its tokenizer has no mask token; use a masked LM's tokenizer (backbone.name) or a causal LM")
    positions = getattr(lm.config, "max_position_embeddings", None) or getattr(lm.config, "n_positions", None)
    head["positions"] = positions
    log.info("attribution: %d-word contexts (attribution.context_words), %s", cfg.attribution.context_words,
             f"capped at the model's {positions} positions" if positions else "the model has no position limit")
    layers = sorted({layer for g in groups.values() for layer in g})
    return Setup(study, participants, runs, train, lm, head, texts, stories, groups, layers, model.entry, offsets, ann)


def masking(cfg: Config, s: Setup, jobs: dict, results: dict) -> dict:
    """The masking check of every job: top-``mask_fraction`` words vs as many random words replaced."""
    a = cfg.attribution
    return {key: M.masking_check(s.lm, s.stories[run], objective, results[key], a.mask_fraction, a.seed,
                                 a.context_words, a.batch_size) for key, (run, objective) in jobs.items()}


def _mean_masking(entries: list[dict]) -> dict:
    return {"measure": entries[0]["measure"], **{k: float(np.mean([e[k] for e in entries]))
                                                  for k in ("original", "top", "random")}}


def summarize(cfg: Config, s: Setup, chosen: dict, results: dict, masks: dict) -> dict:
    """Every metric per layer group, NWP's own numbers, and the BA vs NWP spread tests across groups."""
    a = cfg.attribution
    tr_keys = dict(zip(s.runs, np.cumsum([0] + [len(results[f"nwp/{r}"].trs) for r in s.runs])))
    groups, per_tr = {}, {}
    for g, layer in chosen.items():
        keys = [(f"ba/{g}/{p}/{r}", r) for p in s.participants for r in s.runs if f"ba/{g}/{p}/{r}" in results]
        paired = pool([(results[k], results[f"nwp/{r}"], s.offsets[r], tr_keys[r]) for k, r in keys])
        groups[g], per_tr[g] = group_summary(paired, a.thresholds, a.profile_thresholds, s.annotations, a.fdr_q)
        groups[g]["layer"] = layer
        if masks:
            groups[g]["masking"] = {**_mean_masking([masks[k] for k, _ in keys]), "each": {k: masks[k] for k, _ in keys}}
    for g, test in spread_tests(per_tr, a.fdr_q).items():
        groups[g]["spread_auc"]["ba_vs_nwp"] = test
    rows = np.concatenate([results[f"nwp/{r}"].scores for r in s.runs])  # each TR once
    nwp = {"positional": positional(rows), "spread_auc": float(M.spread_auc(M.important_sets(rows, a.thresholds),
                                                                           a.thresholds).mean())}
    if masks:
        nwp["masking"] = {**_mean_masking([masks[f"nwp/{r}"] for r in s.runs]),
                          "each": {r: masks[f"nwp/{r}"] for r in s.runs}}
    return {"groups": groups, "nwp": nwp}


def attribute(cfg: Config) -> dict | None:
    """Run the attribution pipeline and write its outputs; returns the summary (None on ranks other than 0)."""
    a = cfg.attribution
    wrong = problems(a)
    if wrong:
        raise ConfigError("; ".join(wrong))
    rank, world, barrier, device = launch(cfg)
    out_dir = Path(cfg.out_dir)
    if rank == 0:
        save_config(cfg, out_dir / "config.yaml")
    s = prepare(cfg, device, rank, barrier)
    feats = {r: story_layer_features(s.lm, s.stories[r], s.layers, a.context_words, a.batch_size, a.bf16)
             for r in sorted(s.stories)}  # (L, n_trs, D) per run
    fits, resp, encoding = fit_encoders(cfg, s.study, feats, s.layers, s.participants, s.runs, s.train)
    chosen = choose_layers(s.groups, {layer: encoding["layers"][layer]["cv_r"] for layer in s.layers})
    delays = tuple(encoding["delays"])
    nwp = NextWordObjective(delays, masked=s.head["objective"] == "masked")
    jobs = {f"nwp/{r}": (r, nwp) for r in s.runs}
    bas = objectives(cfg, s.study, fits, resp, feats, s.layers, chosen, s.participants, s.runs)
    jobs.update({f"ba/{g}/{p}/{r}": (r, objective) for (g, p, r), objective in bas.items()})
    trs = {r: attributed_trs(s.stories[r], delays, a.max_trs) for r in s.runs}
    results = attribute_all(cfg, s.lm, s.stories, jobs, trs, rank, world, barrier)
    if results is None:
        return None
    masks = masking(cfg, s, jobs, results) if a.masking else {}
    summary = {"model": s.entry, "lm": s.head, "method": a.method, **({"ig_steps": a.ig_steps} if a.method == "ig" else {}),
               "participants": s.participants, "runs": s.runs, "n_trs": {r: len(t) for r, t in trs.items()},
               "ba_loss": a.ba_loss, "targets": {"rule": a.targets, "n": {f"{g}/{p}": int(o.responses.shape[1])
                                                                          for (g, p, _), o in bas.items()}},
               "context": context_record(a.context_words, s.head["positions"], results),
               "lookahead": lookahead_record(delays, {r: s.study.runs[r].timing.tr for r in s.runs}),
               "encoding": {**encoding, "groups": s.groups, "chosen": chosen, "selection": (
                   "per group, the candidate layer with the highest cross-validated r (mean over participants and "
                   "targets) on the training runs; the attributed runs' r (test_r) is reported only")},
               **summarize(cfg, s, chosen, results, masks), "processes": world}
    summary["attributions"] = write_attributions(out_dir / "attributions.npz", s.runs, s.texts, chosen, results).name
    summary["plots"] = [plot(summary["groups"], out_dir / name).name for plot, name in (
        (plot_iou, "iou_vs_threshold.png"), (plot_spread, "spread_by_layer.png"),
        (plot_profiles, "positional_profiles.png"))]
    write_summary(summary, out_dir, s.study)
    return summary
