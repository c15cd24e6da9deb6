"""Rule 3 of the shared server: the cores are handed out one denoising step at a time (demos/cpu_turns.py)."""
import threading
import time

from demos.cpu_turns import Turns


def _hold(turns, session, start, log, release: threading.Event, got: threading.Event | None = None):
    with turns.turn(session, start):
        log.append(session)
        if got:
            got.set()
        release.wait(5)


def test_no_more_steps_at_once_than_slots_and_every_job_finishes():
    turns, inside, most, lock = Turns(slots=2), [0], [0], threading.Lock()

    def job(k):
        for _ in range(20):
            with turns.turn(f"s{k}", float(k)):
                with lock:
                    inside[0] += 1
                    most[0] = max(most[0], inside[0])
                time.sleep(0.001)
                with lock:
                    inside[0] -= 1

    threads = [threading.Thread(target=job, args=(k,)) for k in range(5)]
    [t.start() for t in threads]
    [t.join(10) for t in threads]
    assert not any(t.is_alive() for t in threads) and most[0] == 2


def _wait_for(condition, seconds=5.0):
    deadline = time.time() + seconds
    while not condition() and time.time() < deadline:
        time.sleep(0.01)
    return condition()


def test_a_greedy_session_yields_its_core_to_a_student_at_the_next_step():
    """slots = 1. The greedy client has used 100 s of turns lately and its job started first; when its current step
    ends, the student's step goes next, then the greedy job's."""
    now = [1000.0]
    turns = Turns(slots=1, clock=lambda: now[0])
    with turns.turn("greedy", 0.0):
        now[0] += 100.0   # one very long step: 100 s of use
    log, events = [], {k: threading.Event() for k in ("holder", "greedy", "student")}
    got = threading.Event()
    threads = [threading.Thread(target=_hold, args=(turns, "greedy", 0.0, log, events["holder"], got))]
    threads[0].start()
    assert got.wait(5)
    for session, start in (("greedy", 0.0), ("student", 2.0)):   # the greedy job's next step asks first
        threads.append(threading.Thread(target=_hold, args=(turns, session, start, log, events[session])))
        threads[-1].start()
        assert _wait_for(lambda: len(turns._waiting) == len(threads) - 1)
    events["holder"].set()
    assert _wait_for(lambda: len(log) == 2) and log == ["greedy", "student"]   # the student's step came next
    events["student"].set()
    assert _wait_for(lambda: len(log) == 3) and log[2] == "greedy"
    events["greedy"].set()
    [t.join(5) for t in threads]


def test_among_light_sessions_first_come_first_served():
    turns = Turns(slots=1)
    assert turns.heavy({"a", "b", "c"}, 0.0) == set()   # nobody has used anything
    log, events, got = [], {k: threading.Event() for k in "abc"}, threading.Event()
    threads = [threading.Thread(target=_hold, args=(turns, "a", 0.0, log, events["a"], got))]
    threads[0].start()
    assert got.wait(5)
    for session, start in (("c", 2.0), ("b", 1.0)):   # c asks first, but b's job started first
        threads.append(threading.Thread(target=_hold, args=(turns, session, start, log, events[session])))
        threads[-1].start()
        assert _wait_for(lambda: len(turns._waiting) == len(threads) - 1)
    events["a"].set()
    assert _wait_for(lambda: len(log) == 2) and log == ["a", "b"]
    events["b"].set()
    assert _wait_for(lambda: len(log) == 3) and log == ["a", "b", "c"]
    events["c"].set()
    [t.join(5) for t in threads]


def test_heavy_is_judged_against_the_others():
    now = [0.0]
    turns = Turns(slots=2, clock=lambda: now[0])
    for session, seconds in (("greedy", 100.0), ("student", 2.0), ("busy student", 9.0)):
        with turns.turn(session, 0.0):
            now[0] += seconds
    assert turns.heavy({"greedy", "student"}, now[0]) == {"greedy"}   # one greedy client beside one student
    assert turns.heavy({"student", "busy student"}, now[0]) == set()   # 9 s is not 2× and 10 s more than 2 s
    now[0] += 301.0   # out of the window: forgotten
    assert turns.heavy({"greedy", "student"}, now[0]) == set() and turns.used("greedy", now[0]) == 0


def test_take_turns_keeps_the_signature_and_takes_a_turn_per_streamed_item():
    import inspect

    import gradio as gr

    from demos.cpu_turns import take_turns

    class Counting(Turns):
        taken = 0

        def turn(self, session, start):
            Counting.taken += 1
            return super().turn(session, start)

    turns = Counting(slots=1)

    def stream(n, progress=gr.Progress()):
        yield from range(n)

    def once(x):
        return x * 2

    streamed, called = take_turns(stream, turns), take_turns(once, turns)
    assert inspect.signature(streamed) == inspect.signature(stream) and inspect.isgeneratorfunction(streamed)
    assert list(streamed(3)) == [0, 1, 2] and Counting.taken == 4   # 3 items and the turn that found the end
    assert called(21) == 42 and Counting.taken == 5 and take_turns(called, turns) is called
