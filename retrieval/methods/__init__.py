"""KD methods behind one registry; each is a ``Distiller`` returning named losses."""

from retrieval.methods.distiller import Distiller
from retrieval.methods.registry import (build_method, is_method, list_methods, method_class, method_tasks, methods_for_task,
                                        needs_teacher, register_method)

__all__ = ["Distiller", "build_method", "is_method", "list_methods", "method_class", "method_tasks", "methods_for_task", "needs_teacher", "register_method"]
