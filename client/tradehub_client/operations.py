"""The GraphQL documents of ``graphql/operations/`` (shipped inside the package), by name."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

HERE = Path(__file__).resolve().parent / "documents"  # a link to graphql/operations/
_HEADER = re.compile(r"^\s*(query|mutation|subscription)\s+([A-Za-z_][A-Za-z0-9_]*)", re.MULTILINE)


@dataclass(frozen=True)
class Operation:
    name: str
    kind: str  # query, mutation or subscription
    document: str


class UnknownOperation(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def parse(document: str) -> Operation:
    found = _HEADER.search(document)
    if found is None:
        raise ValueError(
            "a GraphQL document must start with a named query, mutation or subscription"
        )
    return Operation(found.group(2), found.group(1), document)


@cache
def load(folder: Path = HERE) -> dict[str, Operation]:
    """Every ``*.graphql`` document in ``folder`` by its operation name."""
    operations = {}
    for path in sorted(folder.glob("*.graphql")):
        operation = parse(path.read_text(encoding="utf-8"))
        operations[operation.name] = operation
    return operations


def get(name: str, folder: Path = HERE) -> Operation:
    operations = load(folder)
    try:
        return operations[name]
    except KeyError:
        raise UnknownOperation(
            f"no GraphQL operation named {name!r}; expected one of {', '.join(sorted(operations))}"
        ) from None
