"""``rlsp eval`` and the trainer's held-out checks: sampling and verifying, pass@k and maj@k,
comparing two runs."""
