"""Compute embeddings of a dataset in eval mode."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from retrieval.engine import loaders


@torch.no_grad()
def compute_embeddings(model, dataset, batch_size: int = 256, num_workers: int = 0, device="cpu",
                       progress: bool = True, desc: str = "embed") -> tuple[np.ndarray, np.ndarray]:
    """(embeddings float32 (N, d), labels (N,)) for ``dataset`` in index order.

    With ``num_workers > 0`` the workers start with ``loaders.worker_context()`` (fork on Linux:
    no re-import of the stack) and the loader's base seed comes from its own generator, so
    embedding a dataset leaves torch's global generator where it was. One pass per call, so
    the workers are not kept: forking them costs milliseconds."""
    was_training = model.training
    model.eval()
    workers = ({} if num_workers == 0 else
               {"multiprocessing_context": loaders.worker_context(), "generator": loaders.loader_generator()})
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, **workers)
    chunks, labels = [], []
    for batch in tqdm(loader if num_workers == 0 else loaders.Lazy(loader), desc=desc, leave=False,
                      disable=not progress):
        chunks.append(model(batch["image"].to(device)).float().cpu())
        labels.append(batch["label"])
    model.train(was_training)
    return torch.cat(chunks).numpy(), torch.cat(labels).numpy()
