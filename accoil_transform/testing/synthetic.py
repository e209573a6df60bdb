"""Deterministic generator of realistic Amplitude exports, for tests, samples and benchmarks.

:func:`generate_events` yields export-shaped event dicts (the full key set of a 2025
Export API record) for a B2B SaaS product: users belong to accounts (group type
``Account``, some also to a ``Workspace``), accounts carry traits, plans get upgraded.
With ``edge_cases=True`` a deterministic sprinkle of every awkward shape the rules meet
(``docs/rules.md``) is mixed in; each such event carries
``event_properties["synthetic_case"] = <case name>`` (see :data:`EDGE_CASES`).

Writers: :func:`write_export_zip` (a real Export API zip), :func:`write_s3_layout` (the
S3/GCS hourly files), :func:`write_ndjson_gz`; and :func:`to_warehouse_frame` for
Snowflake/BigQuery/Fivetran/Airbyte-shaped extracts. Everything is a pure function of
the arguments: the same seed gives byte-identical files.

Command line::

    python -m accoil_transform.testing.synthetic --out sample_data/amplitude_export_sample.zip \\
        --events 2000 --seed 7
"""

from __future__ import annotations

import argparse
import gzip
import heapq
import os
import random
import re
import shutil
import sys
import tempfile
import threading
import time
import unicodedata
import zipfile
import zlib
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import accumulate, pairwise
from pathlib import Path
from typing import IO, Any, Literal

import orjson
import polars as pl

from ..read import member_name
from ._events import EXPORT_KEYS, TIME_KEYS

__all__ = [
    "CASE_KEY",
    "DEFAULT_PROJECT_ID",
    "DEFAULT_START",
    "EDGE_CASES",
    "EXPORT_KEYS",
    "PLACEHOLDER_SPELLINGS",
    "generate_events",
    "main",
    "to_warehouse_frame",
    "write_export_zip",
    "write_ndjson_gz",
    "write_s3_layout",
]

Event = dict[str, Any]
WarehouseStyle = Literal["snowflake", "bigquery", "fivetran", "airbyte"]

DEFAULT_PROJECT_ID = 187520
DEFAULT_START = datetime(2025, 7, 1, tzinfo=UTC)
#: ``event_properties`` key that names the edge case an event was made for.
CASE_KEY = "synthetic_case"
#: Spellings of the placeholder user ids, in varied case and whitespace.
PLACEHOLDER_SPELLINGS = (
    "", " NULL ", "NONE", " nil", "Undefined", "Anonymous", "0", " -1",
    "00000000-0000-0000-0000-000000000000",
)  # fmt: skip
# --------------------------------------------------------------------------- pools

_FIRST = (
    "Ava", "Liam", "Zoë", "José", "Siobhán", "Łukasz", "Chloé", "Søren", "Mei", "Arjun", "Fatima",
    "Noah", "Olivia", "Kenji", "Amara", "Mateo", "Ingrid", "Yusuf", "Priya", "Björn", "Aoife",
    "Diego", "Hana", "Émile",
)  # fmt: skip
_LAST = (
    "Smith", "García", "Müller", "O'Brien", "Nakamura", "Kowalski", "Dubois", "Rossi", "Haddad",
    "Patel", "Johansson", "Nguyen", "Okafor", "Silva", "Cohen", "Novák", "Fernández", "Kim",
    "Larsen", "Ivanova",
)  # fmt: skip
_COMPANIES = (
    "Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark Industries", "Wayne Enterprises",
    "Soylent", "Vandelay Industries", "Massive Dynamic", "Nakatomi Trading", "Cyberdyne",
    "Tyrell", "Wonka Industries", "Aperture Science", "Oscorp", "Pied Piper", "Dunder Mifflin",
    "Bluth Company", "Sterling Cooper", "Monarch Solutions", "Zürich Analytik", "Café Olé",
    "Krüger Logistik", "Nordlys AS",
)  # fmt: skip
#: (plan, monthly price per seat, typical seats)
_TIERS = (
    ("free", 0.0, 3), ("starter", 12.0, 5), ("growth", 25.5, 25), ("business", 49.0, 80),
    ("enterprise", 79.99, 400),
)  # fmt: skip
_INDUSTRIES = (
    "Fintech", "Healthcare", "E-commerce", "Logistics", "Education", "Media", "Manufacturing", "SaaS",
)  # fmt: skip
_WORKSPACES = ("Marketing", "Product", "Finance", "Operations", "Growth", "Data")
_ROLES = ("admin", "analyst", "analyst", "viewer", "viewer", "editor", "owner")
_UTM = ("google", "linkedin", "direct", "newsletter", "g2", None)
#: (country, region, city, dma, lat, lng, language)
_GEO = (
    ("United States", "California", "San Francisco", "San Francisco-Oakland-San Jose, CA",
     37.7749, -122.4194, "English"),
    ("United States", "New York", "New York", "New York, NY", 40.7128, -74.006, "English"),
    ("United Kingdom", "England", "London", None, 51.5072, -0.1276, "English"),
    ("Germany", "Bavaria", "München", None, 48.1351, 11.582, "German"),
    ("Portugal", "Santarém", "Fátima", None, 39.6307, -8.6727, "Portuguese"),
    ("Canada", "Newfoundland and Labrador", "St. John's", None, 47.5615, -52.7126, "English"),
    ("Switzerland", "Zurich", "Zürich", None, 47.3769, 8.5417, "German"),
    ("Brazil", "São Paulo", "São Paulo", None, -23.5505, -46.6333, "Portuguese"),
    ("Japan", "Tokyo", "Tokyo", None, 35.6762, 139.6503, "Japanese"),
    ("Israel", "Tel Aviv", "Tel Aviv", None, 32.0853, 34.7818, "Hebrew"),
    ("Australia", "New South Wales", "Sydney", None, -33.8688, 151.2093, "English"),
    ("France", "Île-de-France", "Paris", None, 48.8566, 2.3522, "French"),
    ("India", "Karnataka", "Bengaluru", None, 12.9716, 77.5946, "English"),
    ("Mexico", "Ciudad de México", "Ciudad de México", None, 19.4326, -99.1332, "Spanish"),
)  # fmt: skip
_WEB = "amplitude-ts/2.16.1"
#: (weight, *values of _ENV_KEYS)
_ENV_KEYS = ("library", "platform", "os_name", "os_version", "device_type", "device_family",
             "device_brand", "device_manufacturer", "device_model", "device_carrier",
             "version_name")  # fmt: skip
_ENVS = (
    (30, _WEB, "Web", "Chrome", "126", "Mac", "Mac", None, None, None, None, None),
    (25, _WEB, "Web", "Chrome", "125", "Windows", "Windows", None, None, None, None, None),
    (12, _WEB, "Web", "Safari", "17.5", "Mac", "Mac", None, None, None, None, None),
    (6, _WEB, "Web", "Firefox", "127.0", "Linux", "Linux", None, None, None, None, None),
    (8, "amplitude-ts/2.15.0", "Web", "Edge", "126", "Windows", "Windows", None, None, None,
     None, None),
    (7, "amplitude-swift/1.9.2", "iOS", "ios", "17.5.1", "Apple iPhone 15", "Apple iPhone",
     "Apple", "Apple", "iPhone15,4", "Verizon", "3.12.0"),
    (5, "amplitude-android-kotlin/1.16.7", "Android", "android", "14", "Samsung Galaxy S23",
     "Samsung Galaxy S", "Samsung", "samsung", "SM-S911B", "T-Mobile", "3.12.0"),
    (7, "http/2.0", None, None, None, None, None, None, None, None, None, None),
)  # fmt: skip
_PAGES = (
    ("/", "Home"), ("/dashboards", "Dashboards"), ("/reports", "Reports"),
    ("/reports/new", "New report"), ("/settings/billing", "Billing"), ("/settings/team", "Team"),
    ("/integrations", "Integrations"), ("/alerts", "Alerts"), ("/search", "Search"),
    ("/onboarding", "Get started"),
)  # fmt: skip
_APP_DOMAIN = "app.lumenmetrics.io"
_WORDS = (
    "pipeline", "revenue", "cohort", "retention", "funnel", "dashboard", "quarterly", "weekly",
    "region", "churn", "activation", "segment", "forecast", "pivot", "export", "anomaly",
    "baseline", "variance", "conversion", "account", "seats", "usage", "trial", "renewal",
    "expansion", "latency", "threshold", "owner", "review", "draft", "shared", "template",
)  # fmt: skip

#: Value pools for event properties, by name.
_POOLS: dict[str, tuple[Any, ...]] = {
    "bool": (True, False),
    "small_int": tuple(range(1, 25)),
    "tiny_int": (0, 0, 0, 1, 1, 2, 3),
    "load_ms": tuple(range(80, 4000, 37)),
    "row_count": (0, 12, 250, 1000, 5000, 48213, 1000000),
    "comment_len": tuple(range(3, 500, 11)),
    "file_size": (12, 88, 512, 2048, 10240),
    "threshold": (0.5, 1.0, 2.5, 99.9, 1000.0),
    "report_type": ("funnel", "retention", "segmentation", "revenue", "cohort", "table"),
    "report_source": ("blank", "template", "duplicate", "api"),
    "export_format": ("csv", "xlsx", "pdf", "png"),
    "chart_type": ("line", "bar", "pie", "table", "area", "scatter"),
    "filter_field": ("country", "plan", "created_at", "owner", "status", "amount"),
    "filter_op": ("is", "is not", "contains", ">", "<", "between"),
    "search_query": ("churn", "q3 revenue", "onboarding funnel", "weekly actives", "nps"),
    "search_scope": ("all", "reports", "dashboards", "people"),
    "role": _ROLES,
    "invite_method": ("email", "link", "sso"),
    "integration": ("Salesforce", "HubSpot", "Slack", "Snowflake", "BigQuery", "Zendesk"),
    "setting": ("timezone", "currency", "week_start", "notifications", "theme"),
    "setting_value": ("UTC", "EUR", "monday", "off", "dark"),
    "file_type": ("csv", "xlsx", "json", "parquet"),
    "metric": ("weekly_active_users", "revenue", "error_rate", "signups"),
    "alert_channel": ("email", "slack", "webhook"),
    "login_method": ("password", "google", "sso", "magic_link"),
    "scopes": (("read",), ("read", "write"), ("read", "write", "admin")),
    "referrer": ("https://www.google.com/", "https://www.linkedin.com/", None,
                 "https://app.lumenmetrics.io/"),
}  # fmt: skip
_POOLS["scopes"] = tuple(list(s) for s in _POOLS["scopes"])  # JSON arrays

#: (event type, weight per mille, ((property, pool name), ...)); pool "report_id",
#: "dashboard_id" and "dashboard_name" are drawn per generator.
_EVENT_TYPES: tuple[tuple[str, int, tuple[tuple[str, str], ...]], ...] = (
    ("[Amplitude] Page Viewed", 300, (("referrer", "referrer"),)),
    ("session_start", 60, ()),
    ("session_end", 50, ()),
    ("Dashboard Viewed", 120, (("dashboard_id", "dashboard_id"),
                               ("dashboard_name", "dashboard_name"),
                               ("widget_count", "small_int"), ("is_shared", "bool"))),
    ("Report Created", 45, (("report_id", "report_id"), ("report_type", "report_type"),
                            ("chart_count", "small_int"), ("source", "report_source"))),
    ("Report Viewed", 90, (("report_id", "report_id"), ("report_type", "report_type"),
                           ("load_time_ms", "load_ms"))),
    ("Report Exported", 20, (("report_id", "report_id"), ("format", "export_format"),
                             ("row_count", "row_count"))),
    ("Chart Added", 30, (("chart_type", "chart_type"), ("report_id", "report_id"))),
    ("Filter Applied", 60, (("filter_field", "filter_field"), ("filter_operator", "filter_op"),
                            ("result_count", "row_count"))),
    ("Search Performed", 50, (("query", "search_query"), ("result_count", "small_int"),
                              ("search_scope", "search_scope"))),
    ("User Invited", 12, (("invitee_role", "role"), ("invite_method", "invite_method"))),
    ("Integration Connected", 8, (("integration", "integration"),
                                  ("is_first_integration", "bool"))),
    ("Settings Updated", 20, (("setting", "setting"), ("new_value", "setting_value"))),
    ("Comment Added", 30, (("comment_length", "comment_len"), ("mentions", "tiny_int"),
                           ("report_id", "report_id"))),
    ("File Uploaded", 10, (("file_type", "file_type"), ("file_size_kb", "file_size"))),
    ("Alert Created", 10, (("metric", "metric"), ("threshold", "threshold"),
                           ("channel", "alert_channel"))),
    ("Billing Page Viewed", 8, ()),  # + current_plan
    ("Plan Upgraded", 2, ()),  # + from_plan, to_plan
    ("API Key Created", 5, (("scopes", "scopes"),)),
    ("Sign In", 30, (("method", "login_method"), ("mfa", "bool"))),
)  # fmt: skip
_PAGE_VIEW, _BILLING, _UPGRADE = "[Amplitude] Page Viewed", "Billing Page Viewed", "Plan Upgraded"

_HOUR_US = 3_600_000_000
_SESSION_GAP_US = 30 * 60 * 1_000_000
_EPOCH = datetime(1970, 1, 1)
_PAD_KEY = "description"


@lru_cache(maxsize=8192)
def _hour_prefix(hour: int) -> str:
    return (_EPOCH + timedelta(hours=hour)).strftime("%Y-%m-%d %H:")


def _fmt_us(us: int) -> str:
    """Epoch microseconds → ``YYYY-MM-DD HH:MM:SS.ffffff`` (UTC, the export format)."""
    hour, rem = divmod(us, _HOUR_US)
    minute, rem = divmod(rem, 60_000_000)
    second, micro = divmod(rem, 1_000_000)
    return f"{_hour_prefix(hour)}{minute:02d}:{second:02d}.{micro:06d}"


def _parse_time(value: Any) -> datetime | None:
    """Any export/warehouse time string (or datetime) → naive UTC datetime."""
    if value is None:
        return None
    dt = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return dt.astimezone(UTC).replace(tzinfo=None) if dt.tzinfo else dt


def _to_us(value: str) -> int:
    dt = _parse_time(value)
    assert dt is not None
    return (dt - _EPOCH) // timedelta(microseconds=1)


def _ascii_slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "", ascii_text.lower())


# --------------------------------------------------------------------------- model


class _Account:
    __slots__ = ("data", "group_properties", "groups", "id", "tier", "traits", "workspaces")

    def __init__(self, account_id: str, traits: Event, tier: int, workspaces: list[str],
                 data: Event) -> None:  # fmt: skip
        self.id, self.tier, self.workspaces, self.data = account_id, tier, workspaces, data
        self.groups: Event = {"Account": [account_id]}
        self.set_traits(traits)

    def set_traits(self, traits: Event) -> None:
        """Replace (never mutate) the shared trait dicts, so earlier events keep theirs."""
        self.traits = traits
        self.group_properties: Event = {"Account": {self.id: traits}}


class _User:
    __slots__ = ("account", "event_id", "groups", "last_us", "props", "props_tier",
                 "session_id", "template", "workspace")  # fmt: skip

    def __init__(self, template: Event, props: Event, account: _Account,
                 workspace: str | None, event_id: int) -> None:  # fmt: skip
        self.template = template  # the export keys with this user's constant values
        self.props = props
        self.props_tier = account.tier  # props["plan"] is refreshed when the account upgrades
        self.account = account
        self.workspace = workspace
        self.event_id = event_id
        self.last_us, self.session_id = -(1 << 62), -1
        self.groups: tuple[int, Event, Event] | None = None  # (tier, groups, group_properties)


class _Generator:
    """Holds the pools and the per-user state of one :func:`generate_events` run."""

    def __init__(
        self,
        n: int,
        seed: int,
        users: int | None,
        accounts: int | None,
        start: datetime,
        hours: int,
        project_id: int,
        event_bytes: int | None,
        volatile_traits: bool = False,
        roaming_users: bool = False,
    ) -> None:
        self.rng = rng = random.Random(seed)
        self.volatile_traits, self.roaming_users = volatile_traits, roaming_users
        self.project_id = project_id
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        self.start_us = _to_us(start.isoformat())
        self.step_us = max(1, hours) * _HOUR_US / max(n, 1)
        n_users = users if users is not None else max(10, n // 40)
        n_accounts = accounts if accounts is not None else max(3, n_users // 5)
        self.pools = {k: v for k, v in _POOLS.items()}
        self.pools["report_id"] = tuple(f"rpt_{rng.getrandbits(40):010x}" for _ in range(400))
        self.pools["dashboard_id"] = tuple(f"dash_{rng.getrandbits(32):08x}" for _ in range(60))
        self.pools["dashboard_name"] = tuple(
            f"{rng.choice(_WORDS).title()} {rng.choice(_WORDS)}" for _ in range(60)
        )
        self.event_types = [
            (name, tuple((key, self.pools[pool]) for key, pool in props))
            for name, weight, props in _EVENT_TYPES
            for _ in range(weight)
        ]
        self.page_props = tuple(
            {
                "[Amplitude] Page Domain": _APP_DOMAIN,
                "[Amplitude] Page Path": path,
                "[Amplitude] Page Title": title,
                "[Amplitude] Page Location": f"https://{_APP_DOMAIN}{path}",
            }
            for path, title in _PAGES
        )
        self.env_pool = [env[1:] for env in _ENVS for _ in range(env[0])]
        self.accounts = [self._new_account(i) for i in range(max(1, n_accounts))]
        self.users = [self._new_user(i) for i in range(max(1, n_users))]
        self.corpus = ""
        if event_bytes:
            words = [rng.choice(_WORDS) for _ in range(max(8192, event_bytes // 3))]
            self.corpus = " ".join(words)
        self.large_props = self._large_props()
        self.i = 0  # index of the next event emitted
        self.user: _User = self.users[0]

    # ---- pools and entities

    def uuid(self, version: str = "4") -> str:
        h = f"{self.rng.getrandbits(128):032x}"
        return (
            f"{h[:8]}-{h[8:12]}-{version}{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"
        )

    def _new_account(self, i: int) -> _Account:
        rng = self.rng
        base = _COMPANIES[i % len(_COMPANIES)]
        name = base if i < len(_COMPANIES) else f"{base} {i // len(_COMPANIES) + 1}"
        tier = min(len(_TIERS) - 1, int(rng.random() ** 1.5 * len(_TIERS)))
        plan, price, seats = _TIERS[tier]
        seats = max(1, int(seats * (0.5 + rng.random())))
        created = datetime(2021, 1, 1) + timedelta(days=rng.randrange(1400))
        traits = {
            "name": name,
            "domain": f"{_ascii_slug(name)}.com",
            "plan": plan,
            "seats": seats,
            "mrr": round(price * seats, 2),
            "is_trial": plan == "free" and rng.random() < 0.5,
            "industry": rng.choice(_INDUSTRIES),
            "created_at": created.strftime("%Y-%m-%d"),
        }
        account_id = str(210000 + i)
        workspaces = [f"ws_{account_id}_{k}" for k in range(1, rng.randrange(2, 5))]
        data = {
            "path": "/2/httpapi",
            "group_first_event": {},
            "group_ids": {"3124": [rng.randrange(10**9, 10**10)]},
        }
        return _Account(account_id, traits, tier, workspaces, data)

    def _new_user(self, i: int) -> _User:
        rng = self.rng
        account = self.accounts[int(rng.random() ** 1.3 * len(self.accounts))]
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        email = f"{_ascii_slug(first)}.{_ascii_slug(last)}{i}@{account.traits['domain']}"
        user_id = rng.choices((f"usr_{rng.getrandbits(64):016x}", str(1_000_000 + i), email),
                              (75, 15, 10))[0]  # fmt: skip
        geo = rng.choice(_GEO)
        env = rng.choice(self.env_pool)
        created = datetime(2022, 1, 1) + timedelta(seconds=rng.randrange(3 * 365 * 86400))
        props = {
            "email": email,
            "name": f"{first} {last}",
            "plan": account.traits["plan"],
            "role": rng.choice(_ROLES),
            "Account": account.id,
            "signup_date": created.strftime("%Y-%m-%d"),
            "initial_utm_source": rng.choice(_UTM),
        }
        template = dict.fromkeys(EXPORT_KEYS)
        template.update(zip(_ENV_KEYS, env, strict=True), start_version=env[-1])
        template.update(
            amplitude_id=rng.randrange(10**11, 10**12), app=self.project_id, data_type="event",
            device_id=self.uuid("5"), plan={}, user_id=user_id,
            paying=True if account.tier >= 2 else None,
            country=geo[0], region=geo[1], city=geo[2], dma=geo[3], language=geo[6],
            location_lat=round(geo[4] + rng.uniform(-0.05, 0.05), 4),
            location_lng=round(geo[5] + rng.uniform(-0.05, 0.05), 4),
            ip_address=".".join(str(rng.randrange(1, 223)) for _ in range(4)),
            user_creation_time=created.strftime("%Y-%m-%d %H:%M:%S.000000")
            if rng.random() < 0.8 else None,
        )  # fmt: skip
        workspace = rng.choice(account.workspaces) if rng.random() < 0.12 else None
        return _User(template, props, account, workspace, rng.randrange(1, 5000))

    def _large_props(self) -> Event:
        rng = self.rng
        props: Event = {}
        for k in range(300):
            props[f"prop_{k:03d}"] = (k, rng.choice(_WORDS), k % 3 == 0, k / 8)[k % 4]
        props["long_text"] = ("x" * 1023) + "…"  # 1024 chars, Amplitude's truncation limit
        nested: Event = {"leaf": True}
        for depth in range(12):
            nested = {f"level_{depth}": nested}
        props["nested"] = nested
        props["line_items"] = [
            {"sku": f"SKU-{k:04d}", "qty": k % 5 + 1, "price": k * 1.25} for k in range(20)
        ]
        return props

    def groups_for(self, user: _User) -> tuple[Event, Event]:
        account = user.account
        if user.workspace is None:
            return account.groups, account.group_properties
        cached = user.groups
        if cached is None or cached[0] != account.tier:
            ws = user.workspace
            traits = {
                "name": f"{account.traits['name']} {_WORKSPACES[int(ws[-1]) - 1]}",
                "account_id": account.id,
                "members": 3 + int(ws[-1]) * 4,
            }
            cached = user.groups = (
                account.tier,
                {"Account": [account.id], "Workspace": [ws]},
                {"Account": {account.id: account.traits}, "Workspace": {ws: traits}},
            )
        return cached[1], cached[2]

    def _upgrade(self, account: _Account) -> None:
        if account.tier + 1 >= len(_TIERS):
            return
        account.tier += 1
        plan, price, seats = _TIERS[account.tier]
        seats = max(account.traits["seats"], seats)
        account.set_traits(
            {
                **account.traits,
                "plan": plan,
                "seats": seats,
                "mrr": round(price * seats, 2),
                "is_trial": False,
            }
        )

    # ---- events

    def normal(self) -> Event:
        """A fresh, valid product event of a (skewed) random user at the current position."""
        rng = self.rng
        r = rng.random
        user = self.users[int(r() ** 2 * len(self.users))]
        self.user = user
        name, spec = rng.choice(self.event_types)
        props = dict(rng.choice(self.page_props)) if name == _PAGE_VIEW else {}
        for key, pool in spec:
            props[key] = rng.choice(pool)
        account = user.account
        if name == _UPGRADE:
            props["from_plan"] = account.traits["plan"]
            self._upgrade(account)
            props["to_plan"] = account.traits["plan"]
        elif name == _BILLING:
            props["current_plan"] = account.traits["plan"]
        if user.props_tier != account.tier:
            user.props = {**user.props, "plan": account.traits["plan"]}
            user.props_tier = account.tier

        upload = self.start_us + int((self.i + r()) * self.step_us)
        event_us = upload - 400_000 - int(r() ** 3 * 30_000_000)
        gap = int(r() * 150_000)
        if event_us - user.last_us > _SESSION_GAP_US:
            user.session_id = event_us // 1000
        user.last_us = event_us
        user.event_id += 1
        event_time = _fmt_us(event_us)
        groups, group_properties = self.groups_for(user)
        if self.roaming_users:
            roamed = self.accounts[int(r() * len(self.accounts))]
            groups, group_properties = roamed.groups, roamed.group_properties
        if self.volatile_traits:
            group_properties = _with_counter(group_properties, self.i, event_time)

        ev = user.template.copy()
        ev["$insert_id"] = self.uuid()
        ev["uuid"] = self.uuid()
        ev["event_type"] = name
        ev["event_id"] = user.event_id
        ev["session_id"] = user.session_id
        ev["event_time"] = ev["client_event_time"] = event_time
        ev["client_upload_time"] = _fmt_us(upload - gap - 100_000)
        ev["server_received_time"] = _fmt_us(upload - gap)
        ev["server_upload_time"] = _fmt_us(upload)
        ev["processed_time"] = _fmt_us(upload + 200_000 + gap * 20)
        ev["event_properties"] = props
        ev["user_properties"] = user.props
        ev["groups"] = groups
        ev["group_properties"] = group_properties
        ev["data"] = account.data
        return ev

    def pad(self, ev: Event, size: int) -> None:
        """Grow ``event_properties["description"]`` so the JSON line is about ``size`` bytes."""
        missing = size - len(orjson.dumps(ev)) - len(_PAD_KEY) - 7  # ,"description":"" + \n
        if missing > 0:
            corpus = self.corpus
            while len(corpus) < missing:
                corpus += " " + corpus
            self.corpus = corpus
            offset = self.rng.randrange(len(corpus) - missing + 1)
            ev["event_properties"][_PAD_KEY] = corpus[offset : offset + missing]


def _with_counter(group_properties: Event, i: int, event_time: str) -> Event:
    """``group_properties`` whose every group's traits carry a per-event counter."""
    return {
        gtype: {
            gid: {**traits, "events_seen": i, "last_seen_at": event_time}
            for gid, traits in by_id.items()
        }
        for gtype, by_id in group_properties.items()
    }


# --------------------------------------------------------------------------- edge cases

CaseFn = Callable[[_Generator, Event], list[Event]]
GroupShape = Callable[[str, Event], tuple[Any, Any]]
_ABSENT: Any = object()  # marks a key left out of the event

SEGMENT_GROUP_ID = "90f978f0-5e4e-11ea-9bb3-0ed25467b33f"
UNICODE_GROUP_ID = "Acme Ünïcode 🚀"
UNICODE_EVENT_TYPE, RTL_EVENT_TYPE = "Rapport créé 📊", "تم إنشاء التقرير"
#: Values of every JSON type, put into traits, event and user properties by ``all_json_types``.
ALL_JSON_TYPES: Event = {
    "t_string": "text", "t_int": 42, "t_bigint": 9007199254740993, "t_float": 3.14,
    "t_bool": True, "t_null": None, "t_object": {"tier": "gold", "limits": {"seats": 10}},
    "t_array": ["sso", 2, None, {"k": "v"}], "t_empty_object": {}, "t_empty_array": [],
}  # fmt: skip


def _acct(a: str, traits: Any) -> Event:
    return {"Account": {a: traits}}


#: ``groups`` / ``group_properties`` shapes, from the user's account id ``a`` and traits ``t``.
_GROUP_SHAPES: dict[str, GroupShape] = {
    "multi_type": lambda a, t: (
        {"Account": [a], "Workspace": [f"ws_{a}_1", f"ws_{a}_2"], "Project": ["prj_atlas"]},
        {**_acct(a, t), "Project": {"prj_atlas": {"name": "Atlas", "status": "active"}},
         "Workspace": {f"ws_{a}_{k}": {"name": f"{t['name']} workspace {k}"} for k in (1, 2)}},
    ),
    "multi_id_code_point": lambda a, t: (
        {"Account": ["9", "10"]},
        {"Account": {"9": {"name": "Nine Ltd", "plan": "starter"},
                     "10": {"name": "Ten Ltd", "plan": "growth"}}},
    ),
    "same_id_two_types": lambda a, t: (
        {"Workspace": ["42"], "Account": ["42"]},
        {"Workspace": {"42": {"name": "Workspace 42"}},
         "Account": {"42": {"name": "Account 42", "plan": "business"}}},
    ),
    "numeric_string_ids": lambda a, t: (
        {"Account": ["12345678901234567890", "007"]},
        {"Account": {"007": {"name": "Bond Ltd", "plan": "enterprise"},
                     "12345678901234567890": {"name": "Huge Id Inc"}}},
    ),
    "group_type_names_with_spaces": lambda a, t: (
        {"[Segment] Group": [SEGMENT_GROUP_ID], "org name": [UNICODE_GROUP_ID]},
        {"[Segment] Group": {SEGMENT_GROUP_ID: {}},
         "org name": {UNICODE_GROUP_ID: {"plan": "enterprise", "seats": 40}}},
    ),
    "scalar_group_value": lambda a, t: ({"Account": a}, _acct(a, t)),
    "numeric_group_id": lambda a, t: ({"Account": [int(a)]}, _acct(a, t)),
    "numeric_group_id_scalar": lambda a, t: ({"Account": int(a)}, _acct(a, t)),
    "null_in_id_list": lambda a, t: ({"Account": [None, a]}, _acct(a, t)),
    "all_null_id_list": lambda a, t: ({"Account": [None]}, _acct(a, t)),
    "empty_id_list": lambda a, t: ({"Account": []}, _acct(a, t)),
    "id_missing_from_group_properties": lambda a, t: ({"Account": [a, "0999"]}, _acct(a, t)),
    "type_missing_from_group_properties": lambda a, t: (
        {"Account": [a], "Workspace": ["000-ws-orphan"]}, _acct(a, t)),
    "extra_type_in_group_properties": lambda a, t: (
        {"Account": [a]}, {**_acct(a, t), "Team": {"team-growth": {"name": "Growth"}}}),
    "group_properties_entry_empty": lambda a, t: ({"Account": [a]}, _acct(a, {})),
    "group_properties_absent": lambda a, t: ({"Account": [a]}, _ABSENT),
    "group_properties_null": lambda a, t: ({"Account": [a]}, None),
    "group_properties_empty": lambda a, t: ({"Account": [a]}, {}),
    "groups_null": lambda a, t: (None, _acct(a, t)),
    "groups_empty": lambda a, t: ({}, _acct(a, t)),
    "groups_absent": lambda a, t: (_ABSENT, _acct(a, t)),
    "group_type_trait": lambda a, t: (
        {"Account": [a]}, _acct(a, {**t, "group_type": "SHOULD_BE_OVERRIDDEN"})),
}  # fmt: skip


def _offset_time(s: str) -> str:
    t = _fmt_us(_to_us(s) + 2 * _HOUR_US)
    return f"{t[:10]}T{t[11:]}+02:00"


#: Rewrites of ``event_time``/``client_event_time`` (canonical ``YYYY-MM-DD HH:MM:SS.ffffff``).
_TIME_SHAPES: dict[str, Callable[[str], str]] = {
    "time_3_digits": lambda s: s[:23],
    "time_no_fraction": lambda s: s[:19],
    "time_t_separator": lambda s: f"{s[:10]}T{s[11:]}",
    "time_z": lambda s: f"{s[:10]}T{s[11:23]}Z",
    "time_offset": _offset_time,
}


def _constant(value: str) -> Callable[[str], str]:
    return lambda _: value


#: ``user_id`` rewrites.
_USER_IDS: dict[str, Callable[[str], str]] = {
    **{f"placeholder_user_id:{v!r}": _constant(v) for v in PLACEHOLDER_SPELLINGS},
    "user_id_whitespace": lambda uid: f"  {uid} ",
    "user_id_leading_zeros": lambda _: "000042",
}


def _group_case(shape: GroupShape) -> CaseFn:
    def apply(g: _Generator, ev: Event) -> list[Event]:
        account = g.user.account
        for key, value in zip(
            ("groups", "group_properties"), shape(account.id, account.traits), strict=True
        ):
            if value is _ABSENT:
                del ev[key]
            else:
                ev[key] = value
        return [ev]

    return apply


def _time_case(fmt: Callable[[str], str]) -> CaseFn:
    def apply(g: _Generator, ev: Event) -> list[Event]:
        ev["event_time"] = ev["client_event_time"] = fmt(ev["event_time"])
        return [ev]

    return apply


def _user_id_case(make: Callable[[str], str]) -> CaseFn:
    def apply(g: _Generator, ev: Event) -> list[Event]:
        ev["user_id"] = make(ev["user_id"])
        return [ev]

    return apply


def _anonymous(g: _Generator, ev: Event) -> list[Event]:
    """A logged-out visitor: no user id, its own device, no groups (§7.1)."""
    ev.update(user_id=None, device_id=g.uuid(), amplitude_id=g.rng.randrange(10**11, 10**12),
              groups={}, group_properties={},
              user_properties={"initial_referrer": "https://www.google.com/",
                               "initial_utm_source": "google"})  # fmt: skip
    return [ev]


def _no_ids(g: _Generator, ev: Event) -> list[Event]:
    """Neither user id nor device id (§7.3)."""
    _anonymous(g, ev)
    ev["device_id"] = None
    return [ev]


def _identify(g: _Generator, ev: Event) -> list[Event]:
    props = g.user.props
    ev.update(event_type="$identify", event_properties={}, groups={}, group_properties={},
              session_id=-1, user_properties={
                  "$set": {"email": props["email"], "name": props["name"], "plan": props["plan"]},
                  "$setOnce": {"signup_date": props["signup_date"]}})  # fmt: skip
    return [ev]


def _groupidentify(g: _Generator, ev: Event) -> list[Event]:
    account = g.user.account
    ev.update(event_type="$groupidentify", event_properties={}, user_properties={},
              session_id=-1, groups={"Account": [account.id]},
              group_properties={"$set": {"plan": account.traits["plan"],
                                         "seats": account.traits["seats"]}})  # fmt: skip
    return [ev]


def _all_json_types(g: _Generator, ev: Event) -> list[Event]:
    account = g.user.account
    ev["group_properties"] = _acct(account.id, {**account.traits, **ALL_JSON_TYPES})
    ev["groups"] = {"Account": [account.id]}
    ev["event_properties"] = {**ev["event_properties"], **ALL_JSON_TYPES}
    ev["user_properties"] = {**ev["user_properties"], **ALL_JSON_TYPES}
    return [ev]


def _unicode(event_type: str, props: Event) -> CaseFn:
    """Unicode/emoji/RTL in the event type, property keys and values, and a trait."""

    def apply(g: _Generator, ev: Event) -> list[Event]:
        account = g.user.account
        ev["event_type"] = event_type
        ev["event_properties"] = dict(props)
        ev["groups"] = {"Account": [account.id]}
        ev["group_properties"] = _acct(account.id, {**account.traits, "motto": "Ünïcödé ✓ 🚀"})
        return [ev]

    return apply


def _session_none(g: _Generator, ev: Event) -> list[Event]:
    """``session_id: -1``, and an unrelated string ``event_properties.session_id`` (§7.13)."""
    ev["session_id"] = -1
    ev["event_properties"]["session_id"] = f"sess-{g.rng.getrandbits(32):08x}"
    return [ev]


def _late_arrival(g: _Generator, ev: Event) -> list[Event]:
    """An offline device: event_time days before server_upload_time."""
    event_us = _to_us(ev["event_time"]) - 3 * 24 * _HOUR_US - g.rng.randrange(_HOUR_US)
    ev["event_time"] = ev["client_event_time"] = _fmt_us(event_us)
    ev["session_id"] = event_us // 1000
    return [ev]


def _dup_same(g: _Generator, ev: Event) -> list[Event]:
    """The identical row twice, next to each other (so in the same member)."""
    return [ev, dict(ev)]


def _dup_other(g: _Generator, ev: Event) -> list[Event]:
    """A re-read of the same row, uploaded an hour later (so it lands in a later member)."""
    later = {key: _fmt_us(_to_us(ev[key]) + _HOUR_US + 300_000_000)
             for key in ("server_upload_time", "processed_time")}  # fmt: skip
    return [ev, {**ev, **later}]


def _dup_no_uuid(g: _Generator, ev: Event) -> list[Event]:
    """Same ($insert_id, device_id): ``uuid`` absent in the first row, null in the second."""
    copy = {**ev, "uuid": None}
    del ev["uuid"]
    return [ev, copy]


def _not_dup(g: _Generator, ev: Event) -> list[Event]:
    """Same $insert_id, different device_id, ``uuid`` null: *not* duplicates."""
    ev["uuid"] = None
    return [ev, {**ev, "device_id": g.uuid()}]


def _tie(g: _Generator, ev: Event) -> list[Event]:
    """Two events of ``usr_time_tie`` at the same event_time: the second row is the latest."""
    return [
        {**ev, "user_id": "usr_time_tie", "uuid": g.uuid(), "$insert_id": g.uuid(),
         "user_properties": {"email": "tie@tie.example", "name": f"Tie {label}"},
         "groups": {"Account": ["tie-account"]},
         "group_properties": _acct("tie-account", {"name": f"Tie {label} Co"})}
        for label in ("First", "Second")
    ]  # fmt: skip


def _set_field(key: str, make: Callable[[_Generator, Event], Any]) -> CaseFn:
    def apply(g: _Generator, ev: Event) -> list[Event]:
        ev[key] = make(g, ev)
        return [ev]

    return apply


#: Every edge case, in schedule order: name → function(generator, fresh event) → rows.
_CASES: dict[str, CaseFn] = {
    "anonymous": _anonymous,
    "no_ids": _no_ids,
    **{name: _user_id_case(make) for name, make in _USER_IDS.items()},
    "identify": _identify,
    "groupidentify": _groupidentify,
    **{name: _group_case(shape) for name, shape in _GROUP_SHAPES.items()},
    "all_json_types": _all_json_types,
    "unicode": _unicode(UNICODE_EVENT_TYPE, {"écran": "Aperçu", "名前": "レポート", "emoji 🎉": "🚀✨"}),
    "unicode_rtl": _unicode(RTL_EVENT_TYPE, {"שם": "שלום עולם", "note": "Zoë 🚀 مرحبا"}),
    "user_without_email": _set_field("user_properties", lambda g, ev: {
        k: v for k, v in ev["user_properties"].items() if k not in ("email", "name")}),
    "insert_id_null": _set_field("$insert_id", lambda g, ev: None),
    "insert_id_non_uuid": _set_field("$insert_id", lambda g, ev: f"ajs-{ev['uuid'][:13]}:CS4fUc2U9U"),
    "large_properties": _set_field("event_properties", lambda g, ev: dict(g.large_props)),
    "session_none": _session_none,
    **{name: _time_case(fmt) for name, fmt in _TIME_SHAPES.items()},
    "late_arrival": _late_arrival,
    "event_time_tie": _tie,
    "dup_uuid_same_member": _dup_same,
    "dup_uuid_other_member": _dup_other,
    "dup_insert_id_no_uuid": _dup_no_uuid,
    "insert_id_same_other_device": _not_dup,
}  # fmt: skip


#: Names of every edge case, in schedule order.
EDGE_CASES: tuple[str, ...] = tuple(_CASES)
_EDGE_RATE = 0.03


def generate_events(
    n: int,
    *,
    seed: int = 0,
    users: int | None = None,
    accounts: int | None = None,
    start: datetime | None = None,
    edge_cases: bool = True,
    event_bytes: int | None = None,
    hours: int = 24,
    project_id: int = DEFAULT_PROJECT_ID,
    volatile_traits: bool = False,
    roaming_users: bool = False,
) -> Iterator[Event]:
    """Yield ``n`` export-shaped Amplitude events, deterministically from ``seed``.

    ``server_upload_time`` rises evenly over ``hours`` hours from ``start`` (default
    2025-07-01 00:00 UTC). ``users``/``accounts`` default to ``n // 40`` and
    ``users // 5``. ``event_bytes`` pads ``event_properties["description"]`` so each JSON
    line is about that long. With ``edge_cases`` every case in :data:`EDGE_CASES` appears
    at least once when ``n >= 200`` (spread evenly), plus ~3 % more at random; those events
    carry ``event_properties["synthetic_case"]``.

    Two switches change the shape of the group data. ``volatile_traits`` adds a counter
    and a time to every group's traits, so no two events carry the same
    ``group_properties`` text. ``roaming_users`` puts each event in an account drawn at
    random, so every user appears in many accounts.

    Nested dicts (user/group properties, ``data``) are shared between events for speed:
    copy an event deeply before mutating its nested values.
    """
    g = _Generator(
        n, seed, users, accounts, start or DEFAULT_START, hours, project_id, event_bytes,
        volatile_traits, roaming_users,
    )  # fmt: skip
    rng, cases = g.rng, list(_CASES.items())
    stride = max(1, n // (len(cases) + 1))  # guaranteed pass: case k near event (k + 1) * stride
    next_case, next_at = 0, stride
    while g.i < n:
        name = None
        if edge_cases and next_case < len(cases) and g.i >= next_at:
            name, fn = cases[next_case]
            next_case, next_at = next_case + 1, next_at + stride
        elif edge_cases and rng.random() < _EDGE_RATE:
            name, fn = rng.choice(cases)
        batch = [g.normal()] if name is None else fn(g, g.normal())
        for ev in batch:
            if name is not None:
                ev["event_properties"][CASE_KEY] = name
            if event_bytes:
                g.pad(ev, event_bytes)
            if g.i >= n:
                return
            g.i += 1
            yield ev


# --------------------------------------------------------------------------- writers


_NAIVE_TIME = re.compile(r"(\d{4}-\d\d-\d\d)[ T](\d\d):\d\d(?::\d\d(?:\.\d+)?)?$")


def _hour_key(value: Any) -> tuple[str, int]:
    """(``YYYY-MM-DD``, hour) of a time in UTC; fast path for the export format, and the
    epoch for a missing or unparsable time."""
    if isinstance(value, str) and (m := _NAIVE_TIME.match(value)):
        return m[1], int(m[2])
    try:
        dt = _parse_time(value) or _EPOCH
    except (TypeError, ValueError):
        dt = _EPOCH
    return dt.strftime("%Y-%m-%d"), dt.hour


class _Spool:
    """Events serialised once to a temporary file and indexed by server-upload hour.

    Memory holds only two int arrays per hour (line offsets and lengths), so any number of
    events can be regrouped into hourly members without keeping them in memory. A ``str`` or
    ``bytes`` item is written verbatim as one line (e.g. a malformed one) in the current hour.
    """

    _FLUSH = 1 << 22

    def __init__(self, events: Iterable[Event | str | bytes], file: IO[bytes]) -> None:
        self.file, self.lock = file, threading.Lock()
        self.hours: dict[tuple[str, int], tuple[array, array]] = {}
        dumps, option = orjson.dumps, orjson.OPT_APPEND_NEWLINE
        buf: list[bytes] = []
        pos = buffered = 0
        last_prefix, key = None, _hour_key(None)
        arrays = self.hours.setdefault(key, (array("q"), array("q")))
        for ev in events:
            if isinstance(ev, str | bytes):
                line = ev.encode() if isinstance(ev, str) else ev
                line = line if line.endswith(b"\n") else line + b"\n"
            else:
                line = dumps(ev, option=option)
                stamp = ev.get("server_upload_time") or ev.get("event_time")
                canonical = isinstance(stamp, str) and len(stamp) == 26 and stamp[19] == "."
                prefix = stamp[:13] if canonical and isinstance(stamp, str) else None
                if prefix is None or prefix != last_prefix:
                    key, last_prefix = _hour_key(stamp), prefix
                    arrays = self.hours.setdefault(key, (array("q"), array("q")))
            arrays[0].append(pos)
            arrays[1].append(len(line))
            pos += len(line)
            buf.append(line)
            buffered += len(line)
            if buffered >= self._FLUSH:
                self.file.write(b"".join(buf))
                buf, buffered = [], 0
        self.file.write(b"".join(buf))
        self.file.flush()
        self.hours = {k: v for k, v in self.hours.items() if v[0]}  # drop the unused default

    def plan(
        self, members: int | None
    ) -> list[tuple[tuple[str, int], int, list[tuple[tuple[str, int], int, int]]]]:
        """Members as (hour named, part, [(hour, first line, end line), ...])."""
        hours = sorted(self.hours)
        counts = [len(self.hours[h][0]) for h in hours]
        total = sum(counts)
        k = len(hours) if members is None else min(members, total)
        if k >= len(hours):  # split the busiest hours into several parts
            parts = [1] * len(hours)
            heap: list[tuple[float, int]] = [(-c, i) for i, c in enumerate(counts)]
            heapq.heapify(heap)
            for _ in range(k - len(hours)):
                _, i = heapq.heappop(heap)
                parts[i] += 1
                heapq.heappush(heap, (-counts[i] / parts[i] if counts[i] > parts[i] else 0, i))
            return [
                (h, p, [(h, c * p // parts[i], c * (p + 1) // parts[i])])
                for i, (h, c) in enumerate(zip(hours, counts, strict=True))
                for p in range(parts[i])
            ]
        # merge consecutive hours into k groups of similar size, named after their first hour:
        # group j starts at the first hour whose preceding count reaches j/k of the total,
        # clamped so that every group keeps at least one hour.
        before = list(accumulate(counts, initial=0))
        cuts = [0]
        for j in range(1, k):
            first = next(i for i in range(len(hours)) if before[i] * k >= total * j)
            cuts.append(min(max(first, cuts[-1] + 1), len(hours) - (k - j)))
        cuts.append(len(hours))
        return [
            (hours[a], 0, [(h, 0, counts[i]) for i, h in enumerate(hours[a:b], a)])
            for a, b in pairwise(cuts)
        ]

    def chunks(self, slices: list[tuple[tuple[str, int], int, int]]) -> Iterator[bytes]:
        """The member's lines, reading contiguous runs of the spool in one go."""
        f = self.file
        for key, lo, hi in slices:
            offsets, lengths = self.hours[key]
            i = lo
            while i < hi:
                start = end = offsets[i]
                while i < hi and offsets[i] == end and end - start < self._FLUSH:
                    end += lengths[i]
                    i += 1
                with self.lock:  # members are compressed on several threads
                    f.seek(start)
                    data = f.read(end - start)
                yield data


_WORKERS = max(1, min(4, os.cpu_count() or 1))


def _member_name(hour: tuple[str, int], part: int, project_id: int) -> str:
    """The member's name; its ``n`` is stable, unique per hour, and not dense."""
    day, h = hour
    n = zlib.crc32(f"{project_id}_{day}_{h}".encode()) % 900 + 7 * part
    return member_name(project_id, day, h, n)


def _gzip_to(fileobj: IO[bytes], chunks: Iterable[bytes], compresslevel: int) -> None:
    """Stream ``chunks`` into ``fileobj`` as one deterministic gzip member (mtime 0, no name)."""
    with gzip.GzipFile(
        filename="", mode="wb", fileobj=fileobj, compresslevel=compresslevel, mtime=0
    ) as gz:
        for chunk in chunks:
            gz.write(chunk)


def _write_members(
    events: Iterable[Event | str | bytes],
    members: int | None,
    project_id: int,
    sink: Callable[[str, int], Any],
    compresslevel: int,
) -> list[str]:
    """Spool ``events``, then gzip each planned member on a thread pool (zlib releases the
    GIL) into a temporary file and copy the members, in order, to ``sink(name, size)``."""
    with tempfile.TemporaryFile() as tmp, ThreadPoolExecutor(_WORKERS) as pool:
        spool = _Spool(events, tmp)

        def compress(slices: list[tuple[tuple[str, int], int, int]]) -> IO[bytes]:
            out = tempfile.TemporaryFile()  # noqa: SIM115 (closed by the consumer below)
            _gzip_to(out, spool.chunks(slices), compresslevel)
            out.seek(0)
            return out

        names: list[str] = []
        pending: deque[tuple[str, Future[IO[bytes]]]] = deque()
        plan = iter(spool.plan(members))
        while True:
            while len(pending) < 2 * _WORKERS and (item := next(plan, None)):
                hour, part, slices = item
                pending.append(
                    (_member_name(hour, part, project_id), pool.submit(compress, slices))
                )
            if not pending:
                return names
            name, future = pending.popleft()
            with future.result() as gz, sink(name, os.fstat(gz.fileno()).st_size) as out:
                shutil.copyfileobj(gz, out, 1 << 20)
            names.append(name)


MALFORMED_KINDS = ("truncated_json", "json_array", "missing_event_time", "unparseable_event_time")


def with_malformed_lines(
    events: Iterable[Event], count: int, *, seed: int = 0
) -> Iterator[Event | str]:
    """``events`` with ``count`` malformed lines mixed in, deterministically from ``seed``.

    The lines cycle through :data:`MALFORMED_KINDS`: JSON cut in half, a JSON array, an
    event without ``event_time``, and one whose ``event_time`` is not a time. Each is
    written right after a real event, so it lands in that event's member.
    """
    rng = random.Random(f"malformed-{seed}")
    items = list(events)
    if count > len(items):
        raise ValueError(f"can't mix {count} malformed lines into {len(items)} events")
    after = dict(zip(sorted(rng.sample(range(len(items)), count)), range(count), strict=True))
    for i, event in enumerate(items):
        yield event
        if i in after:
            yield _malformed_line(event, MALFORMED_KINDS[after[i] % len(MALFORMED_KINDS)])


def _malformed_line(event: Event, kind: str) -> str:
    if kind == "truncated_json":
        text = orjson.dumps(event).decode()
        return text[: len(text) // 2]
    if kind == "json_array":
        return orjson.dumps([event.get("uuid"), event.get("event_type")]).decode()
    if kind == "missing_event_time":
        return orjson.dumps({k: v for k, v in event.items() if k != "event_time"}).decode()
    return orjson.dumps(
        {**event, "uuid": f"{event.get('uuid')}-bad", "event_time": "yesterday"}
    ).decode()


def write_export_zip(
    path: str | Path,
    events: Iterable[Event | str | bytes],
    *,
    project_id: int = DEFAULT_PROJECT_ID,
    members: int | None = None,
    compresslevel: int = 6,
) -> list[str]:
    """Write an Export API zip: ``<proj>/<proj>_<yyyy-mm-dd>_<H>#<n>.json.gz`` gzip NDJSON members.

    Events are grouped by the UTC hour of ``server_upload_time`` (one member per hour).
    ``members=k`` forces exactly k members (fewer if there are fewer events): the busiest
    hours are split into several members, or consecutive hours merged (a merged member is
    named after its first hour). A ``str``/``bytes`` item is written verbatim as a line of
    the current member (for malformed-line fixtures). Streams through temporary files, never
    holding the zip in memory; returns the member names in zip order.
    """
    with zipfile.ZipFile(path, "w") as zf:

        def sink(name: str, size: int) -> IO[bytes]:
            info = zipfile.ZipInfo(f"{project_id}/{name}", date_time=(2000, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            return zf.open(info, "w", force_zip64=size > (1 << 31) - (1 << 24))

        return [
            f"{project_id}/{n}"
            for n in _write_members(events, members, project_id, sink, compresslevel)
        ]


def write_s3_layout(
    directory: str | Path,
    events: Iterable[Event | str | bytes],
    *,
    project_id: int = DEFAULT_PROJECT_ID,
    members: int | None = None,
    compresslevel: int = 6,
) -> list[Path]:
    """Write the S3/GCS export layout: hourly ``<proj>_<yyyy-mm-dd>_<H>#<n>.json.gz`` files."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    names = _write_members(
        events, members, project_id, lambda name, size: (directory / name).open("wb"), compresslevel
    )
    return [directory / n for n in names]


def write_ndjson_gz(
    path: str | Path, events: Iterable[Event | str | bytes], *, compresslevel: int = 6
) -> int:
    """Write one gzip NDJSON file (deterministic bytes); returns the number of lines.

    A ``str``/``bytes`` item is written verbatim as a line (for malformed-line fixtures).
    """
    count = 0

    def chunks() -> Iterator[bytes]:
        nonlocal count
        dumps, option = orjson.dumps, orjson.OPT_APPEND_NEWLINE
        buf: list[bytes] = []
        for ev in events:
            if isinstance(ev, str | bytes):
                line = ev.encode() if isinstance(ev, str) else ev
                buf.append(line if line.endswith(b"\n") else line + b"\n")
            else:
                buf.append(dumps(ev, option=option))
            if len(buf) == 2048:
                count += len(buf)
                yield b"".join(buf)
                buf = []
        count += len(buf)
        yield b"".join(buf)

    with open(path, "wb") as f:
        _gzip_to(f, chunks(), compresslevel)
    return count


# --------------------------------------------------------------------------- warehouse

_JSON_COLUMNS = frozenset(
    {
        "event_properties",
        "user_properties",
        "groups",
        "group_properties",
        "data",
        "global_user_properties",
        "plan",
        "amplitude_attribution_ids",
    }
)
_INT_COLUMNS = frozenset({"amplitude_id", "app", "event_id", "session_id", "$schema"})
_FLOAT_COLUMNS = frozenset({"location_lat", "location_lng", "sample_rate"})
_BOOL_COLUMNS = frozenset({"paying", "is_attribution_event"})
_FIVETRAN_NAMES = {
    "$insert_id": "_insert_id",
    "$insert_key": "_insert_key",
    "$schema": "schema",
    "adid": "ad_id",
}


def _time_column(values: list[Any], style: WarehouseStyle) -> pl.Series:
    parsed = [_parse_time(v) for v in values]
    if style == "snowflake":  # TIMESTAMP_NTZ, UTC
        return pl.Series(parsed, dtype=pl.Datetime("us"))
    if style == "bigquery":  # TIMESTAMP
        return pl.Series(parsed, dtype=pl.Datetime("us")).dt.replace_time_zone("UTC")
    if style == "fivetran":  # 2021-12-13T05:35:51.648
        return pl.Series(
            [d and d.isoformat(timespec="milliseconds") for d in parsed], dtype=pl.String
        )
    # airbyte: RFC 3339, 2020-11-24T09:59:58.880000+00:00
    return pl.Series(
        [d and d.replace(tzinfo=UTC).isoformat(timespec="microseconds") for d in parsed],
        dtype=pl.String,
    )


def to_warehouse_frame(
    events: Iterable[Event], *, style: WarehouseStyle = "snowflake"
) -> pl.DataFrame:
    """The events as a warehouse extract would return them.

    Nested columns are JSON text. ``snowflake``: UPPER-CASE names, ``$`` dropped
    (``INSERT_ID``), TIMESTAMP_NTZ datetimes, ``PAYING`` as text. ``bigquery``: same
    lower-case, UTC datetimes. ``fivetran``: ``_insert_id``/``schema``/``ad_id``, times as
    ``2021-12-13T05:35:51.648`` strings. ``airbyte``: export names, RFC 3339 ``+00:00`` strings.
    """
    if style not in ("snowflake", "bigquery", "fivetran", "airbyte"):
        raise ValueError(f"unknown warehouse style {style!r}")
    rows = list(events)
    keys = list(EXPORT_KEYS) + sorted({k for ev in rows for k in ev} - set(EXPORT_KEYS))
    columns: dict[str, pl.Series] = {}
    for key in keys:
        values = [ev.get(key) for ev in rows]
        if key in TIME_KEYS:
            series = _time_column(values, style)
        elif key in _JSON_COLUMNS or any(isinstance(v, dict | list) for v in values):
            series = pl.Series(
                [None if v is None else orjson.dumps(v).decode() for v in values], dtype=pl.String
            )
        elif key in _BOOL_COLUMNS and style in ("snowflake", "bigquery"):
            series = pl.Series(
                [None if v is None else str(v).lower() for v in values], dtype=pl.String
            )
        elif key in _BOOL_COLUMNS:
            series = pl.Series(values, dtype=pl.Boolean)
        elif key in _INT_COLUMNS:
            series = pl.Series(values, dtype=pl.Int64)
        elif key in _FLOAT_COLUMNS:
            series = pl.Series(values, dtype=pl.Float64)
        else:
            series = pl.Series(
                [v if v is None or isinstance(v, str) else str(v) for v in values], dtype=pl.String
            )
        name = _FIVETRAN_NAMES.get(key, key) if style == "fivetran" else key
        if style in ("snowflake", "bigquery"):
            name = name.lstrip("$")
        columns[name.upper() if style == "snowflake" else name] = series
    return pl.DataFrame(columns)


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    """``python -m accoil_transform.testing.synthetic``: write a synthetic export."""
    parser = argparse.ArgumentParser(
        prog="python -m accoil_transform.testing.synthetic",
        description="Write a deterministic synthetic Amplitude export.",
    )
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        help="output .zip (Export API), .json.gz/.jsonl.gz (one file) or folder (S3 layout)",
    )
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--users", type=int)
    parser.add_argument("--accounts", type=int)
    parser.add_argument("--hours", type=int, default=24, help="server_upload_time span")
    parser.add_argument("--event-bytes", type=int, help="pad each JSON line to about this size")
    parser.add_argument("--members", type=int, help="force this many zip members / files")
    parser.add_argument("--project-id", type=int, default=DEFAULT_PROJECT_ID)
    parser.add_argument("--no-edge-cases", action="store_true")
    parser.add_argument(
        "--volatile-traits", action="store_true", help="group traits that change on every event"
    )
    parser.add_argument(
        "--roaming-users", action="store_true", help="each event in a random account"
    )
    parser.add_argument("--compresslevel", type=int, default=6)
    parser.add_argument(
        "--malformed-lines", type=int, default=0, help="mix in this many malformed lines"
    )
    args = parser.parse_args(argv)

    began = time.perf_counter()
    generated = generate_events(
        args.events,
        seed=args.seed,
        users=args.users,
        accounts=args.accounts,
        edge_cases=not args.no_edge_cases,
        event_bytes=args.event_bytes,
        hours=args.hours,
        project_id=args.project_id,
        volatile_traits=args.volatile_traits,
        roaming_users=args.roaming_users,
    )
    events: Iterable[Event | str] = generated
    if args.malformed_lines:
        events = with_malformed_lines(generated, args.malformed_lines, seed=args.seed)
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    common = {
        "project_id": args.project_id,
        "members": args.members,
        "compresslevel": args.compresslevel,
    }
    if out.suffix == ".zip":
        written = f"{len(write_export_zip(out, events, **common))} members"
    elif out.suffix == ".gz":
        write_ndjson_gz(out, events, compresslevel=args.compresslevel)
        written = "1 file"
    else:
        written = f"{len(write_s3_layout(out, events, **common))} files"
    seconds = time.perf_counter() - began
    print(
        f"{out}: {args.events} events, {written} in {seconds:.2f}s "
        f"({args.events / max(seconds, 1e-9):,.0f} events/s)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
