"""One fixed summation tree over numbered blocks: floating statistics that do not depend on sharding.

Floating-point addition is not associative, so ``((a + b) + c) + d`` and ``(a + b) + (c + d)``
may differ in the last bits: a statistic folded image after image on one process and the
same statistic merged from two processes' halves would not agree exactly. Here every
partial (a batch's mean and spread, its class sums) enters as *block* ``i`` (the batch's
number in the whole data set) and partials are combined only along one tree that depends
on the block numbers alone: node ``(level, index)`` covers blocks
``[index * 2**level, (index + 1) * 2**level)`` and is made of its two children, left first,
as soon as both exist. A process that saw blocks ``[a, b)`` holds the maximal such nodes
inside ``[a, b)``; joining the nodes of every process finishes the same tree that one
process would have built, so the result is the same to the last bit whatever the number of
processes and wherever the shards end (as long as each block, e.g. each batch, lies in one
shard). The roots left at the end (one per set bit of the block count) are folded left to
right. It is also pairwise summation: rounding error grows with ``log(blocks)``, not with
``blocks``. A process holds at most one node per level: ``log2(blocks) + 1`` partials.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from convscope.errors import ConvscopeError

P = TypeVar("P")

#: ``(level, index)`` of a node: it covers blocks ``[index << level, (index + 1) << level)``.
Node = tuple[int, int]


class BlockTree(Generic[P]):
    """Partials of numbered blocks, combined along the fixed binary tree over block numbers.

    Args:
        combine: ``(left, right) -> partial`` of the blocks of both, ``left`` covering the
            lower block numbers; it must not change its arguments.

    Example:
        >>> tree = BlockTree(lambda a, b: f"({a}+{b})")
        >>> for block in range(5):
        ...     tree.add(block, str(block))
        >>> tree.result()
        '(((0+1)+(2+3))+4)'
        >>> left, right = BlockTree(tree.combine), BlockTree(tree.combine)
        >>> for block in range(5):
        ...     (left if block < 3 else right).add(block, str(block))
        >>> left.merge(right)
        >>> left.result()
        '(((0+1)+(2+3))+4)'
    """

    def __init__(self, combine: Callable[[P, P], P]) -> None:
        self.combine = combine
        self.nodes: dict[Node, P] = {}

    def add(self, block: int, partial: P) -> None:
        """Add the partial of block ``block`` (each block at most once).

        Raises:
            ConvscopeError: the block is already in the tree.
        """
        if block < 0:
            raise ConvscopeError(f"block numbers start at 0, got {block}")
        self._insert((0, block), partial)

    def merge(self, other: BlockTree[P]) -> None:
        """Absorb the nodes of ``other`` (blocks disjoint from this tree's; ``other`` unchanged)."""
        for node, partial in other.nodes.items():
            self._insert(node, partial)

    def result(self) -> P | None:
        """The partial of every block added: the roots folded from the lowest block up; ``None`` if empty."""
        roots = sorted(self.nodes.items(), key=lambda item: item[0][1] << item[0][0])
        total = None
        for _, partial in roots:
            total = partial if total is None else self.combine(total, partial)
        return total

    def items(self) -> Iterator[tuple[Node, P]]:
        """``((level, index), partial)`` of every node held, lowest block first (for saving)."""
        return iter(sorted(self.nodes.items(), key=lambda item: item[0][1] << item[0][0]))

    def _insert(self, node: Node, partial: P) -> None:
        level, index = node
        for held_level, held_index in self.nodes:
            if _overlap((held_level, held_index), node):
                raise ConvscopeError(
                    f"blocks {index << level}..{((index + 1) << level) - 1} were added twice",
                    hint="merge statistics of disjoint images only (each batch in one shard)",
                )
        while (level, index ^ 1) in self.nodes:
            sibling = self.nodes.pop((level, index ^ 1))
            partial = self.combine(sibling, partial) if index & 1 else self.combine(partial, sibling)
            level, index = level + 1, index >> 1
        self.nodes[(level, index)] = partial


def _overlap(a: Node, b: Node) -> bool:
    """Whether the block ranges of two nodes intersect."""
    start_a, stop_a = a[1] << a[0], (a[1] + 1) << a[0]
    start_b, stop_b = b[1] << b[0], (b[1] + 1) << b[0]
    return start_a < stop_b and start_b < stop_a
