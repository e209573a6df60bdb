"""The delivery engine: send call batches to Accoil, concurrently, once each.

Ordering. Batches are consumed in input order. A change of kind (identify → group
→ track) is a barrier: the first call of a kind starts only after every earlier call
was acknowledged or finally failed, so users and accounts exist before their events.
Within a kind any call fills any free slot: every call carries its own timestamp, so
Accoil needs no order among them, and a few busy users can't hold the pool up.

One event loop does the sending (in a thread of its own, so :func:`send` can be called
from sync code, a notebook whose loop is running, or a Spark task); the caller's batch
iterator is advanced in a worker thread, one batch ahead.

Exactly once. A call takes one of ``concurrency`` slots before its first try and gives
it back once it failed for good, or once its id is committed to the ledger (group
commit). So at any time at most ``concurrency`` calls are sent but not in the ledger, and
after a kill a resumed run sends at most that many calls again.
Another :class:`AckSink` may call back at once and commit in groups (the Spark
acknowledgements table): then its pending group adds to that bound.

Stopping. A 401/403 on the first calls stops the run (the key is wrong). When no healthy
answer came for ``circuit_seconds`` while calls were waiting (connection errors,
timeouts, 5xx only: Accoil is down or unreachable), the run stops with
:class:`UnreachableError`; calls not acknowledged stay unsent and not dead-lettered, so a
re-run sends them. SIGINT/SIGTERM stop it cleanly (:class:`Interrupted`): calls in
flight get a few seconds to finish, the ledger is flushed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from .._destination import Destination
from .._secret import Secret
from ..calls import AuthScheme, CallBatch, CallKind
from ..config import DeliveryOptions
from ..errors import AuthenticationError, DeliveryError, Interrupted, UnreachableError
from ._client import AccoilClient, HttpResult, TransportError
from ._dead_letter import DeadLetters
from ._flow import FlowControl
from ._ledger import AckSink, Ledger
from ._report import DeliveryReport, Tally

log = logging.getLogger("accoil_transform.delivery")

AUTH_STATUSES = frozenset({401, 403})
#: Seconds the calls in flight get to finish after a signal.
_GRACE_SECONDS = 5.0


@dataclass(slots=True)
class Call:
    kind: CallKind
    url: str
    call_id: str
    body: bytes


class _Engine:
    """The state of one :func:`send`: a dispatcher and one task per call in flight, all
    on one event loop."""

    def __init__(
        self,
        client: AccoilClient,
        options: DeliveryOptions,
        ledger: AckSink | None,
        total: int | None,
    ) -> None:
        self.client = client
        self.opts = options
        self.ledger = ledger
        self.tally = Tally()
        self.dead = DeadLetters(
            Path(options.dead_letter_path) if options.dead_letter_path else None, client.secret
        )
        self.flow = FlowControl(options.concurrency, options.max_rate)
        self.bar = tqdm(
            total=total,
            unit="call",
            file=sys.stderr,
            mininterval=0.5,
            disable=not (options.progress and sys.stderr.isatty()),
        )
        self._rng = random.Random()
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(options.concurrency)
        self._acks: list[str] = []
        self._failure: BaseException | None = None
        self._stop = asyncio.Event()
        self._acked_any = False
        self._auth_streak = 0
        self._held: list[tuple[Call, int | None, str]] = []
        self._throttle_streak = 0
        self._last_healthy = time.monotonic()
        self._done = 0  # calls finished since the progress bar was last moved

    # ------------------------------------------------------------------ dispatcher

    async def run(self, batches: Iterable[CallBatch]) -> DeliveryReport:
        started = time.monotonic()
        watchdog = asyncio.create_task(self._watch())
        try:
            await self._dispatch(iter(batches))
        finally:
            watchdog.cancel()
            await self._settle()
            report = self.tally.report(time.monotonic() - started, self._stopped())
            self.bar.close()
            self.dead.close()
        if self._failure is not None:
            if isinstance(self._failure, DeliveryError):
                self._failure.report = report
            raise self._failure
        return report

    async def _dispatch(self, batches: Iterator[CallBatch]) -> None:
        loop = asyncio.get_running_loop()
        upcoming = loop.run_in_executor(None, next, batches, None)
        kind: str | None = None
        kind_started = 0.0
        try:
            while (batch := await upcoming) is not None:
                if self._stop.is_set():
                    return
                upcoming = loop.run_in_executor(None, next, batches, None)  # one ahead
                if batch.kind != kind:
                    await self._drain()
                    if kind is not None:
                        self.tally.add_time(kind, time.monotonic() - kind_started)
                    kind, kind_started = batch.kind, time.monotonic()
                    self.bar.set_description(kind)
                if not await self._submit(batch):
                    return
            await self._drain()
        finally:
            if not upcoming.done():  # the iterator may not be left running in its thread
                await asyncio.wait([upcoming])
            if kind is not None:
                self.tally.add_time(kind, time.monotonic() - kind_started)

    async def _submit(self, batch: CallBatch) -> bool:
        """Start every call of ``batch`` not done before; ``False`` once stopped."""
        ids = batch.call_ids
        if self.ledger is not None:
            todo, rejected_before = self.ledger.unsent(ids, retry_rejected=self.opts.retry_rejected)
            self.tally.count(batch.kind, "skipped", len(ids) - len(todo) - rejected_before)
            self.tally.count(batch.kind, "skipped_rejected", rejected_before)
            self.bar.update(len(ids) - len(todo))
            wanted = set(todo)
        else:
            self.tally.count(batch.kind, "skipped", 0)
            wanted = None
        for call_id, body in zip(ids, batch.bodies, strict=True):
            if wanted is not None and call_id not in wanted:
                continue
            call = Call(batch.kind, batch.url, call_id, body)
            if len(body) > self.opts.max_body_bytes:
                self._reject(call, None, f"body of {len(body):,} bytes", "too_large")
                continue
            await self._slots.acquire()
            if self._stop.is_set():
                self._slots.release()
                return False
            task = asyncio.create_task(self._deliver(call))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return not self._stop.is_set()

    async def _drain(self) -> None:
        """Wait until every call started is finished and its id committed."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))
        self._flush_acks()
        for _ in range(self.opts.concurrency):  # every slot back: all acks committed
            await self._slots.acquire()
        for _ in range(self.opts.concurrency):
            self._slots.release()

    async def _settle(self) -> None:
        """After a stop: give the calls in flight a little time, then abandon them."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=_GRACE_SECONDS)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        self._flush_acks()
        self.bar.update(self._done)
        self._done = 0

    async def _watch(self) -> None:
        """Stop the run when no healthy answer came for ``circuit_seconds`` while calls
        were waiting (Accoil down, or a host that never answers)."""
        limit = self.opts.circuit_seconds
        while True:
            await asyncio.sleep(min(1.0, limit / 4))
            if not self._tasks:
                self._last_healthy = max(self._last_healthy, time.monotonic() - limit / 2)
                continue
            silent = time.monotonic() - self._last_healthy
            if silent >= limit:
                self._fail(
                    UnreachableError(
                        f"no call succeeded for {silent:.0f} s (only connection errors, "
                        "timeouts and 5xx): Accoil is down or unreachable at this base "
                        "URL. The run stopped; calls not acknowledged were not sent and a "
                        "re-run sends them."
                    )
                )
                return

    def interrupt(self, signal: str) -> None:
        """Stop because of a signal (called on the loop's thread)."""
        self._fail(Interrupted(signal))

    def _fail(self, exc: BaseException) -> None:
        if self._failure is None:
            self._failure = exc
        self._stop.set()
        self._slots.release()  # a dispatcher waiting for a slot sees the stop

    def _stopped(self) -> str | None:
        return (
            None if self._failure is None else (str(self._failure) or type(self._failure).__name__)
        )

    # ------------------------------------------------------------------ one call

    async def _deliver(self, call: Call) -> None:
        """Send ``call`` until it is acknowledged or finally failed; its slot is given
        back at once on failure, or once the ledger has its id."""
        acked = False
        try:
            acked = await self._attempts(call)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._fail(exc)
        finally:
            if not acked:
                self._slots.release()

    async def _attempts(self, call: Call) -> bool:
        policy = self.opts.retry
        first = time.monotonic()
        attempt = 0
        while not self._stop.is_set():
            attempt += 1
            await self.flow.acquire()
            result: HttpResult | None = None
            try:
                result = await self.client.post(call.url, call.body)
            except TransportError as exc:
                self.flow.release()
                detail = str(exc)
            except BaseException:
                self.flow.release()
                raise
            else:
                detail = result.response_start
                self._after_response(result, call.kind)
            if result is not None and result.ok:
                self._acknowledge(call)
                return True
            status = None if result is None else result.status
            if policy.is_retryable(status):
                retry_after = None if result is None else result.retry_after
                delay = policy.delay(attempt, retry_after, self._rng)
                if not policy.allows(attempt, time.monotonic() - first, delay):
                    self._give_up(call, status, detail)
                    return False
                self.tally.count(call.kind, "retried")
                log.debug("call %s: %s, retry in %.2fs", call.call_id, status or detail, delay)
                try:
                    await asyncio.wait_for(self._stop.wait(), delay)
                except TimeoutError:
                    continue
                return False
            if status in AUTH_STATUSES:
                self._auth_failed(call, status, detail)
            else:
                self._reject(call, status, detail, "rejected")
            return False
        return False

    def _after_response(self, result: HttpResult, kind: str) -> None:
        """Feed flow control (a 429 pauses everyone and cuts the window) and the circuit
        breaker (any answer but 5xx and 408 shows Accoil is there)."""
        if result.status < 500 and result.status != 408:
            self._last_healthy = time.monotonic()
        if result.status != 429:
            if result.ok:
                self._throttle_streak = 0
            self.flow.release(ok=result.ok)
            return
        self.tally.count(kind, "throttled")
        self._throttle_streak += 1
        pause = result.retry_after
        if pause is None:
            pause = self.opts.retry.backoff(self._throttle_streak, self._rng)
        self.flow.release(throttled=True, pause=min(pause, self.opts.retry.max_retry_after))

    def _acknowledge(self, call: Call) -> None:
        """Count ``call`` as sent; its slot comes back once the ledger has it."""
        self.tally.count(call.kind, "sent")
        self._auth_streak = 0
        self._acked_any = True
        held, self._held = self._held, []
        for args in held:  # the key works: earlier 401/403 were about those calls
            self._dead_letter(*args, reason="rejected")
        self._acks.append(call.call_id)
        if len(self._acks) == 1:  # the first of this turn of the loop: flush after it
            asyncio.get_running_loop().call_soon(self._flush_acks)

    def _flush_acks(self) -> None:
        """Record the acknowledgements of this turn of the loop in one ledger write."""
        ids, self._acks = self._acks, []
        if not ids:
            return
        self._done += len(ids)
        if self._done >= 64:
            self.bar.update(self._done)
            self._done = 0
        if self.ledger is None:
            self._release(len(ids))
            return
        loop = asyncio.get_running_loop()
        try:
            self.ledger.record(ids, on_commit=lambda: _call_soon(loop, self._release, len(ids)))
        except DeliveryError as exc:
            self._release(len(ids))
            self._fail(exc)

    def _release(self, n: int) -> None:
        for _ in range(n):
            self._slots.release()

    def _give_up(self, call: Call, status: int | None, detail: str) -> None:
        log.warning(
            "call %s (%s) failed, retries exhausted: %s", call.call_id, call.kind, status or detail
        )
        self.tally.count(call.kind, "failed")
        self._done += 1
        self._dead_letter(call, status, detail, reason="retries_exhausted")

    def _reject(self, call: Call, status: int | None, detail: str, reason: str) -> None:
        """A final answer: dead-lettered, and in the ledger so that re-runs skip it."""
        log.warning("call %s (%s) %s: %s", call.call_id, call.kind, reason, status or detail)
        self.tally.count(call.kind, "failed")
        self.tally.count(call.kind, "rejected")
        if reason == "too_large":
            self.tally.count(call.kind, "too_large")
        self._done += 1
        self._dead_letter(call, status, detail, reason=reason)
        if self.ledger is not None:
            try:
                self.ledger.record([call.call_id], status=status or 0)
            except DeliveryError as exc:
                self._fail(exc)

    def _dead_letter(self, call: Call, status: int | None, detail: str, *, reason: str) -> None:
        if self.dead.write(call, status, detail, reason):
            self.tally.count(call.kind, "dead_lettered")

    def _auth_failed(self, call: Call, status: int, detail: str) -> None:
        """Hold 401/403s back until a call succeeds; too many in a row stop the run."""
        self.tally.count(call.kind, "failed")
        self._done += 1
        self._auth_streak += 1
        if self._acked_any:
            self._dead_letter(call, status, detail, reason="rejected")
        else:
            self._held.append((call, status, detail))
        if self._auth_streak >= self.opts.auth_failure_threshold:
            where = "the first" if not self._acked_any else "the last"
            self._fail(
                AuthenticationError(
                    f"Accoil refused the API key: {where} {self._auth_streak} calls got HTTP "
                    f"401/403 (last: {status} on {call.kind}). Check ACCOIL_API_KEY / "
                    "--api-key: it must be the Ingress API key of the product (Accoil > "
                    "Account > General settings). The run stopped; nothing more was sent."
                )
            )


# --------------------------------------------------------------------------- entry point


def send(
    batches: Iterable[CallBatch],
    *,
    api_key: str | None = None,
    auth: AuthScheme,
    options: DeliveryOptions | None = None,
    total: int | None = None,
    destination: Destination | None = None,
    ledger: AckSink | None = None,
) -> DeliveryReport:
    """Deliver ``batches`` (identify, then group, then track) and report what happened.

    The key comes as ``api_key`` or in ``destination`` (which also scopes the ledger; by
    default the key's own: staging keys go to the staging host). ``ledger`` is an open
    ledger, or any :class:`AckSink`, to use (default: ``options.ledger_path``, opened and
    closed here). ``total`` is the number of calls expected, for the progress bar. Calls
    that finally fail do not raise: they are counted, and written to the dead-letter file
    if one is set.

    Raises:
        AuthenticationError: the key was refused.
        UnreachableError: no call succeeded for ``circuit_seconds``.
        Interrupted: SIGINT (Ctrl-C) or SIGTERM stopped it.
        DeliveryError: delivery cannot go on (TLS, ledger). Each carries the partial
            :class:`DeliveryReport` as ``.report``.
    """
    if destination is None:
        destination = Destination.resolve(api_key)
    if destination.credential is None:
        raise DeliveryError("an API key is required to send calls (set ACCOIL_API_KEY)")
    opts = options or DeliveryOptions()
    own_ledger = None
    if ledger is None and opts.ledger_path is not None:
        ledger = own_ledger = Ledger(opts.ledger_path, destination.id)
    try:
        return _run_loop(batches, destination.credential, auth, opts, ledger, total)
    finally:
        if own_ledger is not None:
            own_ledger.close()


def _run_loop(
    batches: Iterable[CallBatch],
    key: Secret,
    auth: AuthScheme,
    opts: DeliveryOptions,
    ledger: AckSink | None,
    total: int | None,
) -> DeliveryReport:
    """Run the engine on an event loop of its own thread; stop it cleanly on a signal."""
    loop = _new_loop()
    engine: list[_Engine] = []
    outcome: list[DeliveryReport | BaseException] = []

    async def main() -> DeliveryReport:
        async with AccoilClient(key, AuthScheme(auth), timeout=opts.timeouts) as client:
            engine.append(_Engine(client, opts, ledger, total))
            return await engine[0].run(batches)

    finished = threading.Event()  # not Thread.join: a join a signal interrupts can
    # leave the thread looking dead while it still runs (CPython 3.11)

    def work() -> None:
        asyncio.set_event_loop(loop)
        try:
            outcome.append(loop.run_until_complete(main()))
        except BaseException as exc:  # handed to the caller's thread
            outcome.append(exc)
        finally:
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()
            finished.set()

    thread = threading.Thread(target=work, name="accoil-send", daemon=True)
    thread.start()
    while not finished.is_set():
        try:
            finished.wait(0.2)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM as the CLI raises it
            signal = getattr(exc, "signal_name", "SIGINT")
            if engine:
                loop.call_soon_threadsafe(engine[0].interrupt, signal)
            else:
                raise
    if ledger is not None:
        ledger.flush()
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop where it is installed (about a fifth less CPU a call), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _call_soon(
    loop: asyncio.AbstractEventLoop, callback: Callable[..., object], *args: object
) -> None:
    """``callback(*args)`` on ``loop``, from another thread; nothing once the loop is closed
    (the send stopped, e.g. at a signal, and nothing waits for it any more)."""
    with contextlib.suppress(RuntimeError):  # asyncio: "Event loop is closed"
        loop.call_soon_threadsafe(callback, *args)
