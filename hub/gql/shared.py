"""One execution per event for every subscriber running the same operation.

Stock strawberry executes the subscription's selection set for every subscriber on every event
(most of its cost at scale). Here the first subscriber to see an event executes it and stores
the encoded ``payload``; the others find it by (event, document, operation, variables that
shape the selection, role) and only wrap it in their own operation id.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    FieldNode,
    OperationDefinitionNode,
    VariableNode,
    Visitor,
    visit,
)

CACHE_ENTRIES = 8192


class _VariableCollector(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def enter_variable(self, node: VariableNode, *_: Any) -> None:
        self.names.add(node.name.value)


def shaping_variables(document: DocumentNode, operation: OperationDefinitionNode) -> frozenset[str]:
    """Variables that can change how an event is rendered: all but root-field-only ones.

    The root field's arguments choose *which* events arrive (the execution id, the sequence to
    resume from); the event itself is the root value of every nested field.
    """
    everywhere = _VariableCollector()
    visit(document, everywhere)
    nested = _VariableCollector()
    for selection in operation.selection_set.selections:
        if isinstance(selection, FieldNode) and selection.selection_set is not None:
            visit(selection.selection_set, nested)
        elif not isinstance(selection, FieldNode):
            visit(selection, nested)
    root_only = everywhere.names - nested.names
    return frozenset(everywhere.names - root_only)


def variables_key(variables: dict[str, Any] | None, shaping: frozenset[str]) -> bytes:
    if not variables:
        return b""
    kept = {k: v for k, v in variables.items() if k in shaping}
    return orjson.dumps(kept, option=orjson.OPT_SORT_KEYS)


class SharedResults:
    """Encoded ``next`` payloads (UTF-8 JSON, sent as they are), the oldest dropped first once
    ``capacity`` is reached: events are only looked up while their fan-out lasts."""

    def __init__(self, capacity: int = CACHE_ENTRIES) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[Any, ...]) -> bytes | None:
        value = self._entries.get(key)
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def put(self, key: tuple[Any, ...], value: bytes) -> None:
        self._entries[key] = value
        if len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
