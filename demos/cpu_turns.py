"""Rule 3 of the shared server (the first two are in queue_policy.py): the cores are handed out step by step.

A job is a run of short pieces: a denoising job yields a frame every few steps (0.05–0.5 s of work), other jobs are
one piece. The compute queue admits a few more jobs than there are cores, and each job takes a *turn* for every
piece (`take_turns` wraps every main action): at most SLOTS pieces run at once, and when a turn frees up it goes
to the waiting job that comes first in this order:

    1. light sessions before heavy ones (heavy: a session that held turns, in the last WINDOW seconds, for more than
       HEAVY_FACTOR × the median of the *other* sessions now waiting or running, and at least HEAVY_MARGIN seconds
       more; "other", so that one greedy client beside one student is heavy too);
    2. a session's first job before its second (a session with a job running waits behind those without one);
    3. the job that started first (first come, first served, as the queue itself).

So a greedy client's long job pauses at its next frame as soon as a student's job wants the core, and runs on
whatever the class leaves idle; among students nothing changes. Without turns, a job that had a worker kept it to
its last step (DDPM ancestral: 1000 steps), and the students' p95 rose beside a greedy client.

The session is gradio's session hash of the request being served (a browser tab, or one gradio_client.Client).
"""
from __future__ import annotations

import functools
import inspect
import itertools
from collections import deque
import statistics
import threading
import time
from contextlib import contextmanager

from .queue_policy import HEAVY_FACTOR, HEAVY_MARGIN, WINDOW

SLOTS = 2  # steps computed at once: this machine's cores (app.py sets it from DIFFUSION_LAB_CONCURRENCY)


class Turns:
    """Hands out `slots` turns at a time; see the module docstring for the order."""

    def __init__(self, slots: int = SLOTS, clock=time.monotonic):
        self.slots, self.clock = slots, clock
        self._cond = threading.Condition()
        self._held = 0
        self._waiting: list[tuple[str, float, int]] = []   # (session, its job's start, ticket number)
        self._used: dict[str, deque] = {}     # session -> (end, seconds) of its turns in the last WINDOW
        self._total: dict[str, float] = {}    # session -> the sum of those seconds
        self._holding: list[tuple[str, float]] = []   # (session, its job's start) of each turn held now
        self._tickets = itertools.count()

    def used(self, session: str, now: float) -> float:
        """Seconds of turns `session` held in the last WINDOW seconds (old turns are dropped as they age)."""
        turns = self._used.get(session)
        while turns and now - turns[0][0] >= WINDOW:
            self._total[session] -= turns.popleft()[1]
        if turns is not None and not turns:
            del self._used[session], self._total[session]
            return 0.0
        return self._total.get(session, 0.0)

    def heavy(self, sessions: set[str], now: float) -> set[str]:
        used = {s: self.used(s, now) for s in sessions}

        def others_median(s):
            rest = [u for o, u in used.items() if o != s]
            return statistics.median(rest) if rest else float("inf")   # alone, nobody is heavy

        return {s for s, u in used.items() if u > max(HEAVY_FACTOR * others_median(s), others_median(s) + HEAVY_MARGIN)}

    def _next(self, now: float) -> tuple[str, float, int]:
        jobs = {(w[0], w[1]) for w in self._waiting} | set(self._holding)
        heavy = self.heavy({s for s, _ in jobs}, now)

        def rank(w):   # how many of its session's jobs started before this one
            return sum(1 for s, start in jobs if s == w[0] and start < w[1])

        return min(self._waiting, key=lambda w: (w[0] in heavy, rank(w), w[1], w[2]))

    @contextmanager
    def turn(self, session: str, job_start: float):
        """Wait for a turn, hold it for the body (one step), give it back."""
        with self._cond:
            ticket = (session, job_start, next(self._tickets))
            self._waiting.append(ticket)
            self._cond.notify_all()
            while self._held >= self.slots or self._next(self.clock()) is not ticket:
                self._cond.wait(timeout=1.0)   # the timeout only guards against a lost wake-up
            self._waiting.remove(ticket)
            self._held += 1
            self._holding.append((session, job_start))
            self._cond.notify_all()   # the next waiter in line may take a slot that is still free
        t0 = self.clock()
        try:
            yield
        finally:
            with self._cond:
                end = self.clock()
                self._held -= 1
                self._holding.remove((session, job_start))
                self._used.setdefault(session, deque()).append((end, end - t0))
                self._total[session] = self._total.get(session, 0.0) + end - t0
                self._cond.notify_all()


TURNS = Turns()


def _session() -> str:
    """The session hash of the request this thread is serving ("" outside a request: tests, scripts)."""
    from gradio.context import LocalContext
    request = LocalContext.request.get(None)
    return getattr(request, "session_hash", None) or ""


def take_turns(fn, turns: Turns = TURNS):
    """`fn` (a callback, or a generator callback that streams) computing only inside turns of its session: a plain
    callback takes one turn for its whole call, a generator one turn for each item it yields. The signature stays
    `fn`'s (functools.wraps), so gradio still finds its gr.Progress and gr.Request parameters. Wrapping twice
    returns the same function (a turn inside a turn would wait for itself)."""
    if getattr(fn, "takes_turns", False):
        return fn
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def streamed(*args, **kwargs):
            session, start = _session(), turns.clock()
            items = fn(*args, **kwargs)
            while True:
                with turns.turn(session, start):
                    item = next(items, _DONE)
                if item is _DONE:
                    return
                yield item
        streamed.takes_turns = True
        return streamed

    @functools.wraps(fn)
    def called(*args, **kwargs):
        with turns.turn(_session(), turns.clock()):
            return fn(*args, **kwargs)
    called.takes_turns = True
    return called


_DONE = object()
