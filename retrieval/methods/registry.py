"""KD method registry: ``list_methods()``, ``build_method(name, **cfg)``, ``needs_teacher(name)``, ``method_tasks(name)``."""

from __future__ import annotations

from retrieval.methods.at import AttentionTransfer
from retrieval.methods.cc import CorrelationCongruence
from retrieval.methods.crd import ContrastiveRepresentationDistillation
from retrieval.methods.darkrank import DarkRank
from retrieval.methods.dist import DIST
from retrieval.methods.dkd import DecoupledKD
from retrieval.methods.fitnet import FitNet
from retrieval.methods.hmat import HierarchicalMultiAttention
from retrieval.methods.hmat_kd import HierarchicalMultiAttentionKD
from retrieval.methods.kd import KnowledgeDistillation
from retrieval.methods.mimic import FeatureMimic
from retrieval.methods.none import NoDistillation
from retrieval.methods.nst import NeuronSelectivityTransfer
from retrieval.methods.ofd import OverhaulFeatureDistillation
from retrieval.methods.pkt import ProbabilisticKnowledgeTransfer
from retrieval.methods.reviewkd import ReviewKD
from retrieval.methods.rkd import RelationalKD
from retrieval.methods.sp import SimilarityPreserving
from retrieval.methods.vid import VariationalInformationDistillation

_METHODS = {
    "none": NoDistillation,
    "at": AttentionTransfer,
    "rkd": RelationalKD,
    "crd": ContrastiveRepresentationDistillation,
    "hmat": HierarchicalMultiAttention,
    "kd": KnowledgeDistillation,  # on logits: classification
    "hmat+kd": HierarchicalMultiAttentionKD,
    "mimic": FeatureMimic,  # feature regression on FPN levels (detection) or stages
    "pkt": ProbabilisticKnowledgeTransfer,
    "sp": SimilarityPreserving,
    "nst": NeuronSelectivityTransfer,
    "fitnet": FitNet,
    "dkd": DecoupledKD,  # on logits: classification
    "dist": DIST,  # on logits: classification
    "cc": CorrelationCongruence,
    "vid": VariationalInformationDistillation,
    "reviewkd": ReviewKD,
    "darkrank": DarkRank,  # listwise, on embeddings: retrieval's ranking
    "ofd": OverhaulFeatureDistillation,  # pre-ReLU stage maps
}


def register_method(name: str, cls) -> None:
    if name in _METHODS:
        raise ValueError(f"method {name!r} is registered twice")
    _METHODS[name] = cls


def list_methods() -> list[str]:
    return list(_METHODS)


def is_method(name) -> bool:
    return name in _METHODS


def method_class(name: str):
    """The ``Distiller`` subclass registered as ``name`` (its signature types the method's options)."""
    if name not in _METHODS:
        raise ValueError(f"unknown KD method {name!r}; expected one of {list(_METHODS)}")
    return _METHODS[name]


def needs_teacher(name: str) -> bool:
    """Whether method ``name`` reads a teacher (``none`` does not: its runs need not wait for one)."""
    return bool(method_class(name).needs_teacher)


def methods_for_task(task: str | None) -> list[str]:
    """The registered methods that run on ``task`` (all of them for ``None``), in registry order."""
    return [name for name in _METHODS if task is None or task in _METHODS[name].tasks]


def method_tasks(name: str) -> tuple[str, ...]:
    """The tasks method ``name`` runs on (retrieval, classification, detection; ``Distiller.tasks``)."""
    return tuple(method_class(name).tasks)


def build_method(name: str, **cfg):
    """Build method ``name`` with ``student``, ``teacher``, ``task_loss`` and its own options."""
    return method_class(name)(**cfg)
