"""Tiny detectors and batches shared by the detection tests."""

from __future__ import annotations

import pytest
import torch

from retrieval.detection import create_detector

TINY = dict(fpn_channels=8, fpn_stages=[2, 3, 4], min_size=64, max_size=64, representation_size=32,
            rpn_pre_nms_top_n_train=50, rpn_post_nms_top_n_train=20, rpn_pre_nms_top_n_test=50,
            rpn_post_nms_top_n_test=20, box_batch_size_per_image=16)


def tiny_detector(arch="small_cnn_xs", num_classes=3, seed=0, **options):
    torch.manual_seed(seed)
    return create_detector(arch, num_classes, **{**TINY, **options})


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, 64, 64, generator=g) for _ in range(2)]
    targets = [{"boxes": torch.tensor([[4.0, 6.0, 20.0, 30.0]]), "labels": torch.tensor([1])},
               {"boxes": torch.tensor([[10.0, 10.0, 40.0, 28.0], [0.0, 40.0, 12.0, 60.0]]),
                "labels": torch.tensor([2, 3])}]
    return {"image": images, "target": targets, "index": torch.tensor([0, 1])}
