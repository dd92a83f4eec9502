"""The GraphQL contract as files: the exported schema and the operations clients send."""

from __future__ import annotations

from pathlib import Path

from graphql import build_schema as build_sdl
from graphql import parse, validate

from hub.gql.schema import build_schema

ROOT = Path(__file__).resolve().parent.parent


def test_schema_file_matches_the_code() -> None:
    exported = build_schema().as_str() + "\n"
    on_disk = (ROOT / "graphql" / "schema.graphql").read_text()
    assert on_disk == exported, (
        "graphql/schema.graphql is stale: run `tradehub schema -o graphql/schema.graphql`"
    )


def test_every_operation_is_valid_against_the_schema() -> None:
    schema = build_sdl((ROOT / "graphql" / "schema.graphql").read_text())
    files = sorted((ROOT / "graphql" / "operations").glob("*.graphql"))
    assert files
    for path in files:
        errors = validate(schema, parse(path.read_text()))
        assert not errors, f"{path.name}: {errors}"


def test_the_contract_subscriptions_exist() -> None:
    sdl = build_schema().as_str()
    for signature in ("jobProgress(jobId: ID!)", "ticks(symbol: String!"):
        assert signature in sdl


def test_no_python_in_the_contract_folder() -> None:
    assert not list((ROOT / "graphql").rglob("*.py"))
