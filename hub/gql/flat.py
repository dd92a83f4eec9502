"""Lists of flat objects completed in one pass: an equity curve, candles, trades.

graphql-core completes every field of every list item on its own: it builds a resolve info,
calls the resolver, checks nullability and coerces the value, about 7 µs a field. A 2,000-point
curve of three fields is then 40 ms of the hub's CPU, most of an execution page's first query
(and more when a browser on the same machine is busy starting).

When every field the query selects on a list's item type is a plain attribute of a leaf type
(strawberry's "basic" fields: no resolver, no arguments, no extension) or ``__typename``,
:class:`FlatListExecutor` reads the attributes and coerces them directly, with the response
keys, fragments and ``@skip``/``@include`` that graphql-core's own field collection gives. Any
item that is not simple (a null where the schema says non-null, a value its scalar refuses, an
awaitable) sends the whole list back through graphql-core's own completion, in the shape the
resolver gave it (a list at once, a paced iterator still paced), so errors, their order, paths
and partial nulls stay exactly graphql-core's. A list a resolver paced (:mod:`hub.gql.paced`)
is completed a slice at a time, giving the event loop back between slices as before; a plain
list is completed at once, as graphql-core does.
"""

from __future__ import annotations

import asyncio
import operator
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from graphql import (
    GraphQLField,
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    Undefined,
    is_leaf_type,
)
from graphql.pyutils import Path, is_awaitable, is_iterable
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter

from hub.gql.paced import SLICE as PACED_SLICE

SLICE = 500  # paced items completed between turns of the event loop (about a millisecond)


@dataclass(frozen=True)
class _Column:
    key: str  # the response key (the alias, if any)
    read: Callable[[Any], Any] | None  # None for __typename
    coerce: Callable[[Any], Any] | None
    non_null: bool
    typename: str | None = None


@dataclass(frozen=True)
class _Plan:
    columns: tuple[_Column, ...]


class FlatListExecutor(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's executor, with :mod:`this module <hub.gql.flat>`'s one-pass lists."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plans: dict[tuple[int, int], tuple[Any, _Plan | None]] = {}

    def build_per_event_executor(self, payload: Any) -> Any:
        # A subscription's events each collect their fields anew: plans kept per event, not
        # accumulated on the executor the subscription shares.
        executor = super().build_per_event_executor(payload)
        if isinstance(executor, FlatListExecutor):
            executor._plans = {}
        return executor

    def complete_list_value(
        self,
        return_type: GraphQLList[GraphQLOutputType],
        field_details_list: Any,
        info: GraphQLResolveInfo[Any],
        path: Path,
        result: AsyncIterable[Any] | Iterable[Any],
        position_context: Any,
    ) -> Any:
        plan = self._plan(return_type.of_type, field_details_list, path)
        if plan is not None:
            if self.is_async_iterable(result):
                return self._complete_async(
                    plan, return_type, field_details_list, info, path, result, position_context
                )
            if is_iterable(result):
                items = list(result)
                done = _complete(plan, items)
                if done is not None:
                    return done
                result = items
        return super().complete_list_value(
            return_type, field_details_list, info, path, result, position_context
        )

    async def _complete_async(
        self,
        plan: _Plan,
        return_type: GraphQLList[GraphQLOutputType],
        field_details_list: Any,
        info: GraphQLResolveInfo[Any],
        path: Path,
        result: AsyncIterable[Any],
        position_context: Any,
    ) -> Any:
        # The iterator (hub.gql.paced) gives the loop back between its slices; so do these.
        items = [item async for item in self.cancellable_iterable(result)]
        completed: list[dict[str, Any]] = []
        for start in range(0, len(items), SLICE):
            if start:
                await asyncio.sleep(0)
            done = _complete(plan, items[start : start + SLICE])
            if done is None:
                break
            completed.extend(done)
        else:
            return completed
        # graphql-core's own completion, of the same items paced the same way.
        slow = super().complete_list_value(
            return_type, field_details_list, info, path, _replay(items), position_context
        )
        return await slow if self.is_awaitable(slow) else slow

    def _plan(
        self, item_type: GraphQLOutputType, field_details_list: Any, path: Path
    ) -> _Plan | None:
        key = (id(item_type), id(field_details_list))
        cached = self._plans.get(key)
        if cached is not None:
            return cached[1]
        plan = self._make_plan(item_type, field_details_list, path)
        # Kept with the list it is keyed on, so that the id cannot be reused meanwhile.
        self._plans[key] = (field_details_list, plan)
        return plan

    def _make_plan(
        self, item_type: GraphQLOutputType, field_details_list: Any, path: Path
    ) -> _Plan | None:
        if isinstance(item_type, GraphQLNonNull):
            item_type = item_type.of_type
        if not isinstance(item_type, GraphQLObjectType) or item_type.is_type_of is not None:
            return None
        if self.get_stream_usage(field_details_list, path):
            return None
        grouped, defers, forbidden = self.collect_subfields(item_type, field_details_list)
        if defers or forbidden:
            return None
        columns = []
        for key, details in grouped.items():
            if any(d.defer_usage is not None for d in details):
                return None
            node = details[0].node
            name = node.name.value
            if name == "__typename":
                columns.append(_Column(key, None, None, True, item_type.name))
                continue
            field = item_type.fields.get(name)
            if field is None or field.args or node.arguments or node.selection_set:
                return None
            resolve = field.resolve
            if not _basic(field, resolve):
                return None  # a resolver, a permission or an extension of its own
            manager = self.middleware_manager
            if manager is not None and manager.get_field_resolver(resolve) is not resolve:
                return None  # an extension's resolve hook runs on every field
            field_type = field.type
            non_null = isinstance(field_type, GraphQLNonNull)
            if non_null:
                field_type = field_type.of_type
            if not is_leaf_type(field_type):
                return None
            leaf: GraphQLLeafType = field_type
            columns.append(
                _Column(key, _reader(field, resolve), leaf.coerce_output_value, non_null)
            )
        return _Plan(tuple(columns))


def _basic(field: GraphQLField, resolve: Callable[..., Any] | None) -> bool:
    """Whether strawberry resolves ``field`` by reading an attribute and nothing else: its
    definition is "basic" (no resolver, no extension such as a permission) and strawberry gave
    it the plain reader it makes for those (not one with exception handlers around it)."""
    definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    return (
        resolve is not None
        and getattr(definition, "is_basic_field", False)
        and getattr(resolve, "_is_default", False)
        and getattr(resolve, "__name__", "") == "_get_basic_result"
    )


def _reader(field: GraphQLField, resolve: Callable[..., Any]) -> Callable[[Any], Any]:
    """What strawberry's basic resolver reads: ``getattr(item, python_name)`` under the default
    config, else the resolver itself."""
    definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if getattr(definition, "default_resolver", None) is getattr:
        return operator.attrgetter(definition.python_name)  # type: ignore[union-attr]
    return lambda item: resolve(item, None)


def _complete(plan: _Plan, items: list[Any]) -> list[dict[str, Any]] | None:
    """The completed items, or None when one of them needs graphql-core's own completion."""
    out: list[dict[str, Any]] = []
    append = out.append
    columns = plan.columns
    try:
        for item in items:
            if item is None or isinstance(item, Exception) or is_awaitable(item):
                return None  # a null, raised or awaited item: graphql-core's own completion
            row: dict[str, Any] = {}
            for column in columns:
                if column.read is None:
                    row[column.key] = column.typename
                    continue
                value = column.read(item)
                if value is None or value is Undefined:
                    if column.non_null:
                        return None
                    row[column.key] = None
                    continue
                coerced = column.coerce(value)  # type: ignore[misc]
                if coerced is None or coerced is Undefined:
                    return None
                row[column.key] = coerced
            append(row)
    except Exception:  # noqa: BLE001 (a refused value, say: graphql-core's own completion reports it)
        return None
    return out


async def _replay(items: list[Any]) -> AsyncIterator[Any]:
    """``items`` again as :func:`hub.gql.paced.paced` hands them out: the loop is given back
    between slices."""
    for start in range(0, len(items), PACED_SLICE):
        if start:
            await asyncio.sleep(0)
        for item in items[start : start + PACED_SLICE]:
            yield item
