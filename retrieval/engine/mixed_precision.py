"""Automatic mixed precision for the training loop, off by default.

On CUDA, ``amp`` runs the forward pass under ``torch.autocast`` in float16 and scales
the loss with ``torch.amp.GradScaler`` (steps whose gradients overflow are skipped,
as PyTorch's recipe does); on CPU it autocasts to bfloat16, which needs no scaling.
Disabled, every method is a plain pass-through, so the default run is unchanged.
"""

from __future__ import annotations

import contextlib

import torch


class MixedPrecision:
    def __init__(self, enabled: bool, device: str | torch.device):
        self.device_type = torch.device(device).type
        self.enabled = bool(enabled)
        self.dtype = torch.float16 if self.device_type == "cuda" else torch.bfloat16
        self.scaler = torch.amp.GradScaler(self.device_type, enabled=self.enabled and self.device_type == "cuda")

    def autocast(self):
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward_and_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict:
        return self.scaler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        if state:
            self.scaler.load_state_dict(state)
