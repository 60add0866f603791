"""``python -m braintune.lm train -c CONFIG [key=value ...]``: a small causal LM of ``backbone.config``'s architecture
trained on ``lm.corpus`` with transformers' ``Trainer`` -> ``out_dir`` holds the model (``save_pretrained``), its
tokenizer, ``braintune_config.yaml`` and ``lm.json``, so that ``trained_on:OUT_DIR`` is a model entry of every
command (``alignment``, ``compare``, ``remove``, ``similarity``).

Resumable: checkpoints every ``lm.save_steps`` steps under ``out_dir/checkpoints``; running the same command again
continues from the last one (``resume=false`` starts over). Logged like training (``logger.kind``: CSV under
``out_dir/logs``, wandb or TensorBoard), under ``lm/train/*`` and ``lm/val/*``.

Vocabulary. With ``backbone.name`` null the tokenizer is braintune's offline word-level one over
``backbone.text_vocab`` (the stimulus words) plus, for text corpora, the corpus's ``lm.vocab_size`` most frequent
words; ``random`` and ``brackets`` are generated over that vocabulary. With ``backbone.name`` set, its tokenizer and
architecture are used (weights freshly initialised).
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..analysis import corpora
from ..backbones.text import word_tokenizer
from ..config import Config, save_config
from ..data.modalities import load_words
from ..errors import ConfigError
from .common import open_splits, write_summary

log = logging.getLogger(__name__)
LM_RECORD = "lm.json"  # marks an LM directory (read by the trained_on control)


def _study_words(cfg: Config) -> list[str]:
    study, splits = open_splits(cfg)
    runs = [r for r in sorted(study.runs) if r not in splits.test_runs and study.runs[r].words]
    if not runs:
        raise ConfigError(f"lm.corpus={cfg.lm.corpus} without lm.text_file reads the training runs' transcripts, but no "
                          f"training run of '{cfg.data.root}' has word timings; set lm.text_file")
    return [w.text for r in runs for w in load_words(str(study.runs[r].words), study.runs[r].timing.tr)]


def corpus_words(cfg: Config) -> list[str] | None:
    """The words of a text corpus (None for the generated ones)."""
    kind, lm = cfg.lm.corpus, cfg.lm
    if kind in corpora.ID_CORPORA:
        return None
    if kind == "code":
        return corpora.code_text(lm.n_tokens * 12).split()[: lm.n_tokens]
    if kind == "text" and lm.text_file is None:
        raise ConfigError("lm.corpus=text needs lm.text_file (a UTF-8 text file); lm.corpus=stories reads the study's transcripts")
    try:
        words = corpora.read_text(lm.text_file).split() if lm.text_file else _study_words(cfg)
    except (FileNotFoundError, ValueError) as err:
        raise ConfigError(str(err)) from err
    return corpora.shuffled_words(words, cfg.trainer.seed) if kind == "shuffled" else words


def build_tokenizer(cfg: Config, words: list[str] | None):
    """The LM's tokenizer: ``backbone.name``'s, else word-level over the stimulus vocabulary (+ corpus words)."""
    if cfg.backbone.name:
        from transformers import AutoTokenizer
        return AutoTokenizer.from_pretrained(cfg.backbone.name)
    vocab = list(cfg.backbone.text_vocab) + (corpora.frequent_words(words, cfg.lm.vocab_size) if words else [])
    if len(set(v.lower() for v in vocab)) < 2:
        raise ConfigError("the LM's word-level vocabulary is empty: set backbone.text_vocab (the stimulus words) or "
                          "backbone.name (a tokenizer)")
    return word_tokenizer(vocab)


def token_ids(cfg: Config, tokenizer, words: list[str] | None) -> np.ndarray:
    """The corpus as one stream of token ids."""
    lm, seed = cfg.lm, cfg.trainer.seed
    if words is not None:
        ids = tokenizer(" ".join(words), add_special_tokens=False)["input_ids"]
        return np.asarray(ids[: lm.n_tokens])
    special = set(tokenizer.all_special_ids)
    vocab = [i for i in sorted(tokenizer.get_vocab().values()) if i not in special]
    if lm.corpus == "random":
        return corpora.random_tokens(vocab, lm.n_tokens, seed)
    return corpora.nested_brackets(vocab, lm.n_tokens, lm.max_depth, lm.p_open, seed)


def build_lm(cfg: Config, tokenizer):
    """A freshly initialised causal LM (seeded) of ``backbone.config`` (or ``backbone.name``'s architecture)."""
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    from ..backbones.hub import config_from_overrides

    overrides = dict(cfg.backbone.config)
    model_type = overrides.pop("model_type", None)
    if cfg.backbone.name and not model_type:
        config = AutoConfig.from_pretrained(cfg.backbone.name)
    elif model_type in CONFIG_MAPPING:
        overrides.setdefault("vocab_size", len(tokenizer))
        for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
            overrides.setdefault(key, tokenizer.pad_token_id)
        config = config_from_overrides(CONFIG_MAPPING[model_type], overrides, model_type)
    else:
        raise ConfigError(f"backbone.config.model_type '{model_type}' is not a transformers model type (e.g. gpt2, llama); "
                          "the LM's architecture comes from backbone.config")
    torch.manual_seed(cfg.trainer.seed)
    return AutoModelForCausalLM.from_config(config)


class _Blocks(torch.utils.data.Dataset):
    """Consecutive ``seq_len``-token sequences of the stream; labels = inputs (the model shifts them)."""

    def __init__(self, blocks: np.ndarray):
        self.blocks = torch.as_tensor(blocks, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.blocks[i], "labels": self.blocks[i]}


def _splits(ids: np.ndarray, seq_len: int, val_fraction: float) -> tuple[_Blocks, _Blocks]:
    n = len(ids) // seq_len
    n_val = max(1, round(val_fraction * n))
    if n - n_val < 1:
        raise ConfigError(f"the corpus has {len(ids)} tokens: fewer than two sequences of lm.seq_len={seq_len}; raise "
                          "lm.n_tokens or give a longer text")
    blocks = ids[: n * seq_len].reshape(n, seq_len)
    return _Blocks(blocks[: n - n_val]), _Blocks(blocks[n - n_val:])  # the held-out sequences are the corpus's end


def _log_callback(logger):
    """A transformers ``TrainerCallback`` that sends the Trainer's logs to braintune's logger (``logger.kind``)."""
    from transformers import TrainerCallback

    class BraintuneLogs(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            split = "val" if any(k.startswith("eval_") for k in logs or {}) else "train"
            metrics = {f"lm/{split}/{k.removeprefix('eval_')}": float(v) for k, v in (logs or {}).items()
                       if isinstance(v, (int, float))}
            if metrics:
                logger.log_metrics(metrics, step=state.global_step)
                logger.save()

    return BraintuneLogs()


def _trainer(cfg: Config, model, train: _Blocks, val: _Blocks, out: Path):
    from transformers import Trainer, TrainingArguments

    from ..training.setup import build_logger

    lm = cfg.lm
    args = TrainingArguments(
        output_dir=str(out / "checkpoints"), max_steps=lm.max_steps, per_device_train_batch_size=lm.batch_size,
        per_device_eval_batch_size=lm.batch_size, learning_rate=lm.lr, weight_decay=lm.weight_decay,
        warmup_steps=int(lm.warmup_fraction * lm.max_steps), lr_scheduler_type="linear", logging_steps=lm.log_steps,
        save_steps=lm.save_steps, save_total_limit=2, eval_strategy="steps", eval_steps=lm.save_steps, report_to=[],
        seed=cfg.trainer.seed, use_cpu=cfg.trainer.accelerator == "cpu" or not torch.cuda.is_available(),
        disable_tqdm=not cfg.trainer.progress_bar, dataloader_num_workers=0, max_grad_norm=cfg.optim.grad_clip or 0.0)
    return Trainer(model=model, args=args, train_dataset=train, eval_dataset=val,
                   callbacks=[_log_callback(build_logger(cfg, out))])


def last_checkpoint(out: Path) -> str | None:
    """The newest ``checkpoint-N`` directory under ``out/checkpoints`` (None: start from scratch)."""
    found = sorted((out / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.rsplit("-", 1)[1]))
    return str(found[-1]) if found else None


def train_lm(cfg: Config) -> dict:
    """Train the LM of ``cfg`` on ``lm.corpus`` and write it to ``out_dir`` as a model entry; returns the summary."""
    from ..models import EXPORT_CONFIG

    out = Path(cfg.out_dir)
    save_config(cfg, out / "config.yaml")
    words = corpus_words(cfg)
    tokenizer = build_tokenizer(cfg, words)
    ids = token_ids(cfg, tokenizer, words)
    train, val = _splits(ids, cfg.lm.seq_len, cfg.lm.val_fraction)
    model = build_lm(cfg, tokenizer)
    trainer = _trainer(cfg, model, train, val, out)
    resume = last_checkpoint(out) if cfg.resume else None
    if resume:
        log.info("resuming LM training from %s", resume)
    result = trainer.train(resume_from_checkpoint=resume)
    val_loss = float(trainer.evaluate()["eval_loss"])
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    own = replace(cfg, backbone=replace(cfg.backbone, arch="text", name=str(out.resolve()), config={}, finetune="frozen"))
    save_config(own, out / EXPORT_CONFIG)
    unk = getattr(tokenizer, "unk_token_id", None)
    record = {"corpus": cfg.lm.corpus, "text_file": cfg.lm.text_file, "n_tokens": int(len(ids)),
              "vocab_size": len(tokenizer), "unk_fraction": float(np.mean(ids == unk)) if unk is not None else None,
              "steps": int(result.global_step), "resumed_from": resume, "train_loss": float(result.training_loss),
              "val_loss": val_loss, "val_perplexity": float(math.exp(min(val_loss, 50.0))),
              "architecture": type(model).__name__, "sample": tokenizer.decode(ids[:40].tolist())}
    (out / LM_RECORD).write_text(json.dumps(record, indent=1))
    write_summary({"lm": record, "model_entry": f"trained_on:{out}"}, out)
    return record


def main(argv: list[str] | None = None) -> int:
    """``python -m braintune.lm train -c CONFIG [key=value ...]``."""
    import sys

    from .common import parse_args, run_command

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "train":
        print("usage: python -m braintune.lm train -c CONFIG [lm.corpus=random|brackets|shuffled|code|text|stories] "
              "[out_dir=DIR] [key=value ...]\n\n" + (__doc__ or ""), file=sys.stderr)
        return 2
    cfg, args = parse_args(argv[1:], prog="python -m braintune.lm train")
    return run_command(lambda: train_lm(cfg), cfg.out_dir, args.debug)
