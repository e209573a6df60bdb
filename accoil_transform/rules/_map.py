"""Mapping: the fields of a track record and the traits of an identify.

``timestamp`` is ``event_time`` in UTC with milliseconds and ``Z``. Additional
properties are looked up in ``event_properties``, then ``user_properties``, unless
qualified; their values keep their JSON types, and absent ones are left out.
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from .._json import json_object_from_pairs, json_value_at
from ..config import FieldRef, TransformConfig

#: ``2026-11-24T09:59:58.880Z``
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S%.3fZ"


def timestamp(column: str = "event_time") -> pl.Expr:
    """A UTC datetime column as the ``timestamp`` of a call."""
    return pl.col(column).dt.strftime(TIMESTAMP_FORMAT)


def property_value(ref: FieldRef) -> pl.Expr:
    """The JSON text of a property: ``event_properties`` first, then ``user_properties``."""
    if ref.scope == "column":
        raise ValueError(f"{ref.name!r}: a property must come from a JSON column")
    if ref.scope is not None:
        return json_value_at(pl.col(ref.scope), ref.name)
    return pl.coalesce(
        json_value_at(pl.col("event_properties"), ref.name),
        json_value_at(pl.col("user_properties"), ref.name),
    )


def properties_object(refs: Iterable[FieldRef]) -> pl.Expr:
    """The ``properties`` object of a track record; absent properties are left out."""
    return json_object_from_pairs([(ref.name, property_value(ref)) for ref in refs])


def user_traits_object(config: TransformConfig) -> pl.Expr:
    """Identify traits: the configured user traits, then the additional properties."""
    pairs = [(name, json_value_at(pl.col("user_properties"), name)) for name in config.user_traits]
    pairs += [(ref.name, property_value(ref)) for ref in config.property_refs]
    # A later pair with the same key wins, as in a dict literal.
    merged = dict(pairs)
    return json_object_from_pairs(list(merged.items()))


def event_name(config: TransformConfig) -> pl.Expr:
    """The track ``event``: ``event_type``, renamed where the config says so."""
    if config.event_rename:
        return pl.col("event_type").replace(dict(config.event_rename))
    return pl.col("event_type")
