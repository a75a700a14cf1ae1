"""Faster R-CNN with an FPN on any 4-stage backbone of ``retrieval.models``, exposing both
the backbone stages and the FPN levels.

The backbone is the project's ``Backbone`` (torchvision ResNet/MobileNetV3 or the small
CPU ResNets, stages read through ``create_feature_extractor``); on it sits torchvision's
``FeaturePyramidNetwork`` with the ``LastLevelMaxPool`` extra level, the same composition
as torchvision's ``BackboneWithFPN`` / ``resnet_fpn_backbone``. The detector itself is
torchvision's ``FasterRCNN``, unmodified. ``Detector.forward_features`` runs its parts in
the order of ``GeneralizedRCNN.forward`` (transform, backbone, RPN, RoI heads, postprocess)
and returns the intermediate features with the outputs:

    {"stages": [f1..f4], "fpn": [p_1..p_L, pool], "output": detections | None,
     "losses": {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg"}}
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops import FeaturePyramidNetwork, MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from retrieval.models import StageInfo, create_backbone


class StagesWithFPN(nn.Module):
    """``forward(x) -> OrderedDict`` of FPN levels (FasterRCNN's backbone interface);
    ``features(x) -> (stages, fpn)`` also returns the four backbone stages."""

    def __init__(self, backbone, fpn_stages=(1, 2, 3, 4), out_channels: int = 256):
        super().__init__()
        self.fpn_stages = tuple(int(s) for s in fpn_stages)
        if not self.fpn_stages or any(not 1 <= s <= 4 for s in self.fpn_stages) or list(self.fpn_stages) != sorted(
                set(self.fpn_stages)):
            raise ValueError(f"fpn_stages must be increasing stage numbers in 1..4, got {list(fpn_stages)}")
        self.body = backbone
        self.fpn = FeaturePyramidNetwork([backbone.stages[s - 1].channels for s in self.fpn_stages], out_channels,
                                         extra_blocks=LastLevelMaxPool())
        self.out_channels = out_channels

    @property
    def level_names(self) -> list[str]:
        return [str(i) for i in range(len(self.fpn_stages))]

    def features(self, x: torch.Tensor):
        stages = self.body(x)
        fpn = self.fpn(OrderedDict((name, stages[s - 1]) for name, s in zip(self.level_names, self.fpn_stages)))
        return stages, fpn

    def forward(self, x: torch.Tensor):
        return self.features(x)[1]


class Detector(nn.Module):
    """A torchvision ``FasterRCNN`` (``self.detector``) whose features the KD methods can read.

    ``stages``: the backbone's ``StageInfo`` list; ``fpn_levels``: one ``StageInfo`` per FPN
    level (channels = ``fpn_channels``), so methods build connectors without running a batch.
    """

    def __init__(self, backbone, num_classes: int, fpn_channels: int = 256, fpn_stages=(1, 2, 3, 4),
                 min_size: int = 800, max_size: int = 1333, anchor_sizes=None, aspect_ratios=(0.5, 1.0, 2.0),
                 representation_size: int = 1024, **rcnn_options):
        super().__init__()
        body = StagesWithFPN(backbone, fpn_stages, fpn_channels)
        strides = [backbone.stages[s - 1].stride for s in body.fpn_stages]
        levels = len(strides) + 1
        anchor_sizes = anchor_sizes or [8 * s for s in strides] + [16 * strides[-1]]
        if len(anchor_sizes) != levels:
            raise ValueError(f"anchor_sizes needs one size per FPN level ({levels}: {len(strides)} stages + pool), "
                             f"got {list(anchor_sizes)}")
        anchors = AnchorGenerator(tuple((int(a),) for a in anchor_sizes), (tuple(aspect_ratios),) * levels)
        roi_pool = MultiScaleRoIAlign(body.level_names, output_size=7, sampling_ratio=2)
        self.detector = FasterRCNN(
            body, num_classes=None, min_size=min_size, max_size=max_size, rpn_anchor_generator=anchors,
            box_roi_pool=roi_pool, box_head=TwoMLPHead(fpn_channels * 7 * 7, representation_size),
            box_predictor=FastRCNNPredictor(representation_size, num_classes + 1), **rcnn_options)
        self.stages = list(backbone.stages)
        names = [f"p{s}" for s in body.fpn_stages] + ["pool"]
        self.fpn_levels = [StageInfo(n, fpn_channels, s) for n, s in zip(names, strides + [2 * strides[-1]])]

    def forward(self, images, targets=None):
        """torchvision's own call: losses in training mode, detections in eval mode."""
        return self.detector(images, targets)

    def forward_features(self, images, targets=None, heads: bool = True) -> dict:
        """Stages, FPN levels and (with ``heads``) the detections (eval) or the detector's
        losses (training, ``targets`` required). ``heads=False`` stops after the FPN (a teacher
        whose features are all a KD method reads)."""
        det = self.detector
        original_sizes = [tuple(img.shape[-2:]) for img in images]
        image_list, targets = det.transform(list(images), targets)
        stages, fpn = det.backbone.features(image_list.tensors)
        out = {"stages": stages, "fpn": list(fpn.values()), "output": None, "losses": {}}
        if heads:
            proposals, rpn_losses = det.rpn(image_list, fpn, targets)
            detections, roi_losses = det.roi_heads(fpn, proposals, image_list.image_sizes, targets)
            out["output"] = det.transform.postprocess(detections, image_list.image_sizes, original_sizes)
            out["losses"] = {**rpn_losses, **roi_losses}
        return out


def create_detector(arch: str, num_classes: int, pretrained: bool = False, weights: str | None = None,
                    **options) -> Detector:
    """Faster R-CNN + FPN on backbone ``arch`` (any name of ``retrieval.models.list_models()``:
    resnet50, resnet18, mobilenet_v3_large, small_cnn_m, ...). ``pretrained`` loads the
    backbone's ImageNet weights ``weights`` (torchvision's name, e.g. ``IMAGENET1K_V1``, the
    backbones of torchvision's Faster R-CNN references; default ``DEFAULT``) from the local torch
    hub cache (``PretrainedWeightsNotFound`` if absent). ``options``: ``Detector``'s (fpn_channels,
    fpn_stages, min_size, max_size, anchor_sizes, representation_size) and torchvision
    ``FasterRCNN``'s (rpn_*, box_*)."""
    return Detector(create_backbone(arch, pretrained=pretrained, weights=weights), num_classes, **options)
