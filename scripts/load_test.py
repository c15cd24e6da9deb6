"""Load and cold-start test: launch `python app.py` on loopback, then let N gradio_client users hammer it.

    python scripts/load_test.py                      # 20 users × 5 requests × 2 rounds, across tabs; README section
    python scripts/load_test.py --users 4 --requests 2 --rounds 1 --no-readme   # a quick look

Measures, in one run:
  - cold start: `python app.py` started -> first page served (HTTP 200 on /);
  - service time: each request type alone (one user), and with c copies at once (c = the queue's concurrency:
    the service time the queue delivers when it is full);
  - under load: failures, p50 / p95 latency (first round, and all rounds), and what the queue implies for p95: with c jobs at a time, a
    request waits for at most ceil(users / c) - 1 others, so p95 <= ceil(users / c) × slowest service time at c;
  - memory: the server's RSS (with children) sampled every 0.2 s: peak, and growth from the moment every user
    has had one answer to the end of all rounds (target < 10 % over 200 requests).
  - with --abuser: the same students again, beside one greedy client that keeps the most expensive allowed request
    queued (DDPM DDIM, 36 images, as many steps as the per-request budget holds) and tries to queue six at a time; the
    students' p50 / p95 with and without it, and how many of its joins the per-session cap refused.
The server gets a Space's per-request budgets (DIFFUSION_LAB_COST_SCALE=1), though it listens on loopback.
Each user is its own process, as each student has their own browser; they share this machine's cores.
Bounded: loopback only, at most --users × --requests × --rounds requests, and --timeout seconds overall.
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the project's packages

from pipelines.measure.launch import free_port, start_app, stop_app, wait_idle  # noqa: E402

SPACE_BUDGETS = {"DIFFUSION_LAB_COST_SCALE": "1"}  # a Space's per-request budgets, though on loopback
DIGIT = ROOT / "assets" / "mnist" / "3_1_test18.png"
PROMPT = "a small blue square in the top left corner on a black background"

# (name, api_name, args): small requests from every generating tab, bounded like a student's first clicks
REQUESTS = [
    ("forward_at_t", "/forward_at_t", lambda h: (h(DIGIT), "linear (DDPM)", False, 400, 0)),
    ("reverse", "/reverse", lambda h: ("DDIM", 10, 4, 0.0, 0)),
    ("cfg_generate", "/cfg_generate", lambda h: ("MNIST", "7", 3.0, 0.0, "DDIM", 10, 4, 0)),
    ("zero_snr_generate", "/zero_snr_generate", lambda h: (True, True, "all white", 3.0, 0.0, "trailing", 10, 4, 0)),
    ("vae_at_lambda", "/vae_at_lambda", lambda h: ("16-D latent", h(DIGIT), h(DIGIT), "spherical", 0.3)),
    ("text2img_generate", "/text2img_generate", lambda h: ("Shapes LDM (trained here)", "", PROMPT, "", 3.0, 0.0,
                                                           "DDIM", 10, 2, 0, "the model's own", "the model's own")),
    ("stackgan_generate", "/stackgan_generate", lambda h: (PROMPT, "nearest-neighbour + conv", 4, 0, True)),
]


def rss_mb(pid: int) -> float:
    import psutil
    try:
        p = psutil.Process(pid)
        return (p.memory_info().rss + sum(c.memory_info().rss for c in p.children(recursive=True))) / 2**20
    except psutil.Error:
        return float("nan")


class MemorySampler(threading.Thread):
    def __init__(self, pid: int, every: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.every, self.samples, self.stop = pid, every, [], threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.samples.append((time.time(), rss_mb(self.pid)))
            time.sleep(self.every)

    def at(self, t: float) -> float:
        before = [m for ts, m in self.samples if ts <= t]
        return before[-1] if before else self.samples[0][1]


def one(client, req) -> tuple[str, float, str | None]:
    from gradio_client import handle_file
    name, api, args = req
    t0 = time.time()
    try:
        client.predict(*args(handle_file), api_name=api)
        return name, time.time() - t0, None
    except Exception as exc:  # a failure is a result here, not a crash
        return name, time.time() - t0, f"{type(exc).__name__}: {str(exc)[:200]}"


def user(url: str, u: int, n: int, download: bool, go, ready, out) -> None:
    """One student: connect, wait for the start, then send n requests one after another."""
    from gradio_client import Client
    client = Client(url, verbose=False, **({} if download else {"download_files": False}))
    ready.put(u)
    go.wait()
    done = []
    for k in range(n):
        name, secs, err = one(client, REQUESTS[(u + k) % len(REQUESTS)])
        done.append((name, secs, err, k, time.time()))
    out.put(done)


def greedy_request() -> tuple[str, tuple]:
    """The costliest request a Space allows: the DDPM tab's most images, for as many DDIM steps as its budget holds
    (about 5 s of the 2 cores; one image for the ancestral sampler's 1000 steps, 22 s, is refused)."""
    from demos.ddpm import BUDGET, MAX_IMAGES
    steps = BUDGET.image_steps // (MAX_IMAGES + BUDGET.overhead)
    return "/reverse", ("DDIM", steps, MAX_IMAGES, 0.0, 0)

GREEDY_BURST = 6  # joins it tries at once; the per-session cap admits 2


def abuser(url: str, request: tuple[str, tuple], go, stop, out) -> None:
    """One greedy client (one session): while the students run, keep bursts of `request` (api, args) queued. (It is
    read in the parent: importing the app's modules here took longer than a short students' phase.)"""
    from gradio_client import Client
    client = Client(url, verbose=False, download_files=False)
    api, args = request

    def wait(job):
        """(when the job finished, on this machine's clock, None), or (None, the error) if it was refused (or, never
        expected, failed)."""
        try:
            job.result(timeout=600)
            return time.time(), None
        except Exception as exc:
            return None, str(exc)

    go.wait()
    finished, refused = [], 0
    while not stop.is_set():
        jobs = [client.submit(*args, api_name=api) for _ in range(GREEDY_BURST)]
        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            for t, err in pool.map(wait, jobs):
                finished += [t] if t is not None else []
                refused += err is not None and ("already have" in err or "400" in err)  # gradio_client drops the detail
    out.put({"finished_at": finished, "refused": refused})


def students(url: str, users: int, n: int, download: bool, timeout: float, greedy: bool = False):
    """users × n requests, each user its own process (as each student has their own machine and interpreter: 20
    clients in one process would queue on one GIL), cycling through the tabs from a different starting point; every
    user connects before the clock starts. Returns (rows, wall seconds, the greedy client's counts or None)."""
    ctx = multiprocessing.get_context("spawn")
    go, stop, ready, out, greedy_out = ctx.Event(), ctx.Event(), ctx.Queue(), ctx.Queue(), ctx.Queue()
    users_p = [ctx.Process(target=user, args=(url, u, n, download, go, ready, out), daemon=True) for u in range(users)]
    extra = ([ctx.Process(target=abuser, args=(url, greedy_request(), go, stop, greedy_out), daemon=True)]
             if greedy else [])
    for p in users_p + extra:
        p.start()
    for _ in users_p:
        ready.get(timeout=120)
    t_start = time.time()
    go.set()
    rows = []
    for _ in users_p:
        rows += out.get(timeout=max(1.0, timeout - (time.time() - t_start)))
    wall = time.time() - t_start
    stop.set()
    counts = greedy_out.get(timeout=700) if greedy else None
    for p in users_p + extra:
        p.join(10)
    return rows, wall, counts


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, math.ceil(q * len(xs)) - 1))]


def run(users: int, requests: int, rounds: int, timeout: float, concurrency: int, download: bool = True,
        greedy: bool = False) -> dict:
    from gradio_client import Client
    port = free_port()
    proc, cold = start_app(port, timeout=60, env=SPACE_BUDGETS)
    url = f"http://127.0.0.1:{port}/"
    mem = MemorySampler(proc.pid)
    mem.start()
    try:
        wait_idle(proc.pid)  # the server's start-up memo filling would otherwise be timed with the first requests
        # 1. service time of each request type alone (one user, after one warm-up call each)
        solo = Client(url, verbose=False)
        service = {}
        for req in REQUESTS:
            one(solo, req)
            name, secs, err = one(solo, req)
            if err:
                raise RuntimeError(f"{name} fails even alone: {err}")
            service[name] = secs
        # 1b. the same with `concurrency` copies at once: the service time the queue actually delivers
        both = [Client(url, verbose=False) for _ in range(concurrency)]
        busy = {}
        for req in REQUESTS:
            with ThreadPoolExecutor(max_workers=concurrency) as pool:
                busy[req[0]] = max(s for _, s, _ in pool.map(lambda c: one(c, req), both))
        # 2. users × requests × rounds
        results, wall, _ = students(url, users, requests * rounds, download, timeout)
        fails = [(n, e) for n, _, e, _, _ in results if e]
        base = mem.at(max(t for _, _, _, k, t in results if k == 0))  # once every user has had one answer
        rounds_end = [mem.at(max(t for _, _, _, k, t in results if k == (r + 1) * requests - 1)) for r in range(rounds)]
        end = rounds_end[-1]
        peak = max(m for t, m in mem.samples if t <= max(t for *_, t in results))
        slowest = max(busy.values())

        def latency(rows):
            lat = [s for _, s, _, _, _ in rows]
            return {"p50_seconds": round(statistics.median(lat), 2), "p95_seconds": round(percentile(lat, 0.95), 2)}

        # 3. the same students again, beside one greedy client; then once more alone, for the run-to-run noise
        with_greedy = None
        if greedy:
            rows, greedy_wall, counts = students(url, users, requests * rounds, download, timeout, greedy=True)
            students_end = max(t for *_, t in rows)
            again, _, _ = students(url, users, requests * rounds, download, timeout)
            with_greedy = {**latency(rows), "failures": sum(1 for r in rows if r[2]),
                           "alone_again": latency(again), "alone_again_failures": sum(1 for r in again if r[2]),
                           "wall_seconds": round(greedy_wall, 1), "greedy_completed": len(counts["finished_at"]), "greedy_refused": counts["refused"],
                           "greedy_completed_during_class": sum(t < students_end for t in counts["finished_at"]),
                           "greedy_request": "{} {}".format(*greedy_request()), "greedy_burst": GREEDY_BURST}
        mem.stop.set()
        mem.join()

        return {
            "command": " ".join(["python scripts/load_test.py", *sys.argv[1:]]),
            "users": users, "requests_per_user": requests, "rounds": rounds, "clients_download_files": download,
            "requests": len(results), "concurrency": concurrency,
            "cold_start_seconds": round(cold, 2), "service_seconds": {k: round(v, 3) for k, v in service.items()},
            "service_seconds_at_concurrency": {k: round(v, 3) for k, v in busy.items()},
            "failures": len(fails), "failure_examples": fails[:5], "wall_seconds": round(wall, 1),
            "first_round": latency([r for r in results if r[3] < requests]), "all_rounds": latency(results),
            "queue_bound_p95_seconds": round(math.ceil(users / concurrency) * slowest, 2),
            "rss_after_first_answers_mb": round(base, 1), "rss_end_mb": round(end, 1), "rss_peak_mb": round(peak, 1),
            "rss_at_each_round_end_mb": [round(m, 1) for m in rounds_end],
            "memory_growth": round((end - base) / base, 4),
            "with_greedy_client": with_greedy,
        }
    finally:
        mem.stop.set()
        stop_app(proc)


def markdown(r: dict) -> str:
    service = ", ".join(f"{k} {v:.2f} s ({r['service_seconds_at_concurrency'][k]:.2f} s with {r['concurrency']} "
                        "at once)" for k, v in r["service_seconds"].items())
    fetch = ("each user fetches every result file, including the streamed frames, as a browser does"
             if r["clients_download_files"] else "users do not fetch the result files, so only the queue is measured")
    per_round = r["users"] * r["requests_per_user"]
    bound = (f"p95 ≤ {r['queue_bound_p95_seconds']:.2f} s (⌈users / {r['concurrency']}⌉ × slowest service time with "
             f"{r['concurrency']} jobs running)")
    first, every = r["first_round"], r["all_rounds"]
    return (f"Measured by `{r['command']}`: `python app.py` on loopback; {r['users']} concurrent `gradio_client` users, "
            f"each its own process, × {r['requests_per_user']} requests across the tabs, {r['rounds']} round{'s' * (r['rounds'] > 1)} "
            f"(queue: {r['concurrency']} jobs at a time; {fetch}; the users run on the server's 2 cores).\n\n"
            "| figure | value | target |\n|---|---|---|\n"
            f"| cold start: `python app.py` → first page served | {r['cold_start_seconds']:.1f} s | < 15 s |\n"
            f"| requests / failures | {r['requests']} / {r['failures']} | 0 failures |\n"
            f"| latency p50 / p95, first {per_round} requests | {first['p50_seconds']:.2f} s / "
            f"{first['p95_seconds']:.2f} s | {bound} |\n"
            f"| latency p50 / p95, all {r['requests']} requests | {every['p50_seconds']:.2f} s / "
            f"{every['p95_seconds']:.2f} s | the same |\n"
            f"| server memory: after every user's first answer → end (peak) | {r['rss_after_first_answers_mb']:.0f} MB → "
            f"{r['rss_end_mb']:.0f} MB ({r['rss_peak_mb']:.0f} MB) | growth {100 * r['memory_growth']:+.1f} % "
            f"(< 10 %) over {r['requests']} requests |\n"
            + _greedy_row(r) + f"\nService time of each request alone: {service}.")


def _greedy_row(r: dict) -> str:
    g = r.get("with_greedy_client")
    if not g:
        return ""
    every = r["all_rounds"]
    again = g["alone_again"]
    return (f"| the same students beside one greedy client ({g['greedy_request']}, {g['greedy_burst']} joins at a time): "
            f"p50 / p95 | {g['p50_seconds']:.2f} s / {g['p95_seconds']:.2f} s ({g['failures']} failures) | unchanged from "
            f"the students alone: {every['p50_seconds']:.2f} s / {every['p95_seconds']:.2f} s before, "
            f"{again['p50_seconds']:.2f} s / {again['p95_seconds']:.2f} s after; its joins: {g['greedy_completed']} ran "
            f"({g['greedy_completed_during_class']} of them while the students were running), "
            f"{g['greedy_refused']} refused by the per-session cap |\n")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=20)
    p.add_argument("--requests", type=int, default=5, help="requests per user in each round")
    p.add_argument("--rounds", type=int, default=2, help="rounds (memory is watched over all of them)")
    p.add_argument("--timeout", type=float, default=900, help="seconds for the whole load phase")
    p.add_argument("--no-readme", action="store_true")
    p.add_argument("--abuser", action="store_true",
                   help="then run the students again beside one greedy client, and compare their latency")
    p.add_argument("--no-download", action="store_true",
                   help="users do not fetch the result files (separates the queue from file transfer on this machine)")
    args = p.parse_args(argv)
    if not (1 <= args.users <= 50 and 1 <= args.requests <= 20 and 1 <= args.rounds <= 4):
        p.error("bounded: 1-50 users, 1-20 requests each, 1-4 rounds")
    from app import CONCURRENCY
    r = run(args.users, args.requests, args.rounds, args.timeout, CONCURRENCY, download=not args.no_download,
            greedy=args.abuser)
    out = ROOT / "results"
    out.mkdir(exist_ok=True)
    (out / ("load.json" if not args.no_download else "load-no-download.json")).write_text(json.dumps(r, indent=2) + "\n")
    print(markdown(r))
    if not args.no_readme:
        from pipelines.readme import replace_section
        replace_section("load" if r["clients_download_files"] else "load-no-download", markdown(r))
    return r


if __name__ == "__main__":
    main()
