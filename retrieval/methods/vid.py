"""``vid``: variational information distillation (Ahn et al., "Variational Information
Distillation for Knowledge Transfer", CVPR 2019).

    L = task_weight · L_task + weight · Σ_{s in stages} L_vid(F_s^student, F_s^teacher),

``L_vid`` the negative log-likelihood of the teacher's map under a Gaussian whose mean a learned
1x1-convolution regressor predicts from the student's map, with a learned variance per teacher
channel (``retrieval.methods.losses.vid``). Defaults from RepDistiller and mdistiller (CIFAR-100):
weight 1 beside a task (CE) weight of 1, at every residual stage's output (``feat[1:-1]``: our
stages 2-4), initial variance 5, ε = 1e-5. The regressors and variances train with the student.
"""

from torch import nn

from retrieval.methods.distiller import Distiller
from retrieval.methods.losses.vid import EPS, INIT_PRED_VAR, VIDRegressor
from retrieval.methods.options import Positive, Stages, Weight
from retrieval.methods.registry import register_method


@register_method("vid")
class VariationalInformationDistillation(Distiller):
    def __init__(self, student, teacher, task_loss=None, task_weight: Weight = 1.0, weight: Weight = 1.0,
                 stages: Stages = (2, 3, 4), init_pred_var: Positive = INIT_PRED_VAR, **kw):
        super().__init__(student, teacher, task_loss, task_weight, **kw)
        self.weight, self.stages_used = weight, tuple(stages)
        if init_pred_var <= EPS:
            raise ValueError(f"vid: init_pred_var must exceed eps = {EPS}; got {init_pred_var}")
        self.regressors = nn.ModuleList(
            VIDRegressor(student.stages[i - 1].channels, teacher.stages[i - 1].channels, init_pred_var)
            for i in self.stages_used)

    def distill_losses(self, s, t, batch):
        total = sum(reg(s["stages"][i - 1], t["stages"][i - 1]) for reg, i in zip(self.regressors, self.stages_used))
        return {"vid": self.weight * total}
