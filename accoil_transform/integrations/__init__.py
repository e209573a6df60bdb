"""Integrations with the tools a pipeline already runs in.

- :mod:`.polars_namespace`: ``df.accoil`` and ``lf.accoil``, registered on
  ``import accoil_transform``;
- :mod:`.spark`: the same transform inside Apache Spark (``mapInArrow``), for event
  tables past one machine, and sending from Spark tasks.
"""
