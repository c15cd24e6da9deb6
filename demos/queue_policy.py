"""Who waits and who runs next on a shared 2-core server: a class of students and, perhaps, one greedy client.

Gradio's queue is first come, first served, with one size limit for everyone: one session that joins eighty times
fills it, and one that keeps two heavy jobs queued holds both workers. Two rules fix that, applied where gradio
takes and picks jobs (`Queue.push` and `Queue.get_events`):

1. **A cap per session.** A session may have at most MAX_COMPUTE_JOBS main actions waiting or running (the one
   compute queue every tab's main action joins), and at most MAX_EVENTS events in all queues together (a page load
   fires about a dozen light ones). A join past the cap is refused at once with a clear message.
2. **Heavy users last.** When a worker frees up, the waiting compute jobs are taken in order of arrival, except that
   a session with a job already running waits behind every session without one, and a *heavy* session (one that
   used more than HEAVY_FACTOR × the median compute of the waiting sessions in the last WINDOW seconds, and at least
   HEAVY_MARGIN seconds more) waits behind every light one. A greedy client never holds both workers while others
   wait and gets what the class leaves; among students the order stays first come, first served. (Measured with the
   load command: ordering everyone by compute used, or by turns taken, only spread the students' waits and lifted
   their p95.)

Sessions are gradio's session hashes: a browser tab, or one `gradio_client.Client`.
"""
from __future__ import annotations

import asyncio
import statistics
import time

MAX_COMPUTE_JOBS = 2  # main actions per session, waiting or running
MAX_EVENTS = 32       # events per session in all queues (a page load fires 16 light ones)
WINDOW = 300.0        # seconds of past compute that count against a session
HEAVY_FACTOR, HEAVY_MARGIN = 2.0, 10.0  # (a 3 s margin also pushed busy students back: their p95 rose 18 -> 21 s)
BUSY = ("You already have {n} jobs waiting or running: wait for one to finish (or stop it), then press the "
        "button again. Each visitor may queue {n} at a time so that everyone gets a turn.")
TOO_MANY = "Too many requests from this page at once ({n} waiting or running): wait a moment, then try again."


class FairQueue:
    """Installs the two rules on a Blocks' queue (call after `demo.queue(...)`, before or after launch)."""

    def __init__(self, demo, compute_id: str):
        self.queue, self.compute_id = demo._queue, compute_id
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

    # ------------------------------------------------------------ rule 2: the order, at pick time
    def prune(self, now: float, running: set[str]) -> None:
        """Forget the jobs that started more than WINDOW seconds ago and are done (`started` stays bounded)."""
        for session, jobs in list(self.started.items()):
            jobs[:] = [(t, e) for t, e in jobs if now - t < WINDOW or e._id in running]
            if not jobs:
                del self.started[session]

    def attained(self, now: float, running: set[str]) -> dict[str, float]:
        """Compute seconds each session used in the last WINDOW seconds (a running job counts its time so far)."""
        return {session: sum(now - t if e._id in running else e.run_time for t, e in jobs)
                for session, jobs in self.started.items()}

    def heavy(self, sessions: set[str], now: float, running: set[str]) -> set[str]:
        """The sessions among `sessions` that used far more compute lately than the median of them."""
        used = self.attained(now, running)
        median = statistics.median(used.get(s, 0.0) for s in sessions)
        return {s for s in sessions if used.get(s, 0.0) > max(HEAVY_FACTOR * median, median + HEAVY_MARGIN)}

    def get_events(self):
        compute = self.queue.event_queue_per_concurrency_id.get(self.compute_id)
        now, running = time.time(), self._running()
        self.prune(now, {e._id for e in running})
        if compute is not None and len(compute.queue) > 1:
            heavy = self.heavy({e.session_hash for e in compute.queue}, now, {e._id for e in running})
            busy = {e.session_hash for e in running if e.concurrency_id == self.compute_id}
            compute.queue.sort(key=lambda e: (e.session_hash in busy, e.session_hash in heavy))  # stable: FIFO
        picked = self._get_events()
        if picked and picked[2] == self.compute_id:
            for e in picked[0]:
                self.started.setdefault(e.session_hash, []).append((now, e))
        return picked
