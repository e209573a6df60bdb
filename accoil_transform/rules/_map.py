"""Mapping: the fields of a track record and the traits of an identify.

``timestamp`` is ``event_time`` in UTC with milliseconds and ``Z``. Additional
properties are looked up in ``event_properties``, then ``user_properties``, unless
qualified; their values keep their JSON types, and absent ones are left out.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec
import orjson
import polars as pl

from .._json import compact_json, json_object_from_pairs, json_value_at
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


def identify_traits(
    n: int,
    user_properties: pl.Series | None,
    properties: list[pl.Series | None],
    config: TransformConfig,
) -> pl.Series:
    """The ``traits`` of ``n`` identify records (docs/rules.md §5).

    ``user_properties`` is each user's latest ``user_properties`` object (JSON text; null
    for none), ``properties`` each additional property's latest value (JSON text; null
    where never found), in the order of ``config.property_refs``. Traits are the whole
    object, narrowed by ``user_traits`` (keep only, in that order) and
    ``exclude_user_traits`` (drop), then each found property, which replaces a trait of
    the same name. Values keep their exact JSON text.
    """
    objects = user_properties.to_list() if user_properties is not None else [None] * n
    keep, drop = config.user_traits, set(config.exclude_user_traits)
    refs = config.property_refs
    if keep is None and not drop and not refs:  # the whole object, as it is
        return compact_json(pl.Series("traits", objects, pl.String).fill_null("{}"))
    values = [p.to_list() if p is not None else [None] * n for p in properties]
    traits = []
    for i, text in enumerate(objects):
        members: dict[str, str] = _members(text)
        if keep is not None:
            members = {name: members[name] for name in keep if name in members}
        for name in drop:
            members.pop(name, None)
        for ref, found in zip(refs, values, strict=True):
            value = found[i]
            if value is not None:
                members[ref.name] = value
        traits.append(
            "{" + ",".join(f"{orjson.dumps(k).decode()}:{v}" for k, v in members.items()) + "}"
        )
    return compact_json(pl.Series("traits", traits, pl.String))


_MEMBERS = msgspec.json.Decoder(dict[str, msgspec.Raw])


def _members(text: str | None) -> dict[str, str]:
    """The members of a JSON object, each value as its exact text (``{}`` if not one)."""
    if not text:
        return {}
    try:
        return {k: bytes(v).decode() for k, v in _MEMBERS.decode(text).items()}
    except msgspec.DecodeError:
        return {}


def event_name(config: TransformConfig) -> pl.Expr:
    """The track ``event``: ``event_type``, renamed where the config says so."""
    if config.event_rename:
        return pl.col("event_type").replace(dict(config.event_rename))
    return pl.col("event_type")
