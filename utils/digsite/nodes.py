"""Nodes of a transformer's computational graph, the units a circuit is made of: heads and MLPs.

Its own module so that `digsite.solutions.ch03` (the chapter's exercise answers, which name
`Node`) and `digsite.patching` (which imports those answers) do not import each other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from .hooks import HookedModel

__all__ = ["Node", "all_nodes"]


class Node(NamedTuple):
    """A node of the computational graph: a head (layer, head) or, with head None, a block's MLP."""

    layer: int
    head: int | None = None

    def __str__(self) -> str:
        return f"MLP{self.layer}" if self.head is None else f"{self.layer}.{self.head}"

    @property
    def hook(self) -> str:
        """The hook whose value stands for this node's output."""
        return f"blocks.{self.layer}.hook_mlp_out" if self.head is None else f"blocks.{self.layer}.attn.hook_z"


def all_nodes(model: HookedModel, mlps: bool = True) -> list[Node]:
    """Every head and (if `mlps`) every MLP, in forward order: block by block, heads before the MLP."""
    out = []
    for l in range(model.cfg.n_layers):
        out += [Node(l, h) for h in range(model.cfg.n_heads)]
        if mlps:
            out.append(Node(l))
    return out
