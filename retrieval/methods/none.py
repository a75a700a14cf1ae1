"""``none``: the student trained on its task loss alone (every table's reference row)."""

from retrieval.methods.distiller import TASKS, Distiller
from retrieval.methods.options import Weight
from retrieval.methods.registry import register_method


@register_method("none")
class NoDistillation(Distiller):
    needs_teacher = False
    tasks = TASKS

    def __init__(self, student, teacher=None, task_loss=None, task_weight: Weight = 1.0, **kw):
        super().__init__(student, None, task_loss, task_weight, **kw)  # the teacher is not used
