"""``fitnet``: hint regression (Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015).

    L = task_weight · L_task + weight · mean (r(F_s^student) − F_s^teacher)²,

at one stage s (the "hint" and "guided" layers), through a learned regressor r: a convolution
from the student's channels to the teacher's, then BatchNorm and ReLU (RepDistiller's ``ConvReg``:
a 1x1 convolution where the maps have one size, a 3x3 one of stride 2 where the student's map is
twice the teacher's, a 4x4 transposed one of stride 2 where it is half). Defaults from RepDistiller
and mdistiller (CIFAR-100): weight 100 beside a task (CE) weight of 1, at ``feat[2]`` (the second
residual stage's output: our stage 3).

The paper trains in two stages: first the student's layers up to the guided one, with the
regressor, on the hint loss alone; then the whole student with KD from those weights. Like
RepDistiller and mdistiller, this trains one stage: the hint term beside the task loss from the
first step, the regressor learned along with the student.
"""

from torch import nn

from retrieval.methods.distiller import Distiller
from retrieval.methods.options import Stage, Weight
from retrieval.methods.registry import register_method


class HintRegressor(nn.Sequential):
    """Student map (c_s channels, stride s_s) -> the teacher's shape (c_t, stride s_t)."""

    def __init__(self, c_s: int, c_t: int, stride_s: int, stride_t: int):
        if stride_s == stride_t:
            conv = nn.Conv2d(c_s, c_t, kernel_size=1)
        elif stride_t == 2 * stride_s:  # the student's map is twice the teacher's
            conv = nn.Conv2d(c_s, c_t, kernel_size=3, stride=2, padding=1)
        elif stride_s == 2 * stride_t:  # ... half of it
            conv = nn.ConvTranspose2d(c_s, c_t, kernel_size=4, stride=2, padding=1)
        else:
            raise ValueError(f"fitnet: no regressor from a map of stride {stride_s} to one of stride {stride_t} "
                             f"(expected equal strides or a factor of 2)")
        super().__init__(conv, nn.BatchNorm2d(c_t), nn.ReLU())


@register_method("fitnet")
class FitNet(Distiller):
    def __init__(self, student, teacher, task_loss=None, task_weight: Weight = 1.0, weight: Weight = 100.0,
                 stage: Stage = 3, **kw):
        super().__init__(student, teacher, task_loss, task_weight, **kw)
        self.weight, self.stage = weight, int(stage)
        s, t = student.stages[self.stage - 1], teacher.stages[self.stage - 1]
        self.regressor = HintRegressor(s.channels, t.channels, s.stride, t.stride)

    def distill_losses(self, s, t, batch):
        hint = t["stages"][self.stage - 1].detach()
        guided = self.regressor(s["stages"][self.stage - 1])
        return {"fitnet": self.weight * nn.functional.mse_loss(guided, hint)}
