"""The ``accoil`` polars namespace, registered on ``import accoil_transform``.

It lets the transform compose inside a user's own polars pipeline:

>>> import polars as pl
>>> import accoil_transform  # registers df.accoil and lf.accoil
>>> events = pl.DataFrame({
...     "event_type": ["Report Created", "Report Created"],
...     "event_time": ["2026-11-24 09:59:58.880000", "2026-11-24 10:00:01.000000"],
...     "user_id": ["u1", "null"],
...     "groups": ['{"Account": ["210000"]}', None],
...     "group_properties": ['{"Account": {"210000": {"name": "Acme"}}}', None],
... })
>>> events.accoil.tracks().select("userId", "timestamp", "groupId").rows()
[('u1', '2026-11-24T09:59:58.880Z', '210000')]
>>> events.accoil.primary_group().select("groupId", "groupTraits").rows()
[('210000', '[{"groupId":"210000","traits":{"name":"Acme","group_type":"Account"}}]'), (None, '[]')]
>>> events.lazy().accoil.tracks().collect().height
1
>>> events.accoil.report().dropped["no_user_id"]
1

Public frames use the names of the calls' fields (``userId``, ``groupId``, ``groupTraits``).
The lazy namespace has the same methods; the transform keeps state across rows (dedup,
latest per user), so it collects its input.
"""

from __future__ import annotations

import polars as pl

from .._json import to_json_text
from ..calls import build_calls
from ..config import TransformConfig
from ..read import normalize_frame
from ..rules import GroupResolver, TransformReport, TransformResult, apply_rules
from ..rules._groups import EMPTY_GROUP_TRAITS

#: The columns :meth:`AccoilFrame.primary_group` adds.
PRIMARY_GROUP_COLUMNS = ("groupId", "groupType", "groupTraits")


@pl.api.register_dataframe_namespace("accoil")
class AccoilFrame:
    """``df.accoil``: the rules on an Amplitude-shaped frame (export or warehouse columns)."""

    def __init__(self, df: pl.DataFrame) -> None:
        self._df = df

    def canonical(
        self, config: TransformConfig | None = None, *, source: str = "<DataFrame>"
    ) -> pl.DataFrame:
        """The canonical event frame (column names, ``_insert_id``, times and nested JSON normalised)."""
        return normalize_frame(self._df, config or TransformConfig(), source=source)

    def transform(
        self, config: TransformConfig | None = None, *, strict: bool = False
    ) -> TransformResult:
        """Every output frame: tracks, identifies, groups, quarantine and the report."""
        config = config or TransformConfig()
        return apply_rules(self.canonical(config), config, strict=strict)

    def tracks(self, config: TransformConfig | None = None) -> pl.DataFrame:
        """One track record per kept event."""
        return self.transform(config).tracks

    def identifies(self, config: TransformConfig | None = None) -> pl.DataFrame:
        """One identify record per distinct user."""
        return self.transform(config).identifies

    def groups(self, config: TransformConfig | None = None) -> pl.DataFrame:
        """One group record per distinct (user, primary group) pair."""
        return self.transform(config).groups

    def report(self, config: TransformConfig | None = None) -> TransformReport:
        """Rows read, kept and dropped by reason: where every row went."""
        return self.transform(config).report

    def calls(self, config: TransformConfig | None = None, format: str = "v2") -> pl.DataFrame:
        """Every Accoil call (``kind``, ``call_id``, ``body``) in delivery order."""
        r = self.transform(config)
        return build_calls(r.tracks, r.identifies, r.groups, format)

    def primary_group(self) -> pl.DataFrame:
        """The frame with ``groupId``, ``groupType`` and ``groupTraits`` of each row's
        primary group; ``groupTraits`` is the track field, ``[{"groupId", "traits"}]``.

        Needs ``groups`` and ``group_properties`` (JSON text or nested); rows without a
        candidate get null ids and ``[]``. Row order and all columns are kept.
        """
        df = self._df
        cols = {c.lower(): c for c in df.columns}
        missing = [c for c in ("groups", "group_properties") if c not in cols]
        if missing:
            raise ValueError(f"primary_group needs the column(s) {', '.join(missing)}")

        schema = df.schema
        nested = df.select(
            pl.int_range(pl.len(), dtype=pl.UInt64).alias("_row"),
            *[
                to_json_text(pl.col(cols[c]), schema[cols[c]]).alias(c)
                for c in ("groups", "group_properties")
            ],
        )
        primary = GroupResolver().primary_groups(nested)
        joined = nested.select("_row").join(primary, on="_row", how="left", maintain_order="left")
        return df.with_columns(
            joined.select(
                groupId="group_id",
                groupType="group_type",
                groupTraits=pl.col("groupTraits").fill_null(EMPTY_GROUP_TRAITS),
            )
        )


@pl.api.register_lazyframe_namespace("accoil")
class AccoilLazyFrame:
    """``lf.accoil``: the same on a LazyFrame. The transform keeps state across rows
    (dedup, latest per user), so these collect the input and return a LazyFrame."""

    def __init__(self, lf: pl.LazyFrame) -> None:
        self._lf = lf

    def _eager(self) -> AccoilFrame:
        return AccoilFrame(self._lf.collect())

    def canonical(
        self, config: TransformConfig | None = None, *, source: str = "<LazyFrame>"
    ) -> pl.LazyFrame:
        return self._eager().canonical(config, source=source).lazy()

    def transform(
        self, config: TransformConfig | None = None, *, strict: bool = False
    ) -> TransformResult:
        return self._eager().transform(config, strict=strict)

    def report(self, config: TransformConfig | None = None) -> TransformReport:
        return self._eager().report(config)

    def tracks(self, config: TransformConfig | None = None) -> pl.LazyFrame:
        return self._eager().tracks(config).lazy()

    def identifies(self, config: TransformConfig | None = None) -> pl.LazyFrame:
        return self._eager().identifies(config).lazy()

    def groups(self, config: TransformConfig | None = None) -> pl.LazyFrame:
        return self._eager().groups(config).lazy()

    def calls(self, config: TransformConfig | None = None, format: str = "v2") -> pl.LazyFrame:
        return self._eager().calls(config, format).lazy()

    def primary_group(self) -> pl.LazyFrame:
        return self._eager().primary_group().lazy()
