"""BlockTree: the same result to the last bit however the blocks are split into shards and merged."""

from __future__ import annotations

import numpy as np
import pytest

from convscope.errors import ConvscopeError
from convscope.stats.tree import BlockTree


def _add(a: np.float32, b: np.float32) -> np.float32:
    return np.float32(a + b)  # float32 sums: the order changes the last bits


def _reference(values: list[np.float32]) -> np.float32:
    """Pairwise sum by the recipe: perfect binary trees over the binary expansion of the count, left to right."""

    def perfect(lo: int, size: int) -> np.float32:
        if size == 1:
            return values[lo]
        half = size // 2
        return _add(perfect(lo, half), perfect(lo + half, half))

    total, start = None, 0
    for bit in reversed(range(len(values).bit_length())):
        if len(values) >> bit & 1:
            part = perfect(start, 1 << bit)
            total = part if total is None else _add(total, part)
            start += 1 << bit
    return total


@pytest.mark.parametrize("blocks", [1, 2, 7, 64, 101])
def test_any_split_gives_the_recipe_bit_for_bit(blocks: int) -> None:
    rng = np.random.default_rng(blocks)
    values = [np.float32(v) for v in rng.normal(size=blocks) * 10 ** rng.uniform(-2, 2, size=blocks)]  # sums round differently
    expected = _reference(values)
    sequential = np.float32(0)
    for v in values:
        sequential = _add(sequential, v)
    for shards in (1, 2, 3, 5):
        cuts = sorted(rng.choice(np.arange(1, blocks), size=min(shards - 1, blocks - 1), replace=False).tolist()) if blocks > 1 else []
        bounds = [0, *cuts, blocks]
        trees = []
        for lo, hi in zip(bounds, bounds[1:]):
            tree = BlockTree(_add)
            for block in range(lo, hi):
                tree.add(block, values[block])
            trees.append(tree)
        order = rng.permutation(len(trees))  # merge order does not matter either
        merged = trees[order[0]]
        for i in order[1:]:
            merged.merge(trees[i])
        assert merged.result().tobytes() == expected.tobytes()
        assert len(merged.nodes) == bin(blocks).count("1")
    if blocks == 101:  # the check has teeth: plain left-to-right addition rounds differently
        assert sequential.tobytes() != expected.tobytes()


def test_memory_is_one_node_per_level_and_overlaps_are_refused() -> None:
    tree = BlockTree(lambda a, b: a + b)
    for block in range(1000):
        tree.add(block, 1)
        assert len(tree.nodes) <= 10
    assert tree.result() == 1000
    with pytest.raises(ConvscopeError, match="added twice"):
        tree.add(517, 1)
    empty = BlockTree(lambda a, b: a + b)
    assert empty.result() is None
