"""The delivery engine: send call batches to Accoil, concurrently, once each.

Ordering. Batches are consumed in input order. A change of kind (identify → group
→ track) is a barrier: the first call of a kind starts only after every earlier call
was acknowledged or finally failed, so users and accounts exist before their events.
Within a kind, batches are pipelined (no barrier between batches of one kind, so one
slow call does not idle the pool), and track calls of the same user form a chain: the
next one starts only after the previous one is acknowledged or finally failed, so a
user's events arrive in input (event-time) order even across retries. Calls of
different users run concurrently, so concurrency is bounded by the number of distinct
users in the window: upstream should order track calls by time, not by user.

Backpressure. At most ``window`` calls are dispatched and not finished; the batch
iterator is read lazily, so memory does not grow with the input.

Exactly once. A call takes one of ``concurrency`` slots before its first try and
gives it back once it failed for good, or once its id is committed to the ledger
(group commit, on the ledger's writer thread). So at any time at most
``concurrency`` calls are sent but not in the ledger, and after a kill a resumed run
sends at most that many calls again.
"""

from __future__ import annotations

import logging
import math
import queue
import random
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson
from tqdm import tqdm

from accoil_transform.batches import CallBatch
from accoil_transform.formats import AuthScheme, CallKind

from .client import DEFAULT_TIMEOUT, AccoilClient, DeliveryError, HttpResult, Secret, TransportError
from .ledger import Ledger
from .retry import RetryPolicy

log = logging.getLogger("accoil_transform.delivery")

AUTH_STATUSES = frozenset({401, 403})


class AuthenticationError(DeliveryError):
    """Accoil refused the API key; the run stopped instead of dead-lettering every call."""


# --------------------------------------------------------------------------- options, report


@dataclass
class DeliveryOptions:
    """How :func:`send` delivers (the CLI flags map onto these)."""

    concurrency: int = 16
    max_rate: float | None = None
    """Calls per second at most (``None``: no limit besides the 429 slow-down)."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: tuple[float, float] = DEFAULT_TIMEOUT
    """(connect, read) timeouts of every request, in seconds."""
    ledger_path: str | Path | None = None
    """SQLite ledger of acknowledged ids; ``None`` sends everything."""
    dead_letter_path: str | Path | None = None
    """NDJSON file for calls that finally failed; ``None`` only counts them."""
    auth_failure_threshold: int = 20
    """Stop after this many 401/403 in a row with no success in between."""
    progress: bool = False
    """Show a tqdm bar on stderr, if it is a terminal."""
    total_calls: int | None = None
    """Expected number of calls, for the progress bar's total."""
    window: int | None = None
    """Calls dispatched but not finished at most; default ``4 * concurrency``."""

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.max_rate is not None and not self.max_rate > 0:
            raise ValueError("max_rate must be positive")
        if self.auth_failure_threshold < 1:
            raise ValueError("auth_failure_threshold must be at least 1")
        if self.window is not None and self.window < self.concurrency:
            raise ValueError("window must be at least the concurrency")

    @property
    def effective_window(self) -> int:
        return self.window or 4 * self.concurrency


@dataclass
class EndpointStats:
    """Counts for one endpoint (call kind). ``sent + skipped + failed`` = calls seen."""

    sent: int = 0
    """Acknowledged by Accoil in this run."""
    skipped: int = 0
    """Already in the ledger: acknowledged by an earlier run."""
    failed: int = 0
    """Finally not acknowledged: rejected (4xx) or out of retries."""
    rejected: int = 0
    """Of ``failed``: final 4xx answers (dead-lettered by policy, not worth a re-run)."""
    retried: int = 0
    """Extra tries (requests beyond the first of each call)."""
    dead_lettered: int = 0
    """Failed calls written to the dead-letter file."""
    throttled: int = 0
    """429 responses received."""
    duration_s: float = 0.0

    @property
    def calls_per_s(self) -> float:
        return self.sent / self.duration_s if self.duration_s > 0 else 0.0

    def add(self, other: EndpointStats) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {
            "duration_s": round(self.duration_s, 3),
            "calls_per_s": round(self.calls_per_s, 1),
        }


@dataclass
class DeliveryReport:
    """What :func:`send` did, per endpoint and in total."""

    endpoints: dict[str, EndpointStats] = field(default_factory=dict)
    duration_s: float = 0.0
    stopped: str | None = None
    """Why the run stopped early, if it did."""

    def endpoint(self, kind: str) -> EndpointStats:
        return self.endpoints.setdefault(kind, EndpointStats())

    @property
    def total(self) -> EndpointStats:
        total = EndpointStats()
        for stats in self.endpoints.values():
            total.add(stats)
        total.duration_s = self.duration_s
        return total

    @property
    def calls_per_s(self) -> float:
        return self.total.calls_per_s

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": {kind: s.to_dict() for kind, s in self.endpoints.items()},
            "total": self.total.to_dict(),
            "duration_s": round(self.duration_s, 3),
            "calls_per_s": round(self.calls_per_s, 1),
            "stopped": self.stopped,
        }


# --------------------------------------------------------------------------- flow control


class FlowControl:
    """Admits requests: a ``max_rate`` token bucket, an AIMD window and 429 pauses.

    The window of requests in flight starts at ``concurrency``; a 429 halves it (at
    most once per window's worth of responses) and pauses every new request for the
    ``Retry-After`` (or a backoff); each other success grows it by ``1/window`` back
    up to ``concurrency``. The bucket holds one token, so requests are spaced by
    ``1/max_rate`` at least.
    """

    def __init__(
        self,
        concurrency: int,
        max_rate: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = concurrency
        self._window = float(concurrency)
        self._interval = 1.0 / max_rate if max_rate else 0.0
        self._clock = clock
        self._cond = threading.Condition()
        self._inflight = 0
        self._next_slot = 0.0
        self._resume_at = 0.0
        self._responses = 0
        self._last_cut = -math.inf
        self._closed = False

    @property
    def window(self) -> float:
        return self._window

    @property
    def resume_at(self) -> float:
        return self._resume_at

    def acquire(self) -> bool:
        """Wait for a turn to send; ``False`` once :meth:`close` was called."""
        with self._cond:
            while True:
                if self._closed:
                    return False
                now = self._clock()
                if now < self._resume_at:
                    self._cond.wait(self._resume_at - now)
                elif self._inflight >= int(self._window):
                    self._cond.wait()
                else:
                    break
            self._inflight += 1
            slot = max(now, self._next_slot)
            self._next_slot = slot + self._interval
        if slot > now:
            time.sleep(slot - now)
        return True

    def release(self, *, ok: bool = False, throttled: bool = False, pause: float = 0.0) -> None:
        """End a request: ``ok`` (2xx) grows the window, ``throttled`` (429) cuts it."""
        with self._cond:
            self._inflight -= 1
            self._responses += 1
            if throttled:
                if self._responses - self._last_cut >= self._window:
                    self._window = max(1.0, self._window / 2)
                    self._last_cut = self._responses
                if pause > 0:
                    self._resume_at = max(self._resume_at, self._clock() + pause)
                self._cond.notify_all()
            else:
                if ok and self._window < self.limit:
                    self._window = min(float(self.limit), self._window + 1.0 / self._window)
                self._cond.notify(max(1, int(self._window) - self._inflight))

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


# --------------------------------------------------------------------------- the run


@dataclass(slots=True)
class _Call:
    kind: CallKind
    url: str
    call_id: str
    body: bytes
    user: str | None


def _user_of(body: bytes) -> str | None:
    """The ``userId`` (``user_id`` in v1) of a call body, to chain a user's tracks."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    user = obj.get("userId", obj.get("user_id"))
    return None if user is None else str(user)


class _DeadLetters:
    """Append-only NDJSON of finally failed calls, opened on first use."""

    def __init__(self, path: Path | None, secret: Secret) -> None:
        self.path = path
        self._secret = secret
        self._file: IO[bytes] | None = None
        self._lock = threading.Lock()

    def write(self, call: _Call, status: int | None, response_start: str) -> bool:
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


class _Run:
    """The state of one :func:`send` call: dispatcher (caller thread) plus workers."""

    def __init__(self, client: AccoilClient, options: DeliveryOptions) -> None:
        self.client = client
        self.opts = options
        self.report = DeliveryReport()
        self.ledger = Ledger(options.ledger_path) if options.ledger_path else None
        self.dead = _DeadLetters(
            Path(options.dead_letter_path) if options.dead_letter_path else None, client.secret
        )
        self.flow = FlowControl(options.concurrency, options.max_rate)
        self.bar = tqdm(
            total=options.total_calls,
            unit="call",
            file=sys.stderr,
            mininterval=0.5,
            disable=not (options.progress and sys.stderr.isatty()),
        )
        self._cond = threading.Condition()  # guards everything below and the stats
        self._outstanding = 0
        window = options.effective_window
        self._low_water = window - max(1, window // 4)
        self._chains: dict[str, deque[_Call]] = {}
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._abort = threading.Event()
        self._failure: BaseException | None = None
        self._acked_any = False
        self._auth_streak = 0
        self._held: list[tuple[_Call, int | None, str]] = []
        self._throttle_streak = 0
        self._rng = random.Random()
        # Calls sent (or about to be) whose ids are not yet committed to the ledger.
        self._slots = threading.Semaphore(options.concurrency)

    # ------------------------------------------------------------------ dispatcher

    def run(self, batches: Iterable[CallBatch]) -> DeliveryReport:
        started = time.monotonic()
        workers = [
            threading.Thread(target=self._work, name=f"accoil-send-{i}", daemon=True)
            for i in range(self.opts.concurrency)
        ]
        for worker in workers:
            worker.start()
        try:
            self._dispatch(batches)
        except BaseException as exc:  # KeyboardInterrupt too: stop cleanly, then re-raise
            self._fail(exc)
            raise
        finally:
            self._wait_idle()
            for _ in workers:
                self._queue.put(None)
            for worker in workers:
                worker.join(timeout=sum(self.opts.timeout) + 5)
            self.report.duration_s = time.monotonic() - started
            self._close()
        if self._failure is not None:
            if isinstance(self._failure, DeliveryError):
                self._failure.report = self.report
            raise self._failure
        return self.report

    def _dispatch(self, batches: Iterable[CallBatch]) -> None:
        kind: str | None = None
        kind_started = 0.0
        window = self.opts.effective_window
        for batch in batches:
            if self._abort.is_set():
                break
            if batch.kind != kind:
                self._wait_idle()
                if kind is not None:
                    self.report.endpoint(kind).duration_s += time.monotonic() - kind_started
                kind, kind_started = batch.kind, time.monotonic()
                self.bar.set_description(kind)
            stats = self.report.endpoint(kind)
            todo = set(self.ledger.filter_unsent(batch.call_ids)) if self.ledger else None
            if todo is not None and len(todo) < len(batch):
                with self._cond:
                    stats.skipped += len(batch) - len(todo)
                    self.bar.update(len(batch) - len(todo))
            for call_id, body in zip(batch.call_ids, batch.bodies, strict=True):
                if todo is not None and call_id not in todo:
                    continue
                user = _user_of(body) if kind == "track" else None
                if not self._submit(_Call(kind, batch.url, call_id, body, user), window):
                    break
        self._wait_idle()
        if kind is not None:
            self.report.endpoint(kind).duration_s += time.monotonic() - kind_started

    def _submit(self, call: _Call, window: int) -> bool:
        with self._cond:
            while self._outstanding >= window and not self._abort.is_set():
                self._cond.wait()
            if self._abort.is_set():
                return False
            self._outstanding += 1
            if call.user is not None:
                chain = self._chains.get(call.user)
                if chain is not None:  # the user has a call in flight: queue behind it
                    chain.append(call)
                    return True
                self._chains[call.user] = deque()
        self._queue.put(call)
        return True

    def _wait_idle(self) -> None:
        with self._cond:
            while self._outstanding > 0:
                self._cond.wait()

    def _fail(self, exc: BaseException) -> None:
        with self._cond:
            if self._failure is None:
                self._failure = exc
                if self.report.stopped is None:
                    self.report.stopped = str(exc) or type(exc).__name__
            self._abort.set()
            self.flow.close()
            self._cond.notify_all()

    def _close(self) -> None:
        self.bar.close()
        self.dead.close()
        if self.ledger is not None:
            try:
                self.ledger.close()
            except DeliveryError as exc:
                if self._failure is None:
                    self._failure = exc

    # ------------------------------------------------------------------ workers

    def _work(self) -> None:
        while (call := self._queue.get()) is not None:
            while call is not None:
                if self._take_slot():
                    acked = False
                    try:
                        acked = self._deliver(call)
                    except BaseException as exc:
                        self._fail(exc)
                    finally:
                        if not acked:
                            self._slots.release()
                call = self._next_of_chain(call)

    def _take_slot(self) -> bool:
        """Wait for a ledger slot; ``False`` if the run was stopped meanwhile."""
        while not self._abort.is_set():
            if self._slots.acquire(timeout=0.5):
                if not self._abort.is_set():
                    return True
                self._slots.release()
        return False

    def _next_of_chain(self, call: _Call) -> _Call | None:
        """Mark ``call`` finished; return the same user's next call, if any."""
        with self._cond:
            self._outstanding -= 1
            nxt = None
            if call.user is not None:
                chain = self._chains[call.user]
                if chain:
                    nxt = chain.popleft()
                else:
                    del self._chains[call.user]
            # Wake the dispatcher when the window has drained by a quarter (it then
            # refills it in one go) or is empty; not on every call.
            if self._outstanding in (0, self._low_water):
                self._cond.notify_all()
        return nxt

    def _deliver(self, call: _Call) -> bool:
        """Send ``call`` until it is acknowledged (``True``) or finally failed."""
        policy = self.opts.retry
        stats = self.report.endpoint(call.kind)
        first = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            if not self.flow.acquire():
                return False
            result: HttpResult | None = None
            try:
                result = self.client.post(call.url, call.body)
            except TransportError as exc:
                self.flow.release()
                detail = str(exc)
            except BaseException:
                self.flow.release()
                raise
            else:
                detail = result.response_start
                self._after_response(result, stats)
            if result is not None and result.ok:
                self._acknowledge(call, stats)
                return True
            status = None if result is None else result.status
            if policy.is_retryable(status):
                retry_after = None if result is None else result.retry_after
                delay = policy.delay(attempt, retry_after, self._rng)
                if not policy.allows(attempt, time.monotonic() - first, delay):
                    self._give_up(call, stats, status, detail, "retries exhausted")
                    return False
                with self._cond:
                    stats.retried += 1
                log.debug("call %s: %s, retry in %.2fs", call.call_id, status or detail, delay)
                if self._abort.wait(delay):
                    return False
            elif status in AUTH_STATUSES:
                self._auth_failed(call, stats, status, detail)
                return False
            else:
                self._give_up(call, stats, status, detail, "rejected")
                return False

    def _after_response(self, result: HttpResult, stats: EndpointStats) -> None:
        """Feed flow control: a 429 pauses everyone and cuts the window."""
        if result.status != 429:
            if result.ok:
                self._throttle_streak = 0
            self.flow.release(ok=result.ok)
            return
        with self._cond:
            stats.throttled += 1
            self._throttle_streak += 1
            streak = self._throttle_streak
        pause = result.retry_after
        if pause is None:
            pause = self.opts.retry.backoff(streak, self._rng)
        self.flow.release(throttled=True, pause=min(pause, self.opts.retry.max_retry_after))

    def _acknowledge(self, call: _Call, stats: EndpointStats) -> None:
        """Count ``call`` as sent; its slot is given back once the ledger has it."""
        if self.ledger is not None:
            self.ledger.record((call.call_id,), on_commit=self._slots.release)
        else:
            self._slots.release()
        with self._cond:
            stats.sent += 1
            self._auth_streak = 0
            held, self._held = self._held, []
            self._acked_any = True
            self.bar.update(1)
        try:  # the slot is the ledger's now: nothing below may raise into _work
            for args in held:  # the key works: earlier 401/403 were about those calls
                self._dead_letter(*args)
        except Exception as exc:
            self._fail(exc)

    def _give_up(
        self, call: _Call, stats: EndpointStats, status: int | None, detail: str, why: str
    ) -> None:
        log.warning("call %s (%s) failed, %s: %s", call.call_id, call.kind, why, status or detail)
        with self._cond:
            stats.failed += 1
            if why == "rejected":
                stats.rejected += 1
            self.bar.update(1)
        self._dead_letter(call, status, detail)

    def _dead_letter(self, call: _Call, status: int | None, detail: str) -> None:
        if self.dead.write(call, status, detail):
            with self._cond:
                self.report.endpoint(call.kind).dead_lettered += 1

    def _auth_failed(self, call: _Call, stats: EndpointStats, status: int, detail: str) -> None:
        """Hold 401/403s back until a call succeeds; too many in a row stop the run."""
        with self._cond:
            stats.failed += 1
            self.bar.update(1)
            self._auth_streak += 1
            streak = self._auth_streak
            hold = not self._acked_any
            if hold:
                self._held.append((call, status, detail))
        if not hold:
            self._dead_letter(call, status, detail)
        if streak >= self.opts.auth_failure_threshold:
            where = "the first" if not self._acked_any else "the last"
            self._fail(
                AuthenticationError(
                    f"Accoil refused the API key: {where} {streak} calls got HTTP 401/403 "
                    f"(last: {status} on {call.kind}). Check ACCOIL_API_KEY / --api-key: it "
                    "must be the Ingress API key of the product (Accoil > Account > General "
                    "settings). The run stopped; nothing more was sent."
                )
            )


# --------------------------------------------------------------------------- entry point


def send(
    batches: Iterable[CallBatch],
    *,
    api_key: str,
    auth: AuthScheme,
    options: DeliveryOptions | None = None,
) -> DeliveryReport:
    """Deliver ``batches`` (identify, then group, then track) and report what happened.

    Raises :class:`AuthenticationError` when the key is refused, and
    :class:`DeliveryError` when delivery cannot go on (TLS, ledger); either carries
    the partial report as ``.report``. Calls that finally fail do not raise: they are
    counted, and written to the dead-letter file if one is set.
    """
    if not api_key:
        raise ValueError("an API key is required to send calls (set ACCOIL_API_KEY)")
    opts = options or DeliveryOptions()
    client = AccoilClient(
        Secret(api_key), AuthScheme(auth), pool_size=opts.concurrency, timeout=opts.timeout
    )
    with client:
        return _Run(client, opts).run(batches)
