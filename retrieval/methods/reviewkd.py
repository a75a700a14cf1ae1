"""``reviewkd``: knowledge review (Chen et al., "Distilling Knowledge via Knowledge Review",
CVPR 2021).

    L = task_weight · L_task + weight · min(epoch / warmup_epochs, 1) · Σ_levels HCL(p_l, T_l),

over the levels ``stages`` plus the globally average-pooled last stage (a 1 x 1 map). A review
path of attention-based fusion blocks (ABF, ``retrieval.methods.losses.reviewkd``) runs from the
deepest level to the shallowest: each fuses the student's map at its level with the fused map
of the level below and predicts the teacher's map p_l at that level; HCL compares them at full
size and pooled to 4 x 4, 2 x 2 and 1 x 1. Defaults from mdistiller (CIFAR-100,
``configs/cifar100/reviewkd.yaml``): weight 5 beside a task (CE) weight of 1, a linear warm-up
over the first 20 epochs (the trainer's 1-based ``batch["epoch"]``; a batch without it gets the
full term), ABF middle width min(512, the student's last channels), at the residual stages' outputs
(mdistiller's ``feats[1:]``: our stages 2-4) and the pooled feature.

Where this differs from that code by default: the teacher's maps are its stage outputs after their
last ReLU, as every method here reads them (the method zoo's tables were run so). mdistiller reads
the teacher's maps before their last ReLU; ``teacher_preact: true`` does the same, from backbones
that declare those maps (``Backbone.forward_maps``). The pooled level is the post-activation pooled
feature in both, and the student side is post-activation in both (mdistiller's ``STU_PREACT: False``).
"""

from torch import nn

from retrieval.methods.distiller import Distiller
from retrieval.methods.losses.reviewkd import ABF, hcl_loss
from retrieval.methods.options import Count, Stages, Weight
from retrieval.methods.registry import register_method
from retrieval.models.backbone import preact_backbone


@register_method("reviewkd")
class ReviewKD(Distiller):
    def __init__(self, student, teacher, task_loss=None, task_weight: Weight = 1.0, weight: Weight = 5.0,
                 warmup_epochs: Count = 20, stages: Stages = (2, 3, 4), max_mid_channels: Count = 512,
                 teacher_preact: bool = False, **kw):
        super().__init__(student, teacher, task_loss, task_weight, **kw)
        self.weight, self.warmup, self.stages_used = weight, int(warmup_epochs), tuple(stages)
        self.teacher_preact = bool(teacher_preact)
        if self.teacher_preact:
            preact_backbone(teacher, "reviewkd: teacher_preact", "teacher")
            self.feature_options = {"preact": True}
        if list(self.stages_used) != sorted(set(self.stages_used)):
            raise ValueError(f"reviewkd: stages must increase, each once; got {list(self.stages_used)}")
        c_s = [student.stages[i - 1].channels for i in self.stages_used] + [student.stages[-1].channels]
        c_t = [teacher.stages[i - 1].channels for i in self.stages_used] + [teacher.stages[-1].channels]
        mid = min(int(max_mid_channels), c_s[-1])
        self.abfs = nn.ModuleList(ABF(cs, mid, ct, fuse=k < len(c_s) - 1) for k, (cs, ct) in enumerate(zip(c_s, c_t)))

    def _levels(self, out, preact: bool = False):
        maps = out["preact"] if preact else out["stages"]
        return [maps[i - 1] for i in self.stages_used] + [out["stages"][-1].mean(dim=(2, 3), keepdim=True)]

    def distill_losses(self, s, t, batch):
        student, teacher = self._levels(s), [f.detach() for f in self._levels(t, self.teacher_preact)]
        predicted = [None] * len(student)
        residual = None
        for k in reversed(range(len(student))):  # the deepest level first
            predicted[k], residual = self.abfs[k](student[k], residual, teacher[k].shape[2:])
        ramp = min(float(batch.get("epoch", self.warmup)) / self.warmup, 1.0)
        return {"reviewkd": self.weight * ramp * hcl_loss(predicted, teacher)}
