"""``at``: activation-based attention transfer on chosen stages (Zagoruyko & Komodakis 2017)."""

from retrieval.methods.distiller import TASKS, Distiller
from retrieval.methods.losses.activation_attention import activation_attention_loss
from retrieval.methods.options import Positive, Stages, Weight
from retrieval.methods.registry import register_method


@register_method("at")
class AttentionTransfer(Distiller):
    """loss_at = beta · Σ_{s in stages} L_act(F_s^student, F_s^teacher); stages are 1-based."""

    tasks = TASKS  # backbone stages: a detector has them too

    def __init__(self, student, teacher, task_loss=None, task_weight: Weight = 1.0, beta: Weight = 1000.0,
                 stages: Stages = (2, 3, 4), p: Positive = 2.0, **kw):
        super().__init__(student, teacher, task_loss, task_weight, **kw)
        self.beta, self.stages_used, self.p = beta, tuple(stages), p

    def distill_losses(self, s, t, batch):
        total = sum(activation_attention_loss(s["stages"][i - 1], t["stages"][i - 1], self.p)
                    for i in self.stages_used)
        return {"at": self.beta * total}
