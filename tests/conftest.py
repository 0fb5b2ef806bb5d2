"""Shared pytest setup: keep torch on the 2 cores CI has, deterministic and quiet."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
