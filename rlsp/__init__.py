"""rlsp: RL post-training for reasoning (RLSP: PPO with separate exploration and verifier rewards)."""

import os

# OpenMP threads that reach the end of a parallel region sleep instead of spinning. On a quiet
# 2-core machine that is as fast as spinning, and beside another busy process it is far less
# slowed down (benchmarks/threads.py: 1.7x instead of 2.2x). It must be set before torch starts
# its thread pool, so here, before anything imports torch; a value the user set is kept
# (OMP_WAIT_POLICY=ACTIVE restores spinning, OMP_NUM_THREADS sets the thread count).
# The variables set here (not the user's own): a benchmark that runs a peer framework in a child
# process removes them, so the peer runs with its own defaults (benchmarks/vs_trl.py).
ENVIRONMENT_SET = tuple(key for key in ("OMP_WAIT_POLICY",) if key not in os.environ)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.2.0"
