"""Lightning callbacks of the training recipe: a frozen backbone stays in eval mode while heads are fitted."""
from __future__ import annotations

import lightning as L


class FrozenBackboneEval(L.Callback):
    """Keep a frozen backbone in eval mode (no dropout) during training.

    Lightning switches the whole module to train mode at every epoch; when only heads are fitted
    (``optim.train_only: heads | new_heads``) dropout in the frozen backbone would only add noise to
    the features the heads regress on.
    """

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pl_module.backbone.eval()
