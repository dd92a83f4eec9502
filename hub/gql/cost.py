"""What a GraphQL operation may cost, known before it runs.

A field that returns many rows says how many in its metadata:
``strawberry.field(..., metadata=rows("limit", 1000))`` (the ``limit`` argument, 1000 when
omitted) or ``rows(fixed=20)``. An operation's cost is the number of rows (objects) it may
return: each object field counts its rows times the rows of the fields around it (an alias
counts again, a nested list multiplies; scalars ride along with their row), so 30 aliases of
``candles(limit: 100000)`` cost 3,000,000. An operation over
the budget (``TRADEHUB_GRAPHQL_MAX_ROWS``) is refused before anything runs, with its cost.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Mapping
from typing import Any

import strawberry
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLObjectType,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
    value_from_ast_untyped,
)
from graphql.execution import ExecutionResult
from strawberry.extensions import SchemaExtension

ROWS_KEY = "tradehub_rows"
COST_KEY = "cost"  # where the limiter leaves an operation's cost, in ``Context.extras``
DEFAULT_MAX_ROWS = 250_000


def rows(
    argument: str | None = None, default: int = 1, *, fixed: int | None = None
) -> dict[str, Any]:
    """Field metadata: the rows a field returns, from an argument (its default when omitted) or
    a fixed count."""
    return {ROWS_KEY: (argument, default if fixed is None else fixed)}


def _argument(field: FieldNode, name: str, variables: Mapping[str, Any]) -> Any:
    for argument in field.arguments or ():
        if argument.name.value == name:
            return value_from_ast_untyped(argument.value, dict(variables))
    return None


_DECLARED: weakref.WeakKeyDictionary[strawberry.Schema, dict[tuple[str, str], Any]] = (
    weakref.WeakKeyDictionary()
)


class CostCounter:
    def __init__(self, schema: strawberry.Schema) -> None:
        self.schema = schema
        # What each (type, field) declares, looked up through strawberry once per schema: the
        # lookup converts names and costs more than the rest of the walk.
        self.declared = _DECLARED.setdefault(schema, {})

    def _declared(self, parent: str, name: str) -> Any:
        key = (parent, name)
        try:
            return self.declared[key]
        except KeyError:
            field = self.schema.get_field_for_type(name, parent)
            found = None if field is None else field.metadata.get(ROWS_KEY)
            self.declared[key] = found
            return found

    def field_rows(self, parent: str, node: FieldNode, variables: Mapping[str, Any]) -> int:
        declared = self._declared(parent, node.name.value)
        if declared is None:
            return 1
        argument, default = declared
        value = default if argument is None else _argument(node, argument, variables)
        if isinstance(value, bool) or not isinstance(value, int):
            value = default
        return max(1, int(value))

    def cost(
        self,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: Mapping[str, Any] | None,
    ) -> int:
        root = self.schema._schema.get_root_type(operation.operation)
        if root is None:
            return 0
        fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        return self._walk(operation.selection_set, root, 1, variables or {}, fragments, 0)

    def _walk(
        self,
        selections: SelectionSetNode,
        parent: GraphQLObjectType,
        multiplier: int,
        variables: Mapping[str, Any],
        fragments: dict[str, FragmentDefinitionNode],
        depth: int,
    ) -> int:
        if depth > 64:  # validation caps depth far lower; this only guards the recursion
            return 0
        total = 0
        for node, on in self._fields(selections, parent, fragments):
            definition = on.fields.get(node.name.value)
            if definition is None:  # __typename and introspection
                continue
            own = multiplier * self.field_rows(on.name, node, variables)
            inner = get_named_type(definition.type)
            if node.selection_set is not None or own != multiplier:
                total += own  # an object, or rows: a scalar field adds nothing of its own
            if node.selection_set is not None and isinstance(inner, GraphQLObjectType):
                total += self._walk(node.selection_set, inner, own, variables, fragments, depth + 1)
        return total

    def _fields(
        self,
        selections: SelectionSetNode,
        parent: GraphQLObjectType,
        fragments: dict[str, FragmentDefinitionNode],
    ) -> Iterator[tuple[FieldNode, GraphQLObjectType]]:
        for node in selections.selections:
            if isinstance(node, FieldNode):
                yield node, parent
            elif isinstance(node, InlineFragmentNode):
                yield from self._fields(node.selection_set, self._on(node, parent), fragments)
            elif isinstance(node, FragmentSpreadNode):
                fragment = fragments.get(node.name.value)
                if fragment is not None:
                    yield from self._fields(
                        fragment.selection_set, self._on(fragment, parent), fragments
                    )

    def _on(
        self, node: InlineFragmentNode | FragmentDefinitionNode, parent: GraphQLObjectType
    ) -> GraphQLObjectType:
        condition = node.type_condition
        if condition is None:
            return parent
        found = self.schema._schema.get_type(condition.name.value)
        return found if isinstance(found, GraphQLObjectType) else parent


class CostLimiter(SchemaExtension):
    """Refuse an operation whose cost is over the budget, before it runs."""

    max_rows = DEFAULT_MAX_ROWS

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        schema = context.schema
        if document is not None and not context.result:
            operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
            if context.operation_name is not None:
                operations = [
                    o for o in operations if o.name and o.name.value == context.operation_name
                ]
            if len(operations) == 1:
                cost = CostCounter(schema).cost(document, operations[0], context.variables)
                extras = getattr(context.context, "extras", None)
                if isinstance(extras, dict):
                    extras[COST_KEY] = cost
                if cost > self.max_rows:
                    context.result = ExecutionResult(
                        data=None, errors=[too_expensive(cost, self.max_rows)]
                    )
        yield


def too_expensive(cost: int, budget: int) -> GraphQLError:
    return GraphQLError(
        f"this operation may return {cost:,} rows, more than the {budget:,} one request may ask "
        "for: lower the limits or split it into several requests",
        extensions={"code": "QUERY_TOO_EXPENSIVE", "cost": cost, "budget": budget},
    )


def limiter(max_rows: int) -> type[CostLimiter]:
    """A CostLimiter class with this budget (strawberry builds one extension per operation)."""
    return type("CostLimiter", (CostLimiter,), {"max_rows": max_rows})
