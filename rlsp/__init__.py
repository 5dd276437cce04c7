"""rlsp: RL post-training for reasoning (RLSP: PPO with separate exploration and verifier rewards)."""

import os

# OpenMP threads that reach the end of a parallel region sleep instead of spinning. On a quiet
# 2-core machine that is as fast as spinning, and beside another busy process it is far less
# slowed down (benchmarks/threads.py: 1.7x instead of 2.2x). It must be set before torch starts
# its thread pool, so here, before anything imports torch; a value the user set is kept
# (OMP_WAIT_POLICY=ACTIVE restores spinning, OMP_NUM_THREADS sets the thread count).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
