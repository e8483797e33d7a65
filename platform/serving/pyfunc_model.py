"""CrossDiff as an MLflow pyfunc, logged as "models from code".

MLflow copies this file into the registered model and runs it when the model
is loaded; ``register_crossdiff`` (``crossdiff.platform.registry``) logs it with
two artifacts, ``weights`` (safetensors state dict) and ``config`` (the model
config as JSON). Nothing is pickled: the model is rebuilt from the config and
the weights are loaded strictly. The crossdiff package must be installed where
the model is served.

Input (``model_input``), a dict of float32 numpy arrays scaled to [-1, 1]:

- ``"pan"``: (B, 1, H, W), the panchromatic band;
- ``"lms"``: (B, bands, H, W), the MS image upsampled to PAN resolution
  (23-tap interpolator), H and W multiples of 8 for the paper's 4-level UNets.

Params:

- ``task``: ``"fuse"`` (default) returns the fused image, float32 (B, bands, H, W)
  in [-1, 1] scale; ``"features"`` returns a dict of the encoder features,
  global-average-pooled, ``{"p2m_h1": (B, C1), ..., "m2p_h4": (B, C4)}``.
- ``seed``: an int makes the feature noise (and so the output) deterministic;
  None draws fresh noise on every call, as the authors do.

Example::

    model = mlflow.pyfunc.load_model("models:/crossdiff-wv2@champion")
    fused = model.predict({"pan": pan, "lms": lms}, params={"seed": 0})

The model runs on the GPU when one is visible, else on the CPU; set the model
config key ``device`` (``mlflow.pyfunc.load_model(uri, model_config={"device": "cpu"})``)
to choose.
"""

from __future__ import annotations

from typing import Any

import mlflow
import numpy as np
from mlflow.pyfunc import PythonModel

TASKS = ("fuse", "features")


class CrossDiffPyfunc(PythonModel):
    """Fuses PAN + lms (or returns pooled encoder features) with a registered CrossDiff."""

    def load_context(self, context) -> None:
        import torch

        from crossdiff.platform.registry import model_from_files

        device = (context.model_config or {}).get("device", "auto")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.model = model_from_files(context.artifacts["weights"], context.artifacts["config"], self.device)

    def _tensors(self, model_input: Any) -> dict[str, Any]:
        import torch

        if not isinstance(model_input, dict) or not {"pan", "lms"} <= set(model_input):
            got = sorted(model_input) if isinstance(model_input, dict) else type(model_input).__name__
            raise ValueError(
                f"CrossDiff pyfunc input must be a dict with 'pan' (B, 1, H, W) and 'lms' (B, bands, H, W) "
                f"float32 arrays in [-1, 1]; got {got}"
            )
        return {
            k: torch.as_tensor(np.asarray(model_input[k], dtype=np.float32), device=self.device)
            for k in ("pan", "lms")
        }

    def predict(self, context, model_input, params=None):
        """Fused image (``task="fuse"``) or pooled features (``task="features"``); see the module doc."""
        import torch

        params = params or {}
        task = params.get("task") or "fuse"
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; use one of {list(TASKS)}")
        seed = params.get("seed")
        seed = None if seed is None else int(seed)
        sample = self._tensors(model_input)
        with torch.inference_mode():
            if task == "fuse":
                return self.model.fuse(sample, seed=seed).float().cpu().numpy()
            feats = self.model.features(sample, seed=seed)
            return {
                f"{net}_h{i + 1}": f.mean(dim=(2, 3)).float().cpu().numpy()
                for net, levels in feats.items()
                for i, f in enumerate(levels)
            }


mlflow.models.set_model(CrossDiffPyfunc())
