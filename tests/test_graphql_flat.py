"""hub/gql/flat.py: lists of flat objects completed in one pass answer exactly what graphql-core's
own completion answers (data, errors, paths), and skip graphql-core's per-field work when they
can. The oracle is the same schema executed by strawberry's default executor."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

import pytest
import strawberry
from strawberry.permission import BasePermission

from hub.gql.flat import SLICE, FlatListExecutor
from hub.gql.paced import paced

T0 = datetime(2026, 1, 2, 3, 4, 5, 678_901, tzinfo=UTC)


@strawberry.enum
class Side(enum.Enum):
    BUY = "buy"
    SELL = "sell"


class Never(BasePermission):
    message = "not for you"

    def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
        return False


@strawberry.interface
class Named:
    name: str


@strawberry.type
class Thing(Named):
    size: int


@strawberry.type
class Point:
    sequence: int
    timestamp: datetime
    balance: float
    side: Side
    note: str | None
    tags: list[str]
    secret: str | None = strawberry.field(default=None, permission_classes=[Never])

    @strawberry.field
    def doubled(self) -> float:
        return self.balance * 2

    @strawberry.field
    def scaled(self, by: float = 1.0) -> float:
        return self.balance * by


@strawberry.type
class Loose:
    """Attributes that may break the schema's promises (to reach graphql-core's errors)."""

    count: int
    label: str | None


def _points(n: int) -> list[Point]:
    return [
        Point(
            sequence=i,
            timestamp=T0.replace(second=i % 60),
            balance=100.0 + i / 8,
            side=Side.BUY if i % 2 else Side.SELL,
            note=None if i % 3 else f"n{i}",
            tags=[str(i)],
        )
        for i in range(n)
    ]


@strawberry.type
class Parent:
    """A long list beside fields that fail: graphql-core's errors come in its own order."""

    items: list[Loose]

    @strawberry.field
    def boom(self) -> str | None:
        raise ValueError("boom")

    @strawberry.field
    def strict(self) -> str:
        raise ValueError("strict boom")


def _loose(n: int, null_at: int) -> list[Loose]:
    """``n`` rows whose count is null at ``null_at`` (a non-null field: graphql-core's error)."""
    return [Loose(count=None if i == null_at else i, label=None) for i in range(n)]  # type: ignore[arg-type]


async def _point(p: Point | None) -> Point | None:
    return p


@strawberry.type
class Query:
    @strawberry.field
    def points(self, n: int = 5) -> list[Point]:
        return _points(n)

    @strawberry.field
    def paced_points(self, n: int = 5) -> list[Point]:
        return paced(_points(n), lambda p: p)

    @strawberry.field
    def maybe_points(self) -> list[Point | None]:
        return [_points(2)[0], None, _points(2)[1]]

    @strawberry.field
    def strict_points(self) -> list[Point]:
        return [_points(2)[0], None]  # type: ignore[list-item]

    @strawberry.field
    def loose(self, bad: int = -1, null_at: int = -1) -> list[Loose]:
        return [
            Loose(
                count="x" if i == bad else (None if i == null_at else i),  # type: ignore[arg-type]
                label=str(i),
            )
            for i in range(4)
        ]

    @strawberry.field
    def parent(self, n: int = 600, null_at: int = -1) -> Parent:
        return Parent(items=_loose(n, null_at))

    @strawberry.field
    def paced_loose(self, n: int = 3000, null_at: int = -1) -> list[Loose]:
        return paced(_loose(n, null_at), lambda row: row)

    @strawberry.field
    def awaited(self) -> list[Point | None]:
        return [_point(_points(1)[0]), _point(None)]  # type: ignore[list-item]

    @strawberry.field
    def things(self) -> list[Named]:
        return [Thing(name="a", size=1), Thing(name="b", size=2)]

    @strawberry.field
    def ints(self) -> list[int]:
        return [1, 2, 3]


plain = strawberry.Schema(query=Query)


class Counting(FlatListExecutor):
    fields = 0

    def execute_field(self, *args: Any, **kwargs: Any) -> Any:
        type(self).fields += 1
        return super().execute_field(*args, **kwargs)


flat = strawberry.Schema(query=Query, execution_context_class=Counting)


async def both(query: str, variables: dict[str, Any] | None = None) -> tuple[Any, int]:
    """The answer of both executors (asserted equal, errors included) and how many fields the
    flat one resolved through graphql-core."""
    want = await plain.execute(query, variable_values=variables)
    Counting.fields = 0
    got = await flat.execute(query, variable_values=variables)
    assert got.data == want.data
    assert [e.formatted for e in got.errors or []] == [e.formatted for e in want.errors or []]
    return got, Counting.fields


async def test_a_flat_list_is_completed_in_one_pass() -> None:
    got, fields = await both("{ points(n: 300) { sequence timestamp balance side note } }")
    assert fields == 1  # only `points` itself
    assert got.data["points"][4] == {
        "sequence": 4,
        "timestamp": "2026-01-02T03:04:04.678901+00:00",
        "balance": 100.5,
        "side": "SELL",
        "note": None,
    }


@pytest.mark.parametrize("n", [0, 1, SLICE, SLICE + 1, 3 * SLICE + 7])
async def test_long_and_paced_lists(n: int) -> None:
    for field in ("points", "pacedPoints"):
        got, fields = await both(f"{{ {field}(n: {n}) {{ sequence balance }} }}")
        assert len(got.data[field]) == n and fields == 1


async def test_aliases_fragments_typename_and_directives() -> None:
    query = """
      query ($on: Boolean!, $off: Boolean!) {
        points(n: 7) {
          seq: sequence
          __typename
          kind: __typename
          ...Money
          ... on Point { side @include(if: $on) note @skip(if: $on) }
          timestamp @include(if: $off)
          sequence
          again: sequence
        }
      }
      fragment Money on Point { balance worth: balance }
    """
    for on, off in [(True, False), (False, True)]:
        got, fields = await both(query, {"on": on, "off": off})
        assert fields == 1
        first = got.data["points"][0]
        assert first["__typename"] == first["kind"] == "Point"
        assert list(first)[:3] == ["seq", "__typename", "kind"]


@pytest.mark.parametrize(
    "selection",
    [
        "sequence doubled",  # a resolver of its own
        "sequence scaled(by: 3)",  # arguments
        "sequence tags",  # a list field
        "sequence secret",  # a permission: an error on every item
    ],
)
async def test_fields_that_are_not_plain_attributes_take_graphql_cores_way(
    selection: str,
) -> None:
    _, fields = await both(f"{{ points(n: 4) {{ {selection} }} }}")
    assert fields > 4


@pytest.mark.parametrize(
    "query",
    [
        "{ maybePoints { sequence } }",  # a null item where nulls are allowed
        "{ strictPoints { sequence } }",  # a null item where they are not
        "{ loose(nullAt: 2) { count label } }",  # a null for a non-null field
        "{ loose(bad: 1) { count label } }",  # a value its scalar refuses
        "{ pacedLoose(nullAt: 2999) { count } }",  # a paced list's late null
        "{ things { name __typename ... on Thing { size } } }",  # an interface's list
        "{ ints }",
        "{ awaited { __typename } }",  # awaitable items, though no attribute is read
        "{ awaited { sequence } }",
        "{ parent(nullAt: 599) { items { count } boom } }",  # a long list's late null...
        "{ parent(nullAt: 599) { items { count } strict } }",  # ...beside failing siblings
        "{ parent(nullAt: 599) { boom items { count } } }",
    ],
)
async def test_what_graphql_core_would_refuse_or_null_is_answered_as_it_does(query: str) -> None:
    got, _ = await both(query)
    assert got.data is not None or got.errors
