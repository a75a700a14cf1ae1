"""Compute embeddings of a dataset in eval mode."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm


@torch.no_grad()
def compute_embeddings(model, dataset, batch_size: int = 256, num_workers: int = 0, device="cpu",
                       progress: bool = True, desc: str = "embed") -> tuple[np.ndarray, np.ndarray]:
    """(embeddings float32 (N, d), labels (N,)) for ``dataset`` in index order."""
    was_training = model.training
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    chunks, labels = [], []
    for batch in tqdm(loader, desc=desc, leave=False, disable=not progress):
        chunks.append(model(batch["image"].to(device)).float().cpu())
        labels.append(batch["label"])
    model.train(was_training)
    return torch.cat(chunks).numpy(), torch.cat(labels).numpy()
