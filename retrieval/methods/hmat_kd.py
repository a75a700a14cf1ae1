"""``hmat+kd``: the HMAT attention terms plus Hinton's soft-target term on the logits.

    L = task_weight · CE + Σ HMAT terms + kd_weight · L_kd(T),  defaults 0.1, 0.9, T = 4
    (the CE/KD split of ``kd``, so the difference to ``kd`` is the attention terms).
"""

from retrieval.methods.hmat import HierarchicalMultiAttention
from retrieval.methods.losses.kd import kd_loss
from retrieval.methods.options import Temperature, Weight
from retrieval.methods.registry import register_method


@register_method("hmat+kd")
class HierarchicalMultiAttentionKD(HierarchicalMultiAttention):
    tasks = ("classification",)  # its kd term needs class logits

    def __init__(self, student, teacher, task_loss=None, task_weight: Weight = 0.1, kd_weight: Weight = 0.9,
                 temperature: Temperature = 4.0, **kw):
        super().__init__(student, teacher, task_loss, task_weight, **kw)
        self.kd_weight, self.temperature = kd_weight, temperature

    def distill_losses(self, s, t, batch):
        losses = super().distill_losses(s, t, batch)
        losses["kd"] = self.kd_weight * kd_loss(s["output"], t["output"], self.temperature)
        return losses
