"""``pkt``: probabilistic knowledge transfer (Passalis & Tefas, "Learning Deep Representations
with Probabilistic Knowledge Transfer", ECCV 2018).

    L = task_weight · L_task + weight · L_pkt(e_student, e_teacher),

``L_pkt`` the KL divergence between the teacher's and the student's cosine-kernel
distributions over the batch (``retrieval.methods.losses.pkt``), on the embedding: the pooled
feature before the classifier, where RepDistiller and mdistiller apply it (``feat[-1]``,
``pooled_feat``). Defaults from those codes (CIFAR-100): weight 30000 beside a task (CE) weight of
1. The paper writes the divergence as a sum over each row; the authors' code, followed here,
averages over the B x B matrix (a factor B smaller, which the weight absorbs). Under torchrun the
kernel is over the global batch, as ``rkd``'s distances.
"""

from retrieval.engine.distributed import gather, gather_with_grad
from retrieval.methods.distiller import Distiller
from retrieval.methods.losses.pkt import pkt_loss
from retrieval.methods.options import Weight
from retrieval.methods.registry import register_method


@register_method("pkt")
class ProbabilisticKnowledgeTransfer(Distiller):
    def __init__(self, student, teacher, task_loss=None, task_weight: Weight = 1.0, weight: Weight = 30000.0,
                 **kw):
        super().__init__(student, teacher, task_loss, task_weight, **kw)
        self.weight = weight

    def distill_losses(self, s, t, batch):
        return {"pkt": self.weight * pkt_loss(gather_with_grad(s["embedding"]), gather(t["embedding"]))}
