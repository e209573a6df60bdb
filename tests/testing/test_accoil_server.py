"""The local Accoil stand-in: contracts, auth, records, faults and fixture (its
``serve-local`` command is tested in ``tests/cli/test_serve_local.py``)."""

from __future__ import annotations

import base64
import time
from typing import Any

import orjson
import pytest
import requests

from accoil_transform.testing import FaultPlan, LocalAccoil

KEY = "test-key"
V2_AUTH = {"Authorization": f"Basic {KEY}"}
SEG_AUTH = {"Authorization": "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()}
TS = "2024-05-01T10:00:00Z"
MS = 1714557600000


def post(
    srv: LocalAccoil,
    path: str,
    body: Any,
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
) -> requests.Response:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    hdrs = {"Content-Type": content_type} | (headers or {})
    return requests.post(srv.base_url + path, data=data, headers=hdrs, timeout=10)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v2/identify", {"userId": "u1", "traits": {"email": "a@b.c"}, "timestamp": TS}),
        ("/v2/identify", {"userId": "u1"}),
        ("/v2/group", {"groupId": "g1", "userId": "u1", "traits": {}, "timestamp": TS}),
        ("/v2/group", {"groupId": "g1"}),
        ("/v2/track", {"userId": "u1", "event": "Report_Created", "timestamp": TS}),
        (
            "/v2/track",
            {
                "userId": "u1",
                "event": "E",
                "timestamp": "2024-05-01T10:00:00.123+02:00",
                "properties": {"ignored": True},
                "groupTraits": [],
            },
        ),
    ],
)
def test_v2_accepts_valid_calls(
    accoil_server: LocalAccoil, path: str, body: dict[str, Any]
) -> None:
    resp = post(accoil_server, path, body, V2_AUTH)
    assert resp.status_code == 202
    [call] = accoil_server.accepted
    assert (call.fmt, call.path, call.body) == ("v2", path, body)
    assert call.kind == path.rsplit("/", 1)[1]


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/v2/identify", {"traits": {}}, "'userId' is required"),
        ("/v2/identify", {"userId": ""}, "'userId' is required"),
        ("/v2/identify", {"userId": 5}, "'userId' is required"),
        ("/v2/identify", {"userId": "u", "traits": "x"}, "'traits' must be"),
        ("/v2/group", {"userId": "u1"}, "'groupId' is required"),
        ("/v2/track", {"userId": "u1"}, "'event' is required"),
        ("/v2/track", {"userId": "u1", "event": "E", "timestamp": MS}, "ISO 8601"),
        ("/v2/track", {"userId": "u1", "event": "E", "timestamp": "yesterday"}, "ISO 8601"),
        ("/v2/track", [1, 2], "JSON object"),
        ("/v2/track", b"{not json", "JSON object"),
    ],
)
def test_v2_rejects_contract_breaches(
    accoil_server: LocalAccoil, path: str, body: Any, message: str
) -> None:
    resp = post(accoil_server, path, body, V2_AUTH)
    assert resp.status_code == 400
    assert message in resp.json()["message"]
    assert accoil_server.accepted == []
    assert accoil_server.requests[-1].status == 400


def test_v2_auth(accoil_server: LocalAccoil) -> None:
    body = {"userId": "u1", "event": "E"}
    assert post(accoil_server, "/v2/track", body).status_code == 400  # no header
    assert "should start with 'Basic'" in post(accoil_server, "/v2/track", body).json()["message"]
    assert (
        post(accoil_server, "/v2/track", body, {"Authorization": "Basic other"}).status_code == 401
    )
    # v2 takes the raw key, not the base64 form
    assert post(accoil_server, "/v2/track", body, SEG_AUTH).status_code == 401
    assert post(accoil_server, "/v2/track", body, V2_AUTH).status_code == 202
    assert len(accoil_server.accepted) == 1


def test_content_type_and_path_are_checked(accoil_server: LocalAccoil) -> None:
    body = {"userId": "u1", "event": "E"}
    assert (
        post(accoil_server, "/v2/track", body, V2_AUTH, content_type="text/plain").status_code
        == 400
    )
    assert post(accoil_server, "/v3/track", body, V2_AUTH).status_code == 404
    assert requests.get(accoil_server.base_url + "/v2/track", timeout=10).status_code == 405


def test_segment_contract(accoil_server: LocalAccoil) -> None:
    ok = {"type": "group", "userId": "u", "groupId": "g", "traits": {"plan": "x"}, "timestamp": TS}
    assert post(accoil_server, "/segment", ok, SEG_AUTH).status_code == 202
    assert post(accoil_server, "/segment", ok, V2_AUTH).status_code == 401  # raw key: wrong form
    assert post(accoil_server, "/segment", {**ok, "type": "alias"}, SEG_AUTH).status_code == 400
    assert post(accoil_server, "/segment", {**ok, "timestamp": MS}, SEG_AUTH).status_code == 400
    no_user = {k: v for k, v in ok.items() if k != "userId"}
    assert post(accoil_server, "/segment", no_user, SEG_AUTH).status_code == 400
    page = {"type": "page", "userId": "u", "name": "Home", "timestamp": TS}
    assert post(accoil_server, "/segment", page, SEG_AUTH).status_code == 202
    assert [(c.fmt, c.kind) for c in accoil_server.accepted] == [
        ("segment", "group"),
        ("segment", "page"),
    ]


def test_an_empty_segment_post_tests_authentication(accoil_server: LocalAccoil) -> None:
    # What ``accoil-transform check`` sends: the key is checked, nothing is recorded.
    assert post(accoil_server, "/segment", {}, SEG_AUTH).status_code == 200
    assert post(accoil_server, "/segment", {}, V2_AUTH).status_code == 401
    bad = {"Authorization": "Basic " + base64.b64encode(b"nope:").decode()}
    assert post(accoil_server, "/segment", {}, bad).status_code == 401
    missing = post(accoil_server, "/segment", {})
    assert missing.status_code == 400 and "should start with 'Basic'" in missing.json()["message"]
    assert post(accoil_server, "/v2/track", {}, V2_AUTH).status_code == 400  # not on v2
    assert accoil_server.accepted == []
    assert accoil_server.stats()["accepted"] == 0


def test_v1_contract_key_in_body_is_not_recorded(accoil_server: LocalAccoil) -> None:
    ok = {"api_key": KEY, "user_id": "u", "event": "E", "timestamp": MS}
    assert post(accoil_server, "/v1/events", ok).status_code == 202
    assert accoil_server.accepted[0].body == {"user_id": "u", "event": "E", "timestamp": MS}
    assert post(accoil_server, "/v1/events", {**ok, "api_key": "nope"}).status_code == 401
    no_key = {k: v for k, v in ok.items() if k != "api_key"}
    assert "'api_key' is required" in post(accoil_server, "/v1/events", no_key).json()["message"]
    assert post(accoil_server, "/v1/events", {**ok, "timestamp": TS}).status_code == 400
    assert post(accoil_server, "/v1/events", {**ok, "timestamp": True}).status_code == 400
    camel = {"api_key": KEY, "userId": "u", "event": "E", "timestamp": MS}
    assert post(accoil_server, "/v1/events", camel).status_code == 400
    user = {"api_key": KEY, "user_id": "u", "traits": {}, "timestamp": MS}
    group = {"api_key": KEY, "group_id": "g", "user_id": "u", "timestamp": MS}
    assert post(accoil_server, "/v1/users", user).status_code == 202
    assert post(accoil_server, "/v1/groups", group).status_code == 202
    assert [c.kind for c in accoil_server.accepted] == ["track", "identify", "group"]
    assert all("api_key" not in (r.body or {}) for r in accoil_server.requests)


def test_any_key_mode(accoil_server_factory: Any) -> None:
    srv = accoil_server_factory(api_key=None)
    assert (
        post(
            srv, "/v2/track", {"userId": "u", "event": "E"}, {"Authorization": "Basic x"}
        ).status_code
        == 202
    )
    assert post(srv, "/v2/track", {"userId": "u", "event": "E"}).status_code == 400


def test_scripted_faults(accoil_server: LocalAccoil) -> None:
    body = {"userId": "u", "event": "E"}
    accoil_server.faults.script(429, retry_after="7")
    accoil_server.faults.script(503, count=2)
    accoil_server.faults.script(500)
    resp = post(accoil_server, "/v2/track", body, V2_AUTH)
    assert (resp.status_code, resp.headers["Retry-After"]) == (429, "7")
    assert [post(accoil_server, "/v2/track", body, V2_AUTH).status_code for _ in range(4)] == [
        503,
        503,
        500,
        202,
    ]
    assert [r.fault for r in accoil_server.requests] == ["429", "503", "503", "500", None]
    assert accoil_server.requests[0].body == body  # faulted requests are recorded too
    assert accoil_server.stats() == {
        "requests": 5,
        "accepted": 1,
        "by_status": {"429": 1, "503": 2, "500": 1, "202": 1},
    }


def test_dropped_connection(accoil_server: LocalAccoil) -> None:
    accoil_server.faults.script("drop")
    with pytest.raises(requests.ConnectionError):
        post(accoil_server, "/v2/track", {"userId": "u", "event": "E"}, V2_AUTH)
    assert (
        post(accoil_server, "/v2/track", {"userId": "u", "event": "E"}, V2_AUTH).status_code == 202
    )
    assert [r.status for r in accoil_server.requests] == [None, 202]


def test_payload_too_large(accoil_server_factory: Any) -> None:
    srv = accoil_server_factory(faults=FaultPlan(max_body_bytes=100))
    small = {"userId": "u", "event": "E"}
    big = {"userId": "u", "event": "E", "traits": {"x": "y" * 200}}
    assert post(srv, "/v2/track", big, V2_AUTH).status_code == 413
    assert post(srv, "/v2/track", small, V2_AUTH).status_code == 202  # same connection still fine


def test_random_faults_are_seeded_and_roughly_proportional() -> None:
    def statuses(seed: int) -> list[int | None]:
        plan = FaultPlan(rate_limit=0.1, unavailable=0.1, server_error=0.1, seed=seed)
        return [f.status if (f := plan.draw()) else 202 for _ in range(3000)]

    a, b = statuses(3), statuses(3)
    assert a == b
    assert statuses(4) != a
    for status in (429, 500, 503):
        assert 200 < a.count(status) < 400


def test_latency_is_added(accoil_server_factory: Any) -> None:
    srv = accoil_server_factory(faults=FaultPlan(latency_ms=50))
    started = time.monotonic()
    assert post(srv, "/v2/track", {"userId": "u", "event": "E"}, V2_AUTH).status_code == 202
    assert time.monotonic() - started >= 0.05


def test_stats_and_accepted_routes(accoil_server: LocalAccoil) -> None:
    post(accoil_server, "/v2/track", {"userId": "u", "event": "E"}, V2_AUTH)
    post(accoil_server, "/v2/track", {"userId": "u"}, V2_AUTH)
    stats = requests.get(accoil_server.base_url + "/_stats", timeout=10).json()
    assert stats == {"requests": 2, "accepted": 1, "by_status": {"202": 1, "400": 1}}
    lines = requests.get(accoil_server.base_url + "/_accepted", timeout=10).content.splitlines()
    assert [orjson.loads(line)["body"] for line in lines] == [{"userId": "u", "event": "E"}]


def test_reset_and_record_off(accoil_server_factory: Any) -> None:
    srv = accoil_server_factory(record=False)
    post(srv, "/v2/track", {"userId": "u", "event": "E"}, V2_AUTH)
    assert srv.accepted == [] and srv.stats()["accepted"] == 1
    srv.reset()
    assert srv.stats()["accepted"] == 0


def test_context_manager_frees_the_port() -> None:
    with LocalAccoil() as srv:
        url = srv.base_url
        assert repr(srv) == f"LocalAccoil({url})"
        assert post(srv, "/v2/track", {"userId": "u", "event": "E"}, V2_AUTH).status_code == 202
    with pytest.raises(requests.ConnectionError):
        requests.post(url + "/v2/track", data=b"{}", timeout=5)
    assert repr(srv) == "LocalAccoil(stopped)"
