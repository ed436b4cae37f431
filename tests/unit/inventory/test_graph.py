"""Dependency order on chains, diamonds and cycles."""

from __future__ import annotations

import pytest

from phoenix.inventory.graph import Graph


def _graph(edges: dict[int, list[int]]) -> Graph:
    g = Graph()
    for node in {n for pair in edges.items() for n in [pair[0], *pair[1]]}:
        g.add(node, f"g{node}")
    for node, needs in edges.items():
        for need in needs:
            g.link(node, need, "depends")
    return g


def test_chain_is_created_from_the_root() -> None:
    g = _graph({103: [102], 102: [101], 101: []})
    assert g.creation_order() == [101, 102, 103]


def test_diamond_builds_the_shared_base_once_and_first() -> None:
    g = _graph({200: [], 201: [200], 202: [200], 203: [201, 202]})
    order = g.creation_order()
    assert order == [200, 201, 202, 203]


def test_subset_pulls_in_what_it_needs_only() -> None:
    g = _graph({200: [], 201: [200], 202: [200], 203: [201]})
    assert g.creation_order([203]) == [200, 201, 203]


def test_ties_are_broken_by_id_for_a_stable_order() -> None:
    g = _graph({305: [], 301: [], 303: []})
    assert g.creation_order() == [301, 303, 305]


def test_cycle_is_named() -> None:
    g = _graph({101: [102], 102: [103], 103: [101], 104: []})
    assert g.find_cycle() == [101, 102, 103, 101]
    with pytest.raises(ValueError, match=r"dependency cycle: 101 -> 102 -> 103 -> 101"):
        g.creation_order()


def test_acyclic_graph_has_no_cycle() -> None:
    assert _graph({200: [], 201: [200], 202: [200], 203: [201, 202]}).find_cycle() is None


def test_long_chain_needs_no_recursion() -> None:
    edges = {n: [n - 1] for n in range(101, 5101)}
    edges[100] = []
    g = _graph(edges)
    assert g.find_cycle() is None
    assert g.creation_order()[:3] == [100, 101, 102]


def test_mermaid_and_dot_name_every_edge() -> None:
    g = Graph()
    g.add(900, "base")
    g.add(101, "gw")
    g.add(801, "model")
    g.link(101, 900, "clone")
    g.link(801, 101, "depends")
    mermaid = g.to_mermaid()
    assert "g900 -->|clone| g101" in mermaid
    assert "g101 -.->|depends| g801" in mermaid
    dot = g.to_dot()
    assert '"900" -> "101" [label="clone", style=solid];' in dot
    assert '"101" -> "801" [label="depends", style=dashed];' in dot
