"""``hmat``: hierarchical multi-attention transfer (Gou et al., ACM TOMM 2023; our reading).

Each term is a (kind, stage) pair; the default hierarchy is position attention at
stage 1, activation attention at stages 2-4 and channel attention (through a learned
1x1 connector) at stage 4:

    L = L_task + beta_pos·L_pos(1) + beta_act·Σ_{s=2..4} L_act(s) + beta_ch·L_ch(4).

The ablation variants (one term alone, one kind at every stage) are the same class
with another ``terms`` list.
"""

from __future__ import annotations

from torch import nn

from retrieval.methods.distiller import TASKS, Distiller
from retrieval.methods.losses.activation_attention import activation_attention_loss
from retrieval.methods.losses.channel_attention import ChannelConnector, channel_attention_loss
from retrieval.methods.losses.position_attention import DEFAULT_BLOCK_ELEMENTS, position_attention_loss
from retrieval.methods.options import Count, Temperature, Terms, Weight
from retrieval.methods.registry import register_method

KINDS = ("position", "activation", "channel")
DEFAULT_TERMS = (("position", 1), ("activation", 2), ("activation", 3), ("activation", 4), ("channel", 4))


@register_method("hmat")
class HierarchicalMultiAttention(Distiller):
    tasks = TASKS  # backbone stages: a detector has them too

    def __init__(self, student, teacher, task_loss=None, task_weight: Weight = 1.0, terms: Terms = DEFAULT_TERMS,
                 beta_pos: Weight = 1.0, beta_act: Weight = 1000.0, beta_ch: Weight = 1.0,
                 tau_pos: Temperature = 0.1, tau_ch: Temperature = 0.1, block_elements: Count = DEFAULT_BLOCK_ELEMENTS,
                 **kw):
        super().__init__(student, teacher, task_loss, task_weight, **kw)
        self.terms = [(str(kind), int(stage)) for kind, stage in terms]
        for kind, stage in self.terms:
            if kind not in KINDS or not 1 <= stage <= 4:
                raise ValueError(f"hmat term ({kind!r}, {stage}): expected a kind in {KINDS} and a stage 1-4")
        self.beta = {"position": beta_pos, "activation": beta_act, "channel": beta_ch}
        self.tau_pos, self.tau_ch, self.block_elements = tau_pos, tau_ch, block_elements
        self.connectors = nn.ModuleDict({
            str(stage): ChannelConnector(student.stages[stage - 1].channels, teacher.stages[stage - 1].channels)
            for kind, stage in self.terms if kind == "channel"})

    def _term(self, kind: str, stage: int, fs, ft):
        if kind == "position":
            return position_attention_loss(fs, ft, self.tau_pos, self.block_elements)
        if kind == "activation":
            return activation_attention_loss(fs, ft)
        return channel_attention_loss(fs, ft, self.tau_ch, self.connectors[str(stage)])

    def distill_losses(self, s, t, batch):
        losses = {}
        for kind, stage in self.terms:
            value = self._term(kind, stage, s["stages"][stage - 1], t["stages"][stage - 1])
            name = f"{kind[:3]}{stage}"
            losses[name] = self.beta[kind] * value
        return losses
