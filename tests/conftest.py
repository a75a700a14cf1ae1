"""Shared test settings: one torch thread per test process (tests run in parallel with
pytest-xdist, and tiny ops run slower when two processes each spin two threads)."""

import torch

torch.set_num_threads(1)
