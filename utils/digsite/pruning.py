"""Influence and pruning: which nodes of an attribution graph matter for its target (Ameisen et al. 2025).

An edge's *share* is its |weight| divided by the sum of its receiver's incoming |weights|
(`normalized_adjacency`); a node's *influence* on the target sums the products of shares along
every path into it (`influence_on`). Pruning keeps the features that carry most of the
influence, then the edges that carry most of the scores (`prune`); `strongest_path` is the
path whose shares multiply to the largest number.

The computations are chapter 7's exercise answers (7.5, 7.6, 7.9), written once in
`course/07_feature_circuits.py` and imported from `digsite.solutions.ch07`; this module adds
the checks of their inputs and the `PrunedGraph` the figures draw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor

from .attribution import Graph
from .solutions.ch07 import influence as influence_on
from .solutions.ch07 import normalized_adjacency, prune_graph
from .solutions.ch07 import strongest_path as _strongest_path

__all__ = ["PrunedGraph", "influence_on", "normalized_adjacency", "prune", "strongest_path"]


@dataclass
class PrunedGraph:
    """Which nodes and edges of a graph survive pruning.

    nodes (n_nodes,) bool; edges (n_nodes, n_nodes) bool, aligned with the graph's adjacency;
    influence (n_nodes,) each node's influence on the target in the full graph.
    """

    graph: Graph
    nodes: Tensor
    edges: Tensor
    influence: Tensor

    @property
    def n_kept_features(self) -> int:
        return int(self.nodes[: self.graph.n_features].sum())


def prune(graph: Graph, node_threshold: float = 0.8, edge_threshold: float = 0.98) -> PrunedGraph:
    """Keep the features that carry `node_threshold` of all feature influence on the target, then the
    edges that carry `edge_threshold` of the edge scores (Ameisen et al. 2025; exercise 7.6).

    Features are taken in order of influence until their cumulative influence reaches the threshold;
    error and embedding nodes and the target are not pruned as nodes. An edge's score is its
    normalised weight times its receiver's influence on the target (1 for the target itself), both
    recomputed on the graph of kept nodes. Nodes left with no kept edge (but the target) are dropped.
    """
    if not (0 < node_threshold <= 1 and 0 < edge_threshold <= 1):
        raise ValueError(f"thresholds are fractions in (0, 1]; got {node_threshold} and {edge_threshold}")
    nodes, edges = prune_graph(graph.adjacency, graph.n_features, graph.target_index, node_threshold, edge_threshold)
    return PrunedGraph(
        graph=graph, nodes=nodes, edges=edges, influence=influence_on(graph.adjacency, graph.target_index)
    )


def strongest_path(adjacency: Tensor, target: int, sources: Sequence[int]) -> list[int]:
    """The path from one of `sources` to `target` with the largest product of shares
    (`normalized_adjacency`), as a list of nodes from source to target. Ties go to the lower index.

    A ValueError when no source has a path to the target (exercise 7.9 assumes one exists).
    """
    sources = [int(s) for s in sources]
    if target not in sources and (not sources or influence_on(adjacency, target)[sources].max() <= 0):
        raise ValueError(f"no path leads from the sources {sources} to node {target}")
    return _strongest_path(adjacency, target, sources)
