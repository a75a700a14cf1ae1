"""``nst``: neuron selectivity transfer (Huang & Wang, "Like What You Like: Knowledge Distill via
Neuron Selectivity Transfer", arXiv 1707.01219, 2017).

    L = task_weight · L_task + weight · Σ_{s in stages} L_nst(F_s^student, F_s^teacher),

``L_nst`` the squared MMD of the channels' normalised spatial responses under the polynomial
kernel (aᵀb)² (``retrieval.methods.losses.nst``). Defaults from RepDistiller and mdistiller
(CIFAR-100): weight 50 beside a task (CE) weight of 1, on the intermediate feature maps
(``feat[1:-1]``: the outputs of the three residual stages, our stages 2-4). The paper also
names linear and Gaussian kernels; the codes use the polynomial one, as here.
"""

from retrieval.methods.distiller import Distiller
from retrieval.methods.losses.nst import nst_loss
from retrieval.methods.options import Stages, Weight
from retrieval.methods.registry import register_method


@register_method("nst")
class NeuronSelectivityTransfer(Distiller):
    def __init__(self, student, teacher, task_loss=None, task_weight: Weight = 1.0, weight: Weight = 50.0,
                 stages: Stages = (2, 3, 4), **kw):
        super().__init__(student, teacher, task_loss, task_weight, **kw)
        self.weight, self.stages_used = weight, tuple(stages)

    def distill_losses(self, s, t, batch):
        total = sum(nst_loss(s["stages"][i - 1], t["stages"][i - 1]) for i in self.stages_used)
        return {"nst": self.weight * total}
