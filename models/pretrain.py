"""Cross-predictive pretraining as one module, so data parallelism can wrap it.

DistributedDataParallel synchronises the gradients of the module whose
``forward`` it calls, and refuses parameters that take no part in the loss.
Stage 1 trains the two UNets only (the fusion head waits for stage 2), and a
job may train one net alone; :class:`CrossPretrainer` holds exactly the nets
being trained and returns their diffusion losses from ``forward``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from crossdiff.models.crossdiff import ROLE_INPUTS, CrossDiff


class CrossPretrainer(nn.Module):
    """The UNets of a CrossDiff being pretrained.

    Args:
        model: the CrossDiff whose UNets are trained (shared, not copied).
        nets: which nets to train: ``("p2m", "m2p")`` (both, the paper) or one.
    """

    def __init__(self, model: CrossDiff, nets: Sequence[str] = ("p2m", "m2p")) -> None:
        super().__init__()
        if not nets or set(nets) - set(ROLE_INPUTS):
            raise ValueError(f"nets must be a non-empty subset of {sorted(ROLE_INPUTS)}, got {list(nets)}")
        self.roles = tuple(nets)
        # Registered as children so DDP sees exactly the trained parameters.
        self.nets = nn.ModuleDict({role: getattr(model, role) for role in self.roles})
        self._model = [model]  # a plain list keeps the head out of this module's parameters

    @property
    def model(self) -> CrossDiff:
        return self._model[0]

    def forward(
        self, sample: Mapping[str, torch.Tensor], generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Per-net losses and their sum ``loss``; ``sample`` holds ``pan`` and ``lms`` in [-1, 1]."""
        return self.model.pretrain_losses(sample, generator=generator, nets=self.roles)
