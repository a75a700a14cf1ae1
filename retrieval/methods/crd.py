"""``crd``: contrastive representation distillation with memory banks (needs sample indices)."""

from typing import Annotated

from pydantic import Field

from retrieval.methods.distiller import Distiller
from retrieval.methods.losses.crd import CRDLoss
from retrieval.methods.options import Count, Fraction, Weight
from retrieval.methods.registry import register_method

CRDTemperature = Annotated[float, Field(ge=0.03, description="temperature, >= 0.03")]
"""CRD's scores are exp(cos / T) divided by a constant fixed on the first batch: below T = 0.03 a negative's
score leaves float32's range (exp(-2/T) over the training set's size) and its gradient is inf or NaN."""


@register_method("crd")
class ContrastiveRepresentationDistillation(Distiller):
    def __init__(self, student, teacher, task_loss=None, task_weight: Weight = 1.0,
                 weight: Weight = 0.8, feat_dim: Count = 128, num_negatives: Count = 16384,
                 temperature: CRDTemperature = 0.07, momentum: Fraction = 0.5, **kw):
        super().__init__(student, teacher, task_loss, task_weight, **kw)
        if self.train_labels is None:
            raise ValueError("crd needs train_labels (the label of every training sample, by dataset index)")
        self.weight = weight
        self.crd = CRDLoss(student.embedding_dim, teacher.embedding_dim, self.train_labels,
                           feat_dim=feat_dim, num_negatives=num_negatives, temperature=temperature,
                           momentum=momentum)

    def distill_losses(self, s, t, batch):
        return {"crd": self.weight * self.crd(s["embedding"], t["embedding"], batch["index"])}
