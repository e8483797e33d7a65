"""Stage 1: cross-predictive pretraining on Ray Train."""
