"""``dkd``: decoupled knowledge distillation (Zhao et al., "Decoupled Knowledge Distillation",
CVPR 2022), on classification logits.

    L = task_weight · CE + min(epoch / warmup, 1) · (alpha · TCKD + beta · NCKD),

TCKD and NCKD from ``retrieval.methods.losses.dkd``. Defaults from the authors' code
(mdistiller, CIFAR-100): CE weight 1, alpha 1, beta 8 (the paper tunes beta per teacher-student
pair), T 4, a linear warm-up of the KD term over the first 20 epochs. The epoch is the
trainer's (1-based, ``batch["epoch"]``); a batch without it gets the full term.
"""

from retrieval.methods.distiller import Distiller
from retrieval.methods.losses.dkd import dkd_loss
from retrieval.methods.options import Count, Temperature, Weight
from retrieval.methods.registry import register_method


@register_method("dkd")
class DecoupledKD(Distiller):
    tasks = ("classification",)  # class logits and labels

    def __init__(self, student, teacher, task_loss=None, task_weight: Weight = 1.0, alpha: Weight = 1.0,
                 beta: Weight = 8.0, temperature: Temperature = 4.0, warmup: Count = 20, **kw):
        super().__init__(student, teacher, task_loss, task_weight, **kw)
        self.alpha, self.beta, self.temperature, self.warmup = alpha, beta, temperature, warmup

    def distill_losses(self, s, t, batch):
        ramp = min(float(batch.get("epoch", self.warmup)) / self.warmup, 1.0)
        loss = dkd_loss(s["output"], t["output"], batch["label"], self.alpha, self.beta, self.temperature)
        return {"dkd": ramp * loss}
