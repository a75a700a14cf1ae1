"""A 4-stage backbone: any module plus the names of its stage outputs.

Stage features are captured with torchvision's ``create_feature_extractor`` (an FX
graph rewrite that returns the named intermediate nodes), so no model is edited to
leak features and every backbone, torchvision or ours, is read the same way.

A backbone may also declare, per stage, the node that holds the stage's map *before*
its last ReLU and the BatchNorm whose output enters that ReLU (``preact``; cf.
mdistiller's ``preact_feats`` and ``get_bn_before_relu``), which OFD reads.
``forward_maps(x, preact=True)`` returns both maps from one pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import fx, nn
from torchvision.models.feature_extraction import create_feature_extractor


@dataclass(frozen=True)
class StageInfo:
    """What a method needs to build connectors without running a batch (cf. timm's feature_info)."""

    name: str
    channels: int
    stride: int


def _clone_outputs(module: fx.GraphModule, keys: list[str]) -> None:
    """Return a copy of each output ``keys`` taken right after it is computed: an in-place ReLU
    that reads the node later would otherwise overwrite the returned map. The extractor keeps a
    train and an eval graph (``DualGraphModule``); both are edited."""
    graphs = {id(g): g for g in (getattr(module, "train_graph", None), getattr(module, "eval_graph", None),
                                 module.graph) if g is not None}
    for graph in graphs.values():
        out = next(n for n in graph.nodes if n.op == "output")
        returned = dict(out.args[0])
        for key in keys:
            with graph.inserting_after(returned[key]):
                returned[key] = graph.call_method("clone", (returned[key],))
        out.args = (returned,)
    module.recompile()


class Backbone(nn.Module):
    """``forward(x) -> [f1, f2, f3, f4]``: the four stage feature maps of ``model``.

    ``preact``: optional ``[(node, bn), ...]`` per stage: the node whose output is the stage's map
    before its last ReLU (the stage node itself where no ReLU ends the stage) and the qualified name
    of the BatchNorm module feeding that ReLU."""

    def __init__(self, model: nn.Module, stage_nodes: list[str], channels: list[int], strides: list[int],
                 preact: list[tuple[str, str]] | None = None):
        super().__init__()
        if not (len(stage_nodes) == len(channels) == len(strides) == 4):
            raise ValueError("a backbone declares exactly 4 stages (nodes, channels, strides)")
        if preact is not None and len(preact) != 4:
            raise ValueError("a backbone's preact declares (node, bn) for each of its 4 stages")
        self.stages = [StageInfo(n, c, s) for n, c, s in zip(stage_nodes, channels, strides)]
        self.body = create_feature_extractor(model, return_nodes={n: str(i) for i, n in enumerate(stage_nodes)})
        # ``model`` (whose leaf modules ``body`` shares) and the pre-ReLU declaration stay out of the module tree,
        # so the state dict (and every checkpoint) is that of ``body`` alone. The extractor of stage and pre-ReLU
        # maps is traced on first use only: most methods never ask for it.
        self.__dict__.update(_source=model, _preact=preact, _preact_body=None)

    def _preact_extractor(self):
        """The extractor of the stage and pre-ReLU maps (a copy of each pre-ReLU map taken before the ReLU
        that follows can overwrite it) and the output key of each stage's pre-ReLU map."""
        if self._preact_body is None:
            nodes = {n.name: str(i) for i, n in enumerate(self.stages)}
            extra = {node: f"pre{i}" for i, (node, _) in enumerate(self._preact) if node not in nodes}
            self._source.train(self.training)  # the tracer restores this mode on the modules it shares with body
            body = create_feature_extractor(self._source, return_nodes={**nodes, **extra})
            _clone_outputs(body, list(extra.values()))
            body.train(self.training)
            keys = [nodes.get(node) or extra[node] for node, _ in self._preact]
            self.__dict__["_preact_body"] = (body, keys)
        return self._preact_body

    @property
    def out_channels(self) -> int:
        return self.stages[-1].channels

    @property
    def has_preact(self) -> bool:
        """Whether the backbone declares its pre-ReLU stage maps (``forward_maps``)."""
        return self._preact is not None

    def _require_preact(self) -> None:
        if not self.has_preact:
            raise ValueError("this backbone does not declare its pre-ReLU stage maps")

    @property
    def preact_bns(self) -> list[nn.BatchNorm2d]:
        """The BatchNorm feeding each stage's last ReLU (mdistiller's ``get_bn_before_relu``)."""
        self._require_preact()
        return [self._source.get_submodule(bn) for _, bn in self._preact]

    def train(self, mode: bool = True):
        super().train(mode)
        if self._preact_body is not None:
            self._preact_body[0].train(mode)  # its modules are body's; this switches its train/eval graph
        return self

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = self.body(x)
        return [out[str(i)] for i in range(4)]

    def forward_maps(self, x: torch.Tensor, preact: bool = False) -> dict:
        """``{"stages": [f1..f4]}``; with ``preact`` also ``"preact"``: the four maps before their last ReLU,
        from the same pass."""
        if not preact:
            return {"stages": self(x)}
        self._require_preact()
        body, keys = self._preact_extractor()
        out = body(x)
        return {"stages": [out[str(i)] for i in range(4)], "preact": [out[k] for k in keys]}


def preact_backbone(model: nn.Module, reader: str, role: str) -> Backbone:
    """``model.backbone`` if it declares its pre-ReLU stage maps, else a ``ValueError`` naming ``reader`` (the
    method or option that reads them) and ``role`` (student or teacher): checked when a method is built."""
    backbone = getattr(model, "backbone", None)
    if not getattr(backbone, "has_preact", False):
        raise ValueError(f"{reader} reads the {role}'s stage maps before their last ReLU, which its backbone does "
                         f"not declare (the small CNNs, CIFAR ResNets and WRNs and torchvision's ResNets do)")
    return backbone
