"""The dependency graph of guests: clone sources and `dependencies`, LXC and VM alike.

Creation order is topological (a guest after everything it clones from or depends on,
ties broken by id so the order is stable); start order is `boot_order`, then id.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

EdgeKind = Literal["clone", "depends"]


@dataclass
class Graph:
    """Directed graph: `edges[a]` lists (b, kind) meaning a needs b first."""

    nodes: dict[int, str] = field(default_factory=dict)
    edges: dict[int, list[tuple[int, EdgeKind]]] = field(default_factory=dict)

    def add(self, node: int, label: str) -> None:
        self.nodes[node] = label
        self.edges.setdefault(node, [])

    def link(self, node: int, needs: int, kind: EdgeKind) -> None:
        self.edges.setdefault(node, []).append((needs, kind))

    def needs(self, node: int) -> list[int]:
        return [n for n, _ in self.edges.get(node, [])]

    def closure(self, roots: Iterable[int]) -> set[int]:
        """The roots and everything they need, transitively (unknown ids are kept)."""
        seen: set[int] = set()
        stack = list(roots)
        while stack:
            node = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            stack.extend(self.needs(node))
        return seen

    def find_cycle(self) -> list[int] | None:
        """One cycle as [a, b, ..., a], or None. Iterative DFS (no recursion limit)."""
        color: dict[int, int] = {}
        for start in sorted(self.edges):
            if color.get(start):
                continue
            path: list[int] = []
            stack: list[tuple[int, Iterable[int]]] = [(start, iter(sorted(self.needs(start))))]
            color[start] = 1
            path.append(start)
            while stack:
                node, children = stack[-1]
                advanced = False
                for child in children:
                    state = color.get(child, 0)
                    if state == 1:
                        return [*path[path.index(child) :], child]
                    if state == 0 and child in self.edges:
                        color[child] = 1
                        path.append(child)
                        stack.append((child, iter(sorted(self.needs(child)))))
                        advanced = True
                        break
                if not advanced:
                    color[node] = 2
                    path.pop()
                    stack.pop()
        return None

    def creation_order(self, roots: Iterable[int] | None = None) -> list[int]:
        """Topological order of `roots` plus what they need (all nodes when None).

        Raises ValueError naming a cycle if there is one.
        """
        wanted = set(self.nodes) if roots is None else self.closure(roots)
        wanted &= set(self.nodes)
        pending = {n: {m for m in self.needs(n) if m in wanted} for n in wanted}
        users: dict[int, list[int]] = {n: [] for n in wanted}
        for node, needs in pending.items():
            for need in needs:
                users[need].append(node)
        ready = [n for n, needs in pending.items() if not needs]
        heapq.heapify(ready)
        order: list[int] = []
        while ready:
            node = heapq.heappop(ready)
            order.append(node)
            for user in users[node]:
                pending[user].discard(node)
                if not pending[user]:
                    heapq.heappush(ready, user)
        if len(order) != len(wanted):
            cycle = self.find_cycle()
            shown = " -> ".join(map(str, cycle or sorted(set(wanted) - set(order))))
            raise ValueError(f"dependency cycle: {shown}")
        return order

    def to_mermaid(self, roots: Iterable[int] | None = None) -> str:
        shown = sorted(self.closure(roots) if roots is not None else self.nodes)
        lines = ["graph TD"]
        for node in shown:
            label = self.nodes.get(node, "?").replace('"', "'")
            lines.append(f'    g{node}["{node} {label}"]')
        for node in shown:
            for need, kind in self.edges.get(node, []):
                arrow = "-->|clone|" if kind == "clone" else "-.->|depends|"
                lines.append(f"    g{need} {arrow} g{node}")
        return "\n".join(lines) + "\n"

    def to_dot(self, roots: Iterable[int] | None = None) -> str:
        shown = sorted(self.closure(roots) if roots is not None else self.nodes)
        lines = ["digraph phoenix {", "    rankdir=LR;"]
        for node in shown:
            label = f"{node} {self.nodes.get(node, '?')}".replace('"', "'")
            lines.append(f'    "{node}" [label="{label}"];')
        for node in shown:
            for need, kind in self.edges.get(node, []):
                style = "solid" if kind == "clone" else "dashed"
                lines.append(f'    "{need}" -> "{node}" [label="{kind}", style={style}];')
        lines.append("}")
        return "\n".join(lines) + "\n"

    def to_tree(self, roots: Iterable[int] | None = None) -> str:
        """Text tree: each guest, then (indented) what it needs, repeated subtrees shortened."""
        shown = sorted(roots) if roots is not None else sorted(self.nodes)
        lines: list[str] = []
        expanded: set[int] = set()

        def walk(node: int, depth: int, via: str, trail: tuple[int, ...]) -> None:
            label = self.nodes.get(node, "(not in inventory)")
            prefix = "    " * depth + (f"{via} " if via else "")
            if node in trail:
                lines.append(f"{prefix}{node} {label} (cycle)")
                return
            more = node in expanded and bool(self.edges.get(node))
            lines.append(f"{prefix}{node} {label}" + (" (see above)" if more else ""))
            if more:
                return
            expanded.add(node)
            for need, kind in sorted(self.edges.get(node, [])):
                walk(need, depth + 1, "clones" if kind == "clone" else "needs", (*trail, node))

        for root in shown:
            walk(root, 0, "", ())
        return "\n".join(lines) + "\n"
