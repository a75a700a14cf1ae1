"""``cc``: correlation congruence (Peng et al., "Correlation Congruence for Knowledge
Distillation", ICCV 2019), as in the authors' code that RepDistiller ships.

    L = task_weight · L_task + weight · L_cc(W_s e_student, W_t e_teacher),

``L_cc`` from ``retrieval.methods.losses.cc``: the product of the absolute errors of consecutive
samples of the batch, between two learned linear embeddings (RepDistiller's ``LinearEmbed``,
with bias) of the pooled features (our ``embedding``) into ``feat_dim`` dimensions. Defaults from
RepDistiller (CIFAR-100): weight 0.02 beside a task (CE) weight of 1, feat_dim 128. The paper's
kernelised correlation matrices are not what that code computes; the docstring of the loss says
how they differ.
"""

from torch import nn

from retrieval.methods.distiller import Distiller
from retrieval.methods.losses.cc import cc_loss
from retrieval.methods.options import Count, Weight
from retrieval.methods.registry import register_method


@register_method("cc")
class CorrelationCongruence(Distiller):
    def __init__(self, student, teacher, task_loss=None, task_weight: Weight = 1.0, weight: Weight = 0.02,
                 feat_dim: Count = 128, **kw):
        super().__init__(student, teacher, task_loss, task_weight, **kw)
        self.weight = weight
        self.embed_s = nn.Linear(student.embedding_dim, feat_dim)
        self.embed_t = nn.Linear(teacher.embedding_dim, feat_dim)

    def distill_losses(self, s, t, batch):
        return {"cc": self.weight * cc_loss(self.embed_s(s["embedding"]), self.embed_t(t["embedding"].detach()))}
