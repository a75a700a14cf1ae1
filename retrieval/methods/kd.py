"""``kd``: Hinton's soft-target distillation on the model outputs (classification logits).

    L = task_weight · CE + weight · L_kd(T),  defaults 0.1, 0.9, T = 4 (RepDistiller).
"""

from retrieval.methods.distiller import Distiller
from retrieval.methods.losses.kd import kd_loss
from retrieval.methods.options import Temperature, Weight
from retrieval.methods.registry import register_method


@register_method("kd")
class KnowledgeDistillation(Distiller):
    tasks = ("classification",)  # soft targets need class logits

    def __init__(self, student, teacher, task_loss=None, task_weight: Weight = 0.1, weight: Weight = 0.9,
                 temperature: Temperature = 4.0, **kw):
        super().__init__(student, teacher, task_loss, task_weight, **kw)
        self.weight, self.temperature = weight, temperature

    def distill_losses(self, s, t, batch):
        return {"kd": self.weight * kd_loss(s["output"], t["output"], self.temperature)}
