"""MLflow tracking for the platform's jobs: run naming and resumption, a
global-state-free run logger, and training-curve plots."""

from crossdiff.platform.tracking.plots import loss_curve_png
from crossdiff.platform.tracking.runs import (
    RunLogger,
    ensure_experiment,
    resolve_tracking_uri,
    start_or_resume_run,
)

__all__ = ["RunLogger", "ensure_experiment", "loss_curve_png", "resolve_tracking_uri", "start_or_resume_run"]
