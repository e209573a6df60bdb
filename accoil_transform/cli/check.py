"""accoil-transform check: does the Accoil base URL answer, and does it take the key?

It sends one request that records no data: POST <base URL>/segment with the empty JSON
object {} and the key as HTTP Basic credentials, which is how Accoil's Segment
destination tests a connection. An empty body is no call (it has no "type"), so nothing
can be stored; the v2 and v1 endpoints are not used, since a body they accept records an
event. How the answer is read:

* 2xx: the URL answers and the key was not refused (Accoil may check a key after
  answering: Accoil notes that a wrong one can still get 202);
* 400: the key passed and the empty body was refused, as a server that checks the key
  before the body may answer; a 400 about the header itself is an authentication
  failure (the local stand-in answers 200 once the key passes, 401 for a wrong key);
* 401 or 403: the key is refused (exit 4);
* a connection error, a timeout, 408, 429 or 5xx: down or unreachable (exit 7);
* anything else (404, a redirect...): the base URL is not Accoil's ingress (exit 2).

The message names the base URL, never the key.

Exit codes: 0 the base URL answers and the key is accepted; 2 usage or configuration
error (no API key, a URL that is not Accoil's); 4 Accoil refused the key; 7 Accoil is down
or unreachable.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import Exit, fail, plain
from ._settings import BY_NAME

#: The partner endpoint whose empty POST tests authentication.
CHECK_PATH = "/segment"
#: The start of the 400 a malformed ``Authorization`` header gets (Segment's test mock).
_BAD_HEADER = "api key should start with"


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``check`` subcommand; its handler is ``args.func(args) -> int``."""
    p = sub.add_parser(
        "check",
        help="pre-flight: check that the Accoil base URL answers and takes the key (sends no data)",
        description=plain(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", type=Path, default=None, help="TOML config file")
    for name, metavar, text in (
        ("api_key", "KEY", "the Accoil API key to check"),
        ("base_url", "URL", BY_NAME["base_url"].help),
        ("timeout", "SECONDS", BY_NAME["timeout"].help),
    ):
        setting = BY_NAME[name]
        p.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=setting.kind,
            default=None,
            metavar=metavar,
            help=f"{text} (env: ${setting.env})",
        )
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Send the empty ``/segment`` POST and turn its answer into an exit code."""
    import requests

    from .._destination import Destination
    from ..errors import ConfigError
    from ._common import settings_from_args

    try:
        settings = settings_from_args(args)
        if not settings["api_key"]:
            raise ConfigError(
                "no Accoil API key: set ACCOIL_API_KEY, --api-key or [delivery] api_key"
            )
        destination = Destination.resolve(settings["api_key"], settings["base_url"])
    except ConfigError as exc:
        return fail("check", exc, Exit.USAGE)
    assert destination.credential is not None
    secret = destination.credential
    base_url = destination.base_url
    url = base_url + CHECK_PATH
    try:
        response = requests.post(
            url,
            json={},
            auth=(secret.reveal(), ""),
            timeout=(min(10.0, settings["timeout"]), settings["timeout"]),
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        reason = secret.scrub(str(exc), 300)
        return fail("check", f"{base_url} is unreachable: {reason}", Exit.UNREACHABLE)
    status = response.status_code
    answer = secret.scrub(response.text, 200).strip()
    said = f" ({answer})" if answer else ""
    if 200 <= status < 300 or (status == 400 and _BAD_HEADER not in answer.lower()):
        print(
            f"OK: {base_url} answers and accepted the API key "
            f"(an empty POST {CHECK_PATH}: {status}, nothing recorded)"
        )
        return Exit.OK
    if status in (400, 401, 403):
        return fail("check", f"{base_url} refused the API key: {status}{said}", Exit.AUTH)
    if status in (408, 429) or status >= 500:
        return fail("check", f"{base_url} is down or overloaded: {status}{said}", Exit.UNREACHABLE)
    return fail(
        "check",
        f"POST {url} answered {status}{said}: is {base_url} Accoil's ingress? (check --base-url)",
        Exit.USAGE,
    )
