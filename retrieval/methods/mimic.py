"""``mimic``: feature mimicking, the student's feature maps regressed onto the teacher's
(FitNets-style hints on every level; the detection baseline of Li et al. 2017 and
Wang et al. 2019 without their masks):

    L_mimic = weight · Σ_{l in levels} mean_{n,c,h,w} (C_l(F_l^student) - F_l^teacher)^2

``C_l`` is a learned 1x1 convolution (no bias) where the channel counts differ, else the
identity. ``features="fpn"`` reads the FPN levels of a detector (``model.fpn_levels``,
``out["fpn"]``); ``features="stages"`` the four backbone stages of any model; ``"auto"`` (the
default) the FPN levels where both models have them (a detector), else the stages. Levels are
1-based; the default is every level.
"""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import nn

from retrieval.methods.distiller import TASKS, Distiller
from retrieval.methods.options import Count, Weight
from retrieval.methods.registry import register_method

FEATURES = {"fpn": "fpn_levels", "stages": "stages"}


@register_method("mimic")
class FeatureMimic(Distiller):
    tasks = TASKS  # FPN levels (detection) or stages (any model)

    def __init__(self, student, teacher, task_loss=None, task_weight: Weight = 1.0, weight: Weight = 1.0,
                 features: Literal["auto", "fpn", "stages"] = "auto", levels: tuple[Count, ...] | None = None, **kw):
        super().__init__(student, teacher, task_loss, task_weight, **kw)
        if features == "auto":
            features = "fpn" if all(hasattr(m, FEATURES["fpn"]) for m in (student, teacher)) else "stages"
        if features not in FEATURES:
            raise ValueError(f"mimic: unknown features {features!r}; expected one of {list(FEATURES)}")
        info = {role: getattr(model, FEATURES[features], None) for role, model in (("student", student),
                                                                                     ("teacher", teacher))}
        for role, levels_info in info.items():
            if levels_info is None:
                raise ValueError(f"mimic on {features!r} needs a {role} with a {FEATURES[features]!r} attribute "
                                 f"(the FPN levels of a detector, or the stages of any backbone)")
        if len(info["student"]) != len(info["teacher"]):
            raise ValueError(f"mimic: the student has {len(info['student'])} {features} levels, the teacher "
                             f"{len(info['teacher'])}")
        self.features, self.weight = features, weight
        self.levels = tuple(int(i) for i in (levels or range(1, len(info["student"]) + 1)))
        if any(not 1 <= i <= len(info["student"]) for i in self.levels):
            raise ValueError(f"mimic levels {list(self.levels)} out of 1..{len(info['student'])}")
        self.connectors = nn.ModuleDict({
            str(i): (nn.Identity() if cs == ct else nn.Conv2d(cs, ct, kernel_size=1, bias=False))
            for i in self.levels
            for cs, ct in [(info["student"][i - 1].channels, info["teacher"][i - 1].channels)]})

    def distill_losses(self, s, t, batch):
        total = 0.0
        for i in self.levels:
            fs, ft = self.connectors[str(i)](s[self.features][i - 1]), t[self.features][i - 1]
            if fs.shape != ft.shape:
                raise ValueError(f"mimic: {self.features} level {i} has shape {tuple(fs.shape)} in the student "
                                 f"(after the connector) and {tuple(ft.shape)} in the teacher")
            total = total + F.mse_loss(fs, ft)
        return {"mimic": self.weight * total}
