"""``ofd``: overhaul of feature distillation (Heo et al., "A Comprehensive Overhaul of Feature
Distillation", ICCV 2019).

    L = task_weight · L_task + weight · Σ_{k=1..K} 2^{-(K-k)} L_pd(r_k(P_k^student), pool(P_k^teacher), m_k),

over the K chosen stages (in order, the last weighted 1, the one before ½, ...), where ``P`` is a
stage's map *before* its last ReLU (``Backbone.forward_maps(x, preact=True)``), ``r_k`` a learned
connector (1x1 convolution without bias, then BatchNorm; convolution weights N(0, 2 / (k² c_out)),
BN 1 and 0), the teacher's map average-pooled to the student's size, ``m_k`` the teacher's
per-channel margin from the BatchNorm before that ReLU and ``L_pd`` the partial L2 distance
(``retrieval.methods.losses.ofd``). Defaults from mdistiller (CIFAR-100): weight 0.001 beside a task
(CE) weight of 1, at the residual stages (``preact_feats[1:]``: our stages 2-4), connector kernel 1.

Differences from the authors' code and mdistiller, which follow neither the paper nor each other
here: the teacher stays in eval mode (their distiller sets every child, the teacher too, to train
mode, so its BatchNorms use batch statistics), and the margins are taken from the teacher once, when
the method is built (theirs too), from a teacher already trained. Runs on backbones that declare their
pre-ReLU maps (the small CNNs, the CIFAR ResNets and WRNs, torchvision's ResNets).
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import nn

from retrieval.methods.distiller import Distiller
from retrieval.methods.losses.ofd import ofd_loss, ofd_margin
from retrieval.methods.options import Count, Stages, Weight
from retrieval.methods.registry import register_method
from retrieval.models.backbone import preact_backbone


class OFDConnector(nn.Sequential):
    """Student channels -> teacher channels: a k x k convolution (no bias, padding (k - 1) / 2), then BN."""

    def __init__(self, c_s: int, c_t: int, kernel_size: int = 1):
        conv = nn.Conv2d(c_s, c_t, kernel_size, padding=(kernel_size - 1) // 2, bias=False)
        nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / (kernel_size * kernel_size * c_t)))
        bn = nn.BatchNorm2d(c_t)
        nn.init.ones_(bn.weight)
        nn.init.zeros_(bn.bias)
        super().__init__(conv, bn)


@register_method("ofd")
class OverhaulFeatureDistillation(Distiller):
    feature_options = {"preact": True}

    def __init__(self, student, teacher, task_loss=None, task_weight: Weight = 1.0, weight: Weight = 0.001,
                 stages: Stages = (2, 3, 4), kernel_size: Count = 1, **kw):
        super().__init__(student, teacher, task_loss, task_weight, **kw)
        preact_backbone(student, "ofd", "student")
        bns = preact_backbone(teacher, "ofd", "teacher").preact_bns
        if kernel_size % 2 == 0:
            raise ValueError(f"ofd: kernel_size must be odd (the map keeps its size); got {kernel_size}")
        self.weight, self.stages_used = weight, tuple(stages)
        self.connectors = nn.ModuleList(
            OFDConnector(student.stages[i - 1].channels, teacher.stages[i - 1].channels, kernel_size)
            for i in self.stages_used)
        for k, i in enumerate(self.stages_used):
            self.register_buffer(f"margin{k}", ofd_margin(bns[i - 1]), persistent=False)

    def distill_losses(self, s, t, batch):
        n, total = len(self.stages_used), 0.0
        for k, (connector, i) in enumerate(zip(self.connectors, self.stages_used)):
            source = connector(s["preact"][i - 1])
            target = F.adaptive_avg_pool2d(t["preact"][i - 1].detach(), source.shape[-2:])
            total = total + ofd_loss(source, target, getattr(self, f"margin{k}")) / 2 ** (n - k - 1)
        return {"ofd": self.weight * total}
