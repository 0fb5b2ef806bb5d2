"""Shared pytest setup: keep torch on the 2 cores CI has, deterministic and quiet."""

import os
import sys
from pathlib import Path

# tests import their helper modules (fake_librispeech) by name; --import-mode=importlib does
# not put this folder on sys.path by itself
sys.path.insert(0, str(Path(__file__).parent))

# Small test tensors gain nothing from threads, and DDP tests start several processes.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
