"""Who waits and who runs next on a shared 2-core server: a class of students and, perhaps, one greedy client.

Gradio's queue is first come, first served, with one size limit for everyone: one session that joins eighty times
fills it, and one that keeps two heavy jobs queued holds both workers. Three rules fix that, applied where gradio
takes and picks jobs (`Queue.push` and `Queue.get_events`):

1. **A cap per session.** A session may have at most MAX_COMPUTE_JOBS main actions waiting or running (the one
   compute queue every tab's main action joins), and at most MAX_EVENTS events in all queues together (a page load
   fires about a dozen light ones). A join past the cap is refused at once with a clear message.
2. **Heavy users last; costly ones only on a quiet server.** When a worker frees up, the waiting compute jobs are
   taken in order of arrival, except that a session with a job already running waits behind every session without
   one, and a *heavy* session (one that used more than HEAVY_FACTOR × the median compute of the sessions in the
   last WINDOW seconds, and HEAVY_MARGIN seconds more) waits behind every light one. A *costly* request (one that
   asks for more than COSTLY_SHARE of its tab's budget, read from its arguments while it waits, `asked_share`), and
   every request of a session that ran one in the window (`check_cost` declares each running request's share),
   starts nothing while another session's job runs or waits. A greedy client that keeps the costliest request
   queued thus gets what the class leaves: the idle moments, and a turn once its costly request has aged out.
   Among students the order stays first come, first served. (Measured with the load command: ordering everyone by
   compute used, or by turns taken, only spread the students' waits and lifted their p95; letting a costly session
   take any free worker lifted it 18 -> 22 s; judging sessions by their jobs' seconds instead of their declared
   cost held back students whose jobs ran long on the loaded server, 24 -> 40 s; judging a request only once it had
   run let the greedy client's first one, 24 s of ancestral sampling, through at the class's pace: 29 -> 38 s.
   Budgets count each network call's fixed cost (`demos.common.Budget`): before they did, one image for the
   ancestral sampler's 1000 steps passed as 1000 image-steps, "5 s", and took 24 s. A costly request that starts
   in an idle moment still holds its worker to its end, now at most about 5 s.)
3. **Long jobs one at a time.** The endpoints named `long` (live training: up to half a minute each) run at most
   LONG_SLOTS at once, all sessions together, so a few students training at once never hold every worker.

Sessions are gradio's session hashes: a browser tab, or one `gradio_client.Client`.
"""
from __future__ import annotations

import asyncio
import inspect
import statistics
import sys
import time

MAX_COMPUTE_JOBS = 2  # main actions per session, waiting or running
MAX_EVENTS = 32       # events per session in all queues (a page load fires 16 light ones)
LONG_SLOTS = 1        # long jobs running at once, server-wide (the queue runs 2 compute jobs at a time)
WINDOW = 300.0        # seconds of past compute that count against a session
HEAVY_FACTOR, HEAVY_MARGIN = 2.0, 10.0  # (a 3 s margin also pushed busy students back: their p95 rose 18 -> 21 s)
COSTLY_SHARE = 0.5    # of a request's budget (Budget.cost): a session that asks for more waits for a quiet server
BUSY = ("You already have {n} jobs waiting or running: wait for one to finish (or stop it), then press the "
        "button again. Each visitor may queue {n} at a time so that everyone gets a turn.")
TOO_MANY = "Too many requests from this page at once ({n} waiting or running): wait a moment, then try again."


_declared: dict[str, float] = {}  # event id -> the share of its request budget it asked for (check_cost)


def declare_cost(share: float) -> None:
    """Record the running job's share of its budget (called by `demos.common.check_cost`, inside the handler)."""
    from gradio.context import LocalContext
    event_id = LocalContext.event_id.get(None)
    if event_id is not None and len(_declared) < 10_000:  # bounded: FairQueue.prune forgets jobs out of the window
        _declared[event_id] = share


def asked_share(fn, args) -> float:
    """What a waiting request asks for, before it runs: its cost (`request_cost`) as a share of its tab's budget, read
    from its own arguments by the names every sampling handler uses (`num_images`, `steps`, `sampler`; the budget is
    the handler's module's BUDGET). 0 for any other request, or arguments that are not numbers (the handler
    itself refuses those)."""
    from .common import cost_scale, steps_run
    try:
        handler = inspect.unwrap(fn)
        values = dict(zip(inspect.signature(handler).parameters, args))
        budget = sys.modules[handler.__module__].BUDGET
        steps = steps_run(values.get("sampler", "DDIM"), int(float(values["steps"])))
        return max(0.0, budget.cost(float(values["num_images"]), steps) / (budget.image_steps * cost_scale()))
    except Exception:  # not a sampling request, or junk arguments
        return 0.0


class FairQueue:
    """Installs the three rules on a Blocks' queue (call after `demo.queue(...)`, before or after launch); `long`:
    the api names of the long endpoints."""

    def __init__(self, demo, compute_id: str, long: frozenset[str] = frozenset()):
        self.queue, self.compute_id, self.long = demo._queue, compute_id, frozenset(long)
        self.started: dict[str, list] = {}  # session -> [(start time, event)] of its compute jobs in the window
        self._lock = asyncio.Lock()  # joins are checked and added one at a time (push awaits before it appends)
        self._push, self._get_events = self.queue.push, self.queue.get_events
        self.queue.push, self.queue.get_events = self.push, self.get_events

    # ------------------------------------------------------------ what a session has in the queue
    def _running(self):
        return [e for job in self.queue.active_jobs if job for e in job]

    def _waiting(self):
        return [e for q in self.queue.event_queue_per_concurrency_id.values() for e in q.queue]

    def outstanding(self, session: str, compute_only: bool) -> int:
        return sum(1 for e in self._waiting() + self._running()
                   if e.session_hash == session and (not compute_only or e.concurrency_id == self.compute_id))

    # ------------------------------------------------------------ rule 1: the cap, at join time
    async def push(self, body, request, username):
        async with self._lock:
            fn = self.queue.blocks.fns.get(body.fn_index) if isinstance(body.fn_index, int) else None
            if body.session_hash and fn is not None:
                if (fn.concurrency_id == self.compute_id
                        and self.outstanding(body.session_hash, True) >= MAX_COMPUTE_JOBS):
                    return False, BUSY.format(n=MAX_COMPUTE_JOBS), "error"
                if self.outstanding(body.session_hash, False) >= MAX_EVENTS:
                    return False, TOO_MANY.format(n=MAX_EVENTS), "error"
            return await self._push(body, request, username)

    # ------------------------------------------------------------ rules 2 and 3: the order, at pick time
    def _is_long(self, event) -> bool:
        return getattr(event.fn, "api_name", None) in self.long

    def prune(self, now: float, running: set[str]) -> None:
        """Forget the jobs that started more than WINDOW seconds ago and are done (`started` stays bounded)."""
        for session, jobs in list(self.started.items()):
            jobs[:] = [(t, e) for t, e in jobs if now - t < WINDOW or e._id in running]
            if not jobs:
                del self.started[session]
        kept = {e._id for jobs in self.started.values() for _, e in jobs} | {e._id for e in self._waiting()}
        for event_id in [k for k in list(_declared) if k not in kept]:
            _declared.pop(event_id, None)

    def attained(self, now: float, running: set[str]) -> dict[str, float]:
        """Compute seconds each session used in the last WINDOW seconds (a running job counts its time so far)."""
        return {session: sum(now - t if e._id in running else e.run_time for t, e in jobs)
                for session, jobs in self.started.items()}

    def heavy(self, sessions: set[str], now: float, running: set[str]) -> set[str]:
        """The sessions among `sessions` that used far more compute lately than the median of them."""
        used = self.attained(now, running)
        median = statistics.median(used.get(s, 0.0) for s in sessions)
        return {s for s in sessions if used.get(s, 0.0) > max(HEAVY_FACTOR * median, median + HEAVY_MARGIN)}

    def costly(self) -> set[str]:
        """The sessions with a job in the window that asked for more than COSTLY_SHARE of its request budget."""
        return {s for s, jobs in self.started.items() if any(_declared.get(e._id, 0.0) > COSTLY_SHARE for _, e in jobs)}

    def _asks_much(self, event) -> bool:
        """A waiting request that asks for more than COSTLY_SHARE of its budget (estimated once, from its arguments)."""
        if event._id not in _declared:
            data = getattr(getattr(event, "data", None), "data", None)
            _declared[event._id] = asked_share(event.fn.fn, data) if isinstance(data, list) else 0.0
        return _declared[event._id] > COSTLY_SHARE

    def get_events(self):
        compute = self.queue.event_queue_per_concurrency_id.get(self.compute_id)
        now, running = time.time(), self._running()
        self.prune(now, {e._id for e in running})
        held = []
        if compute is not None and compute.queue:
            heavy = self.heavy({e.session_hash for e in compute.queue}, now, {e._id for e in running})
            costly = self.costly() | {e.session_hash for e in compute.queue if self._asks_much(e)}
            last = heavy | costly
            busy = {e.session_hash for e in running if e.concurrency_id == self.compute_id}
            compute.queue.sort(key=lambda e: (e.session_hash in busy, e.session_hash in last))  # stable: FIFO
            # a costly session starts nothing while another session's compute job runs, or a job of a session that
            # is not costly waits (rule 2); a long job waits while LONG_SLOTS others run (rule 3): gradio's pick does
            # not see them this time
            others = busy | {e.session_hash for e in compute.queue if e.session_hash not in costly}
            long_full = sum(self._is_long(e) for e in running) >= LONG_SLOTS
            held = [e for e in compute.queue
                    if (e.session_hash in costly and others - {e.session_hash}) or (long_full and self._is_long(e))]
            compute.queue[:] = [e for e in compute.queue if e not in held]
        try:
            picked = self._get_events()
        finally:
            if held:
                compute.queue.extend(held)  # back behind the others, in their order
        if picked and picked[2] == self.compute_id:
            for e in picked[0]:
                self.started.setdefault(e.session_hash, []).append((now, e))
        return picked
