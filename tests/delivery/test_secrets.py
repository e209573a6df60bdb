"""The API key never shows: not in files, reports, logs, exceptions or reprs."""

from __future__ import annotations

import base64
import logging
import pickle
import traceback
from pathlib import Path

import orjson
import pytest

from accoil_transform._secret import Secret
from accoil_transform.calls import AuthScheme, get_format
from accoil_transform.delivery import (
    AccoilClient,
    AuthenticationError,
    DeliveryOptions,
    RetryPolicy,
    send,
)
from accoil_transform.testing import FaultPlan, LocalAccoil
from tests.delivery.helpers import batches, workload

SECRET = "sk-live-9Qz7TOPSECRET"
FORMS = (SECRET, base64.b64encode(f"{SECRET}:".encode()).decode().rstrip("="))


def _run(srv: LocalAccoil, fmt: str, tmp_path: Path, key: str = SECRET) -> list[str]:
    """Deliver a workload with faults and bad calls; return every text it produced."""
    calls = workload(users=5, tracks=60, fmt=fmt)
    del calls[10].body["event"]  # one 400 -> dead letter
    options = DeliveryOptions(
        concurrency=4,
        retry=RetryPolicy(max_attempts=2, backoff_base=0.001),
        ledger_path=tmp_path / f"{fmt}.sqlite",
        dead_letter_path=tmp_path / f"{fmt}.dead.ndjson",
    )
    texts = [repr(options)]
    try:
        report = send(
            batches(calls, srv.base_url, fmt),
            api_key=key,
            auth=get_format(fmt).auth,
            options=options,
        )
    except AuthenticationError as exc:
        texts += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
        report = exc.report
    texts += [repr(report), orjson.dumps(report.to_dict()).decode()]
    return texts


def test_the_key_appears_nowhere(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    faults = FaultPlan(rate_limit=0.05, retry_after="0", unavailable=0.05, drop=0.05, seed=5)
    with LocalAccoil(SECRET, faults=faults) as srv:
        srv.faults.script(503, count=2)  # an exhausted call -> dead letter
        for fmt in ("v2", "segment", "v1"):
            texts += _run(srv, fmt, tmp_path)
        assert srv.stats()["by_status"]["202"] > 150  # the key worked
    with LocalAccoil("the-right-key") as srv:  # the secret is the wrong key here
        texts += _run(srv, "v1", tmp_path / "wrong")
        texts += _run(srv, "v2", tmp_path / "wrong")
    client = AccoilClient(SECRET, AuthScheme.BODY_API_KEY)
    secret = Secret(SECRET)
    texts += [repr(client), str(client), repr(secret), str(secret), f"{secret}", f"{secret!r}"]
    texts += [caplog.text, *capsys.readouterr()]
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".dead.ndjson") for p in files)
    assert any(p.name.endswith(".sqlite-wal") or p.suffix == ".sqlite" for p in files)
    assert "retry in" in caplog.text and "failed" in caplog.text  # the logs were captured
    for form in FORMS:
        for text in texts:
            assert form not in text
        for path in files:
            assert form.encode() not in path.read_bytes(), path


def test_secret_masks_and_scrubs() -> None:
    secret = Secret(SECRET)
    assert secret.reveal() == SECRET
    text = f"url?k={SECRET} auth=Basic {FORMS[1]}="
    assert SECRET not in secret.scrub(text)
    assert FORMS[1] not in secret.scrub(text)
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    with pytest.raises(ValueError):
        Secret("")
