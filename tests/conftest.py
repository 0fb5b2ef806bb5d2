"""Shared pytest setup: keep torch on the 2 cores CI has, deterministic and quiet."""

import os

# Small test tensors gain nothing from threads, and DDP tests start several processes.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
