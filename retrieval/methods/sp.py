"""``sp``: similarity-preserving KD (Tung & Mori, "Similarity-Preserving Knowledge
Distillation", ICCV 2019).

    L = task_weight · L_task + weight · Σ_{s in stages} L_sp(F_s^student, F_s^teacher),

``L_sp`` the squared Frobenius distance between the row-normalised B x B similarity matrices
of the batch (``retrieval.methods.losses.sp``), divided by B². Defaults from RepDistiller and
mdistiller (CIFAR-100): weight 3000 beside a task (CE) weight of 1, on the last stage's output
(``feat[-2]``, the map before pooling: our stage 4). Stages are 1-based; channels and sizes may
differ between student and teacher. Under torchrun the similarities are over the global batch.
"""

from retrieval.engine.distributed import gather, gather_with_grad
from retrieval.methods.distiller import Distiller
from retrieval.methods.losses.sp import sp_loss
from retrieval.methods.options import Stages, Weight
from retrieval.methods.registry import register_method


@register_method("sp")
class SimilarityPreserving(Distiller):
    def __init__(self, student, teacher, task_loss=None, task_weight: Weight = 1.0, weight: Weight = 3000.0,
                 stages: Stages = (4,), **kw):
        super().__init__(student, teacher, task_loss, task_weight, **kw)
        self.weight, self.stages_used = weight, tuple(stages)

    def distill_losses(self, s, t, batch):
        total = sum(sp_loss(gather_with_grad(s["stages"][i - 1].flatten(1)), gather(t["stages"][i - 1].flatten(1)))
                    for i in self.stages_used)
        return {"sp": self.weight * total}
