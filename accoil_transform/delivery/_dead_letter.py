"""The dead-letter file: calls that finally failed, as NDJSON, never with the key."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from .._secret import Secret

if TYPE_CHECKING:
    from ._sender import Call


class DeadLetters:
    """Append-only NDJSON of finally failed calls, opened on first use."""

    def __init__(self, path: Path | None, secret: Secret) -> None:
        self.path = path
        self._secret = secret
        self._file: IO[bytes] | None = None
        self._lock = threading.Lock()

    def write(self, call: Call, status: int | None, response_start: str, reason: str) -> bool:
        """Append ``call`` with why it failed (``rejected``, ``too_large``,
        ``retries_exhausted``), its status and the start of the response."""
        if self.path is None:
            return False
        try:
            body: Any = orjson.loads(call.body)
        except orjson.JSONDecodeError:
            body = self._secret.scrub(call.body.decode("utf-8", errors="replace"))
        if isinstance(body, dict):
            body.pop("api_key", None)
        line = orjson.dumps(
            {
                "call_id": call.call_id,
                "kind": call.kind,
                "url": call.url,
                "reason": reason,
                "status": status,
                "response_start": self._secret.scrub(response_start),
                "body": body,
            }
        )
        with self._lock:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("ab")
            self._file.write(line + b"\n")
            self._file.flush()
        return True

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
