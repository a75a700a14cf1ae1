"""One call that seeds every random source a run uses."""

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)  # pytorch-metric-learning's samplers draw from numpy's global state
    torch.manual_seed(seed)
