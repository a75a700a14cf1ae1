"""``dist``: DIST (Huang et al., "Knowledge Distillation from A Stronger Teacher", NeurIPS 2022),
on classification logits.

    L = task_weight · CE + weight · (beta · inter + gamma · intra),

the inter- and intra-class Pearson relations of ``retrieval.methods.losses.dist``. Defaults:
beta 1, gamma 1, tau 1 (the authors' loss and torchdistill's ``DISTLoss``), weight 2 beside a CE
weight of 1 (torchdistill's ResNet-34 -> ResNet-18 ImageNet config).
"""

from retrieval.methods.distiller import Distiller
from retrieval.methods.losses.dist import dist_loss
from retrieval.methods.options import Temperature, Weight
from retrieval.methods.registry import register_method


@register_method("dist")
class DIST(Distiller):
    tasks = ("classification",)  # class probabilities

    def __init__(self, student, teacher, task_loss=None, task_weight: Weight = 1.0, weight: Weight = 2.0,
                 beta: Weight = 1.0, gamma: Weight = 1.0, tau: Temperature = 1.0, **kw):
        super().__init__(student, teacher, task_loss, task_weight, **kw)
        self.weight, self.beta, self.gamma, self.tau = weight, beta, gamma, tau

    def distill_losses(self, s, t, batch):
        return {"dist": self.weight * dist_loss(s["output"], t["output"], self.beta, self.gamma, self.tau)}
