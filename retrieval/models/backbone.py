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
        # The extractor of stage and pre-ReLU maps shares every module with ``body`` and is kept out of the
        # module tree, so the state dict (and every checkpoint) is that of ``body`` alone.
        self.__dict__["_preact_body"] = self.__dict__["_preact_bns"] = None
        if preact is not None:
            nodes = {n: str(i) for i, n in enumerate(stage_nodes)}
            extra = {node: f"pre{i}" for i, (node, _) in enumerate(preact) if node not in nodes}
            body = create_feature_extractor(model, return_nodes={**nodes, **extra})
            _clone_outputs(body, list(extra.values()))
            self.__dict__["_preact_keys"] = [nodes.get(node) or extra[node] for node, _ in preact]
            self.__dict__["_preact_body"] = body
            self.__dict__["_preact_bns"] = [model.get_submodule(bn) for _, bn in preact]

    @property
    def out_channels(self) -> int:
        return self.stages[-1].channels

    @property
    def has_preact(self) -> bool:
        """Whether the backbone declares its pre-ReLU stage maps (``forward_maps``)."""
        return self._preact_body is not None

    @property
    def preact_bns(self) -> list[nn.BatchNorm2d]:
        """The BatchNorm feeding each stage's last ReLU (mdistiller's ``get_bn_before_relu``)."""
        if not self.has_preact:
            raise ValueError("this backbone does not declare its pre-ReLU stage maps")
        return list(self._preact_bns)

    def train(self, mode: bool = True):
        super().train(mode)
        if self._preact_body is not None:
            self._preact_body.train(mode)  # its modules are body's; this switches its train/eval graph
        return self

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = self.body(x)
        return [out[str(i)] for i in range(4)]

    def forward_maps(self, x: torch.Tensor, preact: bool = False) -> dict:
        """``{"stages": [f1..f4]}``; with ``preact`` also ``"preact"``: the four maps before their last ReLU,
        from the same pass."""
        if not preact:
            return {"stages": self(x)}
        if not self.has_preact:
            raise ValueError("this backbone does not declare its pre-ReLU stage maps")
        out = self._preact_body(x)
        return {"stages": [out[str(i)] for i in range(4)], "preact": [out[k] for k in self._preact_keys]}
