"""Training: optimisers (``optim``) and, with the harness, the loop, checkpoints and metrics."""
