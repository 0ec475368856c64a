"""Where a rebuild's rows sit in the org tree (组织树索引), so that an org move touches its subtree.

A rebuild keeps every row in memory, and an org moved or merged re-files the rows and credits
under it. Found by walking every row, any move cost 0.35-0.7 s at 1.2 million rows (more at the
4 million a rebuild keeps before it spills), and a replay of years holds thousands of moves,
nearly all of branches and other small units. Through the index a district's subtree moves in
~1 ms at that size (``make bench``). A province's (a thirty-first of the rows) still takes about
what the walk did: each row re-filed is a dozen lookups in dicts of a million entries, each a
cache miss, where the walk reads rows in memory order.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence


def _parent(path: str) -> str:
    # "/r/p3" → "/r" → "": every path hangs off the one unnamed root.
    return path[:path.rfind("/")] if "/" in path else ""


class OrgTreeIndex:
    """What is filed at each org path, by kind (a table's row keys, owners with credits there),
    and the tree of those paths. ``under(scope)`` answers as ``auth.path_covers`` does: the scope
    itself and everything below it (``"/"`` covers every path). A path left with nothing filed at
    or below it is unlinked at once, so that a subtree moved back and forth is walked no deeper
    than it is."""

    def __init__(self) -> None:
        self._at: dict[str, dict[str, set[Hashable]]] = {}
        self._children: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self._at)

    def add(self, kind: str, path: str, key: Hashable) -> None:
        filed = self._at.get(path)
        if filed is None:
            filed = self._at[path] = {}
            self._link(path)
        keys = filed.get(kind)
        if keys is None:
            filed[kind] = {key}
        else:
            keys.add(key)

    def remove(self, kind: str, path: str, key: Hashable) -> None:
        filed = self._at.get(path)
        keys = None if filed is None else filed.get(kind)
        if filed is None or keys is None:
            return
        keys.discard(key)
        if not keys:
            del filed[kind]
            self._unlink_if_empty(path)

    def take(self, kind: str, paths: list[str]) -> set[Hashable]:
        """The keys of ``kind`` filed at any of ``paths``, unfiled from there."""
        taken: set[Hashable] = set()
        for path in paths:
            keys = self._at.get(path, {}).pop(kind, None)
            if keys:
                taken |= keys
                self._unlink_if_empty(path)
        return taken

    def under(self, scope: str) -> list[str]:
        """Every path with something filed, at or below ``scope``."""
        found: list[str] = []
        stack = [scope.rstrip("/")]
        at, children = self._at, self._children
        while stack:
            path = stack.pop()
            if path in at:
                found.append(path)
            below = children.get(path)
            if below:
                stack.extend(below)
        return found

    def keys(self, kinds: Sequence[str], paths: list[str]) -> dict[str, list[Hashable]]:
        """The keys of each of ``kinds`` filed at any of ``paths`` (copies: filing them anew is safe)."""
        found: dict[str, list[Hashable]] = {kind: [] for kind in kinds}
        for path in paths:
            for kind, keys in self._at.get(path, {}).items():
                if kind in found:
                    found[kind].extend(keys)
        return found

    def clear(self) -> None:
        self._at.clear()
        self._children.clear()

    def _link(self, path: str) -> None:
        while path:
            parent = _parent(path)
            siblings = self._children.get(parent)
            if siblings is None:
                self._children[parent] = {path}
            elif path in siblings:
                return  # the rest of the chain up is linked already
            else:
                siblings.add(path)
            path = parent

    def _unlink_if_empty(self, path: str) -> None:
        while path and not self._at.get(path) and not self._children.get(path):
            self._at.pop(path, None)
            self._children.pop(path, None)
            parent = _parent(path)
            siblings = self._children.get(parent)
            if siblings is not None:
                siblings.discard(path)
            path = parent
