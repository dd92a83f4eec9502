"""What a client may say about a dataset (Stage1's dataset object), checked before any write."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict, StringConstraints, field_validator
from pydantic.json_schema import SkipJsonSchema

SLUG = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
SYMBOL = r"^[A-Za-z0-9/_.:-]+$"
TIMEFRAME = r"^[1-9][0-9]{0,3}[smhdw]$"
MEASUREMENT = r"^[a-z][a-z0-9_]{0,62}$"


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def omittable(description: str | None = None, **options: Any) -> Any:
    """A field a body may leave out but never send as null (its schema shows no null
    default; a validator refuses the null)."""
    return Field(None, description=description, json_schema_extra=_no_default, **options)


# A UUID written as a string, in models that are otherwise strict.
Id = Annotated[uuid.UUID, Strict(False)]
Slug = Annotated[str, StringConstraints(pattern=SLUG)]
Symbol = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=SYMBOL)]
Timeframe = Annotated[str, StringConstraints(pattern=TIMEFRAME)]
Source = Annotated[str, StringConstraints(max_length=200)]
Measurement = Annotated[str, StringConstraints(pattern=MEASUREMENT)]
# Fields a body may leave out (kept as they are on update) but never set to null.
NOT_NULL = ("dataset_slug", "symbol", "granularity", "source", "metadata")


class DatasetSpec(BaseModel):
    """Create (no ``dataset_id``, or one not stored yet) or update (a stored ``dataset_id``):
    on update, the fields given replace the stored ones and the others stay."""

    # Strict: a JSON body's types are the schema's (no "1" for 1, no true for 1); ids are
    # UUIDs written as strings.
    model_config = ConfigDict(extra="forbid", strict=True)

    dataset_id: Id | SkipJsonSchema[None] = omittable("omitted: a new dataset with a new id")
    dataset_slug: Slug | SkipJsonSchema[None] = omittable(
        "unique; omitted on create: made from symbol and granularity"
    )
    symbol: Symbol | SkipJsonSchema[None] = omittable("required on create")
    granularity: Timeframe | SkipJsonSchema[None] = omittable(
        "a timeframe like 1m, 4h, 1d; required on create"
    )
    source: Source | SkipJsonSchema[None] = omittable()
    ohlcv_measurement: Measurement | None = Field(
        None,
        description="a table of the ts schema (ts, open, high, low, close, volume)",
    )
    indicator_measurement: Measurement | None = None
    metadata: dict[str, Any] | SkipJsonSchema[None] = omittable()

    @field_validator("dataset_id", *NOT_NULL, mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must not be null; leave it out instead")
        return value

    def given(self) -> dict[str, Any]:
        """The fields the client sent, besides the id."""
        return {k: getattr(self, k) for k in self.model_fields_set if k != "dataset_id"}


@dataclass(frozen=True)
class MeasurementStats:
    """Rows of a ``ts`` measurement and its first and last times (epoch microseconds; None
    when it is empty, missing, or has no time column)."""

    rows: int = 0
    first_us: int | None = None
    last_us: int | None = None

    @classmethod
    def kept(cls, dataset: Any, kind: str) -> MeasurementStats:
        """What ``dataset`` (a row) keeps of its ``ohlcv`` or ``indicator`` measurement."""
        return cls(
            int(dataset[f"{kind}_row_count"] or 0),
            dataset[f"{kind}_first_ts"],
            dataset[f"{kind}_last_ts"],
        )


EMPTY = MeasurementStats()
