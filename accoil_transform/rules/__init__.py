"""The rules: selection, mapping, groups, and the report of where every row went.

:class:`Transformer` applies them batch by batch with bounded state; :func:`apply_rules`
runs it over canonical frames. ``docs/rules.md`` states each rule; the module that holds
it is named after it: ``_select`` (selection), ``_map`` (mapping), ``_groups`` (groups),
``_transformer`` (identify and group records, the state between batches).
"""

from ._groups import GroupResolver, primary_groups
from ._report import DROP_REASON_WORDS, DROP_REASONS, TransformReport
from ._select import PLACEHOLDER_USER_IDS, dedup_key, user_id
from ._transformer import (
    GROUP_FACTS_SCHEMA,
    GROUPS_SCHEMA,
    IDENTIFIES_SCHEMA,
    QUARANTINE_SCHEMA,
    TRACKS_SCHEMA,
    Transformer,
    TransformResult,
    apply_rules,
)

__all__ = [
    "DROP_REASONS",
    "DROP_REASON_WORDS",
    "GROUPS_SCHEMA",
    "GROUP_FACTS_SCHEMA",
    "IDENTIFIES_SCHEMA",
    "PLACEHOLDER_USER_IDS",
    "QUARANTINE_SCHEMA",
    "TRACKS_SCHEMA",
    "GroupResolver",
    "TransformReport",
    "TransformResult",
    "Transformer",
    "apply_rules",
    "dedup_key",
    "primary_groups",
    "user_id",
]
