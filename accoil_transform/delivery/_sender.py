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
import queue
import random
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from .._secret import Secret
from ..calls import AuthScheme, CallBatch, CallKind
from ..config import DeliveryOptions
from ..errors import AuthenticationError, ConfigError, DeliveryError
from ._client import AccoilClient, HttpResult, TransportError
from ._dead_letter import DeadLetters
from ._flow import FlowControl
from ._ledger import Ledger
from ._report import DeliveryReport, Tally

log = logging.getLogger("accoil_transform.delivery")

AUTH_STATUSES = frozenset({401, 403})


@dataclass(slots=True)
class Call:
    kind: CallKind
    url: str
    call_id: str
    body: bytes
    user: str | None


class _Run:
    """The state of one :func:`send` call: dispatcher (caller thread) plus workers."""

    def __init__(
        self, client: AccoilClient, options: DeliveryOptions, total: int | None = None
    ) -> None:
        self.client = client
        self.opts = options
        self.tally = Tally()  # guarded by self._cond
        self._stopped: str | None = None
        self.ledger = Ledger(options.ledger_path) if options.ledger_path else None
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
        self._cond = threading.Condition()  # guards everything below and the tally
        self._outstanding = 0
        window = options.effective_window
        self._low_water = window - max(1, window // 4)
        self._chains: dict[str, deque[Call]] = {}
        self._queue: queue.SimpleQueue[Call | None] = queue.SimpleQueue()
        self._abort = threading.Event()
        self._failure: BaseException | None = None
        self._acked_any = False
        self._auth_streak = 0
        self._held: list[tuple[Call, int | None, str]] = []
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
                worker.join(timeout=sum(self.opts.timeouts) + 5)
            self._close()
            with self._cond:
                report = self.tally.report(time.monotonic() - started, self._stopped)
        if self._failure is not None:
            if isinstance(self._failure, DeliveryError):
                self._failure.report = report
            raise self._failure
        return report

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
                    self._add_time(kind, time.monotonic() - kind_started)
                kind, kind_started = batch.kind, time.monotonic()
                self.bar.set_description(kind)
            todo = set(self.ledger.filter_unsent(batch.call_ids)) if self.ledger else None
            with self._cond:
                self.tally.count(kind, "skipped", 0 if todo is None else len(batch) - len(todo))
            if todo is not None and len(todo) < len(batch):
                self.bar.update(len(batch) - len(todo))
            for call_id, body, user_id in zip(
                batch.call_ids, batch.bodies, batch.user_ids, strict=True
            ):
                if todo is not None and call_id not in todo:
                    continue
                user = user_id if kind == "track" else None
                if not self._submit(Call(kind, batch.url, call_id, body, user), window):
                    break
        self._wait_idle()
        if kind is not None:
            self._add_time(kind, time.monotonic() - kind_started)

    def _add_time(self, kind: str, seconds: float) -> None:
        with self._cond:
            self.tally.add_time(kind, seconds)

    def _submit(self, call: Call, window: int) -> bool:
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
                if self._stopped is None:
                    self._stopped = str(exc) or type(exc).__name__
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

    def _next_of_chain(self, call: Call) -> Call | None:
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

    def _deliver(self, call: Call) -> bool:
        """Send ``call`` until it is acknowledged (``True``) or finally failed."""
        policy = self.opts.retry
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
                self._after_response(result, call.kind)
            if result is not None and result.ok:
                self._acknowledge(call)
                return True
            status = None if result is None else result.status
            if policy.is_retryable(status):
                retry_after = None if result is None else result.retry_after
                delay = policy.delay(attempt, retry_after, self._rng)
                if not policy.allows(attempt, time.monotonic() - first, delay):
                    self._give_up(call, status, detail, "retries exhausted")
                    return False
                with self._cond:
                    self.tally.count(call.kind, "retried")
                log.debug("call %s: %s, retry in %.2fs", call.call_id, status or detail, delay)
                if self._abort.wait(delay):
                    return False
            elif status in AUTH_STATUSES:
                self._auth_failed(call, status, detail)
                return False
            else:
                self._give_up(call, status, detail, "rejected")
                return False

    def _after_response(self, result: HttpResult, kind: str) -> None:
        """Feed flow control: a 429 pauses everyone and cuts the window."""
        if result.status != 429:
            if result.ok:
                self._throttle_streak = 0
            self.flow.release(ok=result.ok)
            return
        with self._cond:
            self.tally.count(kind, "throttled")
            self._throttle_streak += 1
            streak = self._throttle_streak
        pause = result.retry_after
        if pause is None:
            pause = self.opts.retry.backoff(streak, self._rng)
        self.flow.release(throttled=True, pause=min(pause, self.opts.retry.max_retry_after))

    def _acknowledge(self, call: Call) -> None:
        """Count ``call`` as sent; its slot is given back once the ledger has it."""
        if self.ledger is not None:
            self.ledger.record((call.call_id,), on_commit=self._slots.release)
        else:
            self._slots.release()
        with self._cond:
            self.tally.count(call.kind, "sent")
            self._auth_streak = 0
            held, self._held = self._held, []
            self._acked_any = True
            self.bar.update(1)
        try:  # the slot is the ledger's now: nothing below may raise into _work
            for args in held:  # the key works: earlier 401/403 were about those calls
                self._dead_letter(*args)
        except Exception as exc:
            self._fail(exc)

    def _give_up(self, call: Call, status: int | None, detail: str, why: str) -> None:
        log.warning("call %s (%s) failed, %s: %s", call.call_id, call.kind, why, status or detail)
        with self._cond:
            self.tally.count(call.kind, "failed")
            if why == "rejected":
                self.tally.count(call.kind, "rejected")
            self.bar.update(1)
        self._dead_letter(call, status, detail)

    def _dead_letter(self, call: Call, status: int | None, detail: str) -> None:
        if self.dead.write(call, status, detail):
            with self._cond:
                self.tally.count(call.kind, "dead_lettered")

    def _auth_failed(self, call: Call, status: int, detail: str) -> None:
        """Hold 401/403s back until a call succeeds; too many in a row stop the run."""
        with self._cond:
            self.tally.count(call.kind, "failed")
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
    total: int | None = None,
) -> DeliveryReport:
    """Deliver ``batches`` (identify, then group, then track) and report what happened.

    Raises :class:`AuthenticationError` when the key is refused, and
    :class:`DeliveryError` when delivery cannot go on (TLS, ledger); either carries
    the partial report as ``.report``. Calls that finally fail do not raise: they are
    counted, and written to the dead-letter file if one is set. ``total`` is the number
    of calls expected, for the progress bar.
    """
    if not api_key:
        raise ConfigError("an API key is required to send calls (set ACCOIL_API_KEY)")
    opts = options or DeliveryOptions()
    client = AccoilClient(
        Secret(api_key), AuthScheme(auth), pool_size=opts.concurrency, timeout=opts.timeouts
    )
    with client:
        return _Run(client, opts, total).run(batches)
