"""Pooled features (B, K, F) -> predictions per participant {participant: (B, K, n_targets[p])}.

Participants differ in target count, so every head is a mapping participant -> module. A new
participant is added by ``add_participant`` and can be fitted alone while everything else stays frozen.
"""
from __future__ import annotations

import torch
from torch import nn


class ParticipantHeads(nn.Module):
    """Per-participant linear maps, optionally after a shared trunk (low-rank common space).

    kind ``per_participant``: Linear(F -> n_p) for each p.
    kind ``low_rank``: shared Linear(F -> rank), then Linear(rank -> n_p) for each p (TRIBE v2's low-rank head).
    kind ``shared``: one Linear(F -> n) used by every participant; all must have the same n (a common space,
    as the multi-participant brain-tuning recipe trains on).
    """

    def __init__(self, in_features: int, n_targets: dict[str, int], kind: str = "per_participant", rank: int = 256, dropout: float = 0.0):
        super().__init__()
        self.kind, self.in_features, self.rank = kind, in_features, rank
        self.batched = False  # per_participant: every present head in one matmul (``speed.batched_heads``)
        self.n_targets: dict[str, int] = {}
        self.dropout = nn.Dropout(dropout)
        if kind == "shared" and len(set(n_targets.values())) > 1:
            raise ValueError(
                f"head.kind 'shared' needs one target space for everyone, but target counts differ: {n_targets}; "
                "use common-space targets, or head.kind per_participant / low_rank"
            )
        self.trunk = nn.Linear(in_features, rank) if kind == "low_rank" else nn.Identity()
        self.maps = nn.ModuleDict()
        if kind == "shared":
            self.shared = nn.Linear(in_features, next(iter(n_targets.values())))
        for p, n in n_targets.items():
            self.add_participant(p, n)

    @property
    def participants(self) -> list[str]:
        return list(self.maps)

    def add_participant(self, participant: str, n_targets: int) -> nn.Module:
        """Create (and return) the head of a new participant."""
        self.n_targets[participant] = n_targets
        if self.kind == "shared":
            self.maps[participant] = nn.Identity()
        else:
            self.maps[participant] = nn.Linear(self.rank if self.kind == "low_rank" else self.in_features, n_targets)
        return self.maps[participant]

    def forward(self, features: torch.Tensor, participants: list[str] | None = None) -> dict[str, torch.Tensor]:
        """features (B, K, F) -> {p: (B, K, n_p)} for the given participants (all by default)."""
        z = self.trunk(self.dropout(features))
        if self.kind == "shared":
            z = self.shared(z)
        names = participants or self.participants
        if self.batched and self.kind != "shared" and len(names) > 1:  # one (B·K, F) @ (F, Σ n_p) matmul, then split
            maps = [self.maps[p] for p in names]
            out = nn.functional.linear(z, torch.cat([m.weight for m in maps]), torch.cat([m.bias for m in maps]))
            return dict(zip(names, out.split([m.out_features for m in maps], dim=-1)))
        return {p: self.maps[p](z) for p in names}
