"""Amplitude's Export API: a client that pulls hour ranges into zip files.

:class:`AmplitudeExportClient` (or :func:`export_range`) downloads the events Amplitude
received in a window of hours (by ``server_upload_time``) into zip files, splitting
windows over the 4 GB limit and retrying transient failures with a
:class:`~accoil_transform.delivery.RetryPolicy`.
"""

from ._export import (
    API_KEY_ENV,
    DEFAULT_EXPORT_RETRY,
    EU_EXPORT_URL,
    SECRET_KEY_ENV,
    US_EXPORT_URL,
    AmplitudeExportClient,
    ExportFile,
    ExportResult,
    export_range,
    export_url,
)
from ._window import HOUR_FORMAT, MAX_RANGE_HOURS, ExportWindow, format_hour, parse_hour

__all__ = [
    "API_KEY_ENV",
    "DEFAULT_EXPORT_RETRY",
    "EU_EXPORT_URL",
    "HOUR_FORMAT",
    "MAX_RANGE_HOURS",
    "SECRET_KEY_ENV",
    "US_EXPORT_URL",
    "AmplitudeExportClient",
    "ExportFile",
    "ExportResult",
    "ExportWindow",
    "export_range",
    "export_url",
    "format_hour",
    "parse_hour",
]
