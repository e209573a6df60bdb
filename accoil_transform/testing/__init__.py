"""Stand-ins for the outside systems, test data, and a pytest plugin, for your own tests.

- :class:`LocalAccoil`: Accoil's ingress API on 127.0.0.1, with faults on demand;
- :class:`LocalAmplitudeExport`: Amplitude's Export API on 127.0.0.1;
- :func:`make_event`: one Export-API-shaped event; :mod:`.synthetic` makes whole exports;
- the ``accoil_server`` pytest fixture (:mod:`.pytest_plugin`, registered on install).
"""

from ._accoil_server import AcceptedCall, Fault, FaultPlan, LocalAccoil, RequestRecord
from ._amplitude_server import EXPORT_PATH, ExportRequest, LocalAmplitudeExport
from ._events import EXPORT_KEYS, TIME_KEYS, format_time, make_event, make_events

__all__ = [
    "EXPORT_KEYS",
    "EXPORT_PATH",
    "TIME_KEYS",
    "AcceptedCall",
    "ExportRequest",
    "Fault",
    "FaultPlan",
    "LocalAccoil",
    "LocalAmplitudeExport",
    "RequestRecord",
    "format_time",
    "make_event",
    "make_events",
]
