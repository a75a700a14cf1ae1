"""Static counts of a model: parameters, multiply-accumulates per image and saved-weights size."""

from __future__ import annotations

import io

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter values (weights and biases; buffers such as BatchNorm statistics excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward pass on ONE image of ``input_shape`` (C, H, W).

    Convention: PyTorch's own ``torch.utils.flop_counter.FlopCounterMode`` counts 2 FLOPs per
    multiply-accumulate of matrix multiplies and convolutions (linear layers included; biases,
    BatchNorm, activations, pooling and normalisation are not counted); MACs = FLOPs / 2.
    The model runs in eval mode on zeros, so the count does not depend on the weights.
    """
    was_training = model.training
    model.eval()
    x = torch.zeros(1, *input_shape, device=next(model.parameters()).device)
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops()) // 2


def weights_file_bytes(model: nn.Module) -> int:
    """Size in bytes of ``torch.save(model.state_dict())``: the file a user ships to run the model
    (the deployable network only: a KD run's connectors, heads and memory banks are not part of it).

    Saved in memory, where torch names the archive's root folder ``archive``; the same state dict
    saved to a file is the same size when the file is called ``archive.pt`` (torch uses the file
    stem), and a few bytes per tensor larger or smaller under a longer or shorter name."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes
