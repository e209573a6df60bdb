"""pytest fixtures for testing pipelines against a local Accoil stand-in.

``accoil_server`` is a running :class:`LocalAccoil` (key ``test-key``, no faults);
``accoil_server_factory(**kwargs)`` starts more, with any :class:`LocalAccoil`
arguments. Every server is stopped when the test ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ._accoil_server import LocalAccoil


@pytest.fixture
def accoil_server_factory() -> Iterator[Callable[..., LocalAccoil]]:
    servers: list[LocalAccoil] = []

    def make(**kwargs: Any) -> LocalAccoil:
        server = LocalAccoil(**kwargs).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def accoil_server(accoil_server_factory: Callable[..., LocalAccoil]) -> LocalAccoil:
    return accoil_server_factory()
