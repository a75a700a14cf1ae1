"""``rkd``: relational KD on the final embedding (distance + angle terms)."""

from retrieval.engine.distributed import gather, gather_with_grad
from retrieval.methods.distiller import Distiller
from retrieval.methods.losses.rkd import rkd_angle_loss, rkd_distance_loss
from retrieval.methods.options import Weight
from retrieval.methods.registry import register_method


@register_method("rkd")
class RelationalKD(Distiller):
    def __init__(self, student, teacher, task_loss=None, task_weight: Weight = 1.0,
                 distance_weight: Weight = 1.0, angle_weight: Weight = 2.0, **kw):
        super().__init__(student, teacher, task_loss, task_weight, **kw)
        self.distance_weight, self.angle_weight = distance_weight, angle_weight

    def distill_losses(self, s, t, batch):
        losses = {}
        s, t = {"embedding": gather_with_grad(s["embedding"])}, {"embedding": gather(t["embedding"])}  # global batch
        if self.distance_weight:
            losses["rkd_distance"] = self.distance_weight * rkd_distance_loss(s["embedding"], t["embedding"])
        if self.angle_weight:
            losses["rkd_angle"] = self.angle_weight * rkd_angle_loss(s["embedding"], t["embedding"])
        return losses
