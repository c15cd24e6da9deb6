"""End to end, as a student waits: a tab's main action timed through `gradio_client` on a launched `python app.py`.

    python -m pipelines.benchmark --only latency     # these rows, beside the benchmark's others
    python -m pipelines.measure.latency              # the same, printed as JSON

Each request runs with the page's own defaults (the initial values the app reports for its endpoint's inputs), one
client, after one warm-up call:
  - **no fetch**: the client downloads nothing; the time from submit to the final result;
  - **every frame fetched**: as a browser does, each streamed update's files (the live frame, the samples so far,
    at the end the gallery's frames and the GIF) are fetched as they arrive, before the next update is read;
  - **sampling alone**: the same settings through the pipeline, in this process, with no image made.
The rest of a request, (no fetch) − (sampling), is what the server spends outside the model: drawing frames,
writing PNGs and the GIF, gradio's processing of each yielded value.

The server is a child process on loopback with file folders of its own (swept when it stops), so nothing here
imports gradio. Torch threads: the server gets --threads (OMP_NUM_THREADS), and so does the sampling here.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
import urllib.request

from .launch import launched_app

ENDPOINTS = ("cfg_generate", "text2img_generate")


# ----------------------------------------------------------------------------- the page's defaults
def page_defaults(client, api_name: str) -> dict:
    """The endpoint's inputs as the page first shows them: {parameter name: initial value}."""
    info = client.view_api(return_format="dict", print_info=False)["named_endpoints"][f"/{api_name}"]
    return {p["parameter_name"]: p["parameter_default"] for p in info["parameters"]}


def file_urls(value) -> list[str]:
    """Every file URL in one streamed update (a FileData dict, or lists and tuples of them)."""
    if isinstance(value, dict):
        return [value["url"]] if value.get("url") else [u for v in value.values() for u in file_urls(v)]
    if isinstance(value, (list, tuple)):
        return [u for v in value for u in file_urls(v)]
    return []


def fetch(url: str) -> int:
    with urllib.request.urlopen(url, timeout=60) as r:
        return len(r.read())


# ----------------------------------------------------------------------------- one request, three ways
def time_no_fetch(client, api_name: str, kwargs: dict) -> float:
    t0 = time.perf_counter()
    client.predict(api_name=f"/{api_name}", **kwargs)
    return time.perf_counter() - t0


def time_fetching(client, api_name: str, kwargs: dict) -> tuple[float, int, int]:
    """(seconds, updates, bytes): each update's files are fetched before the next update is read, once each."""
    t0 = time.perf_counter()
    job = client.submit(api_name=f"/{api_name}", **kwargs)
    seen, updates, size = set(), 0, 0
    for update in job:
        updates += 1
        for url in file_urls(update):
            if url not in seen:
                seen.add(url)
                size += fetch(url)
    for url in file_urls(job.result()):  # the last update, if the loop ended before reading it
        if url not in seen:
            seen.add(url)
            size += fetch(url)
    return time.perf_counter() - t0, updates, size


def sampling_alone(api_name: str, kw: dict, precision: str):
    """The same request's sampling (and, for latent diffusion, the VAE's decoding), through its pipeline in this
    process, at `precision` resolved as the server resolves it: (a callable that runs it once, the precision's name)."""
    from ..precision import choose
    from .precision import at
    if api_name == "cfg_generate":
        from ..cfg.pipeline import load_cfg
        name = "cfg-mnist" if kw["model_name"] == "MNIST" else "cfg-fashion-mnist"
        model = load_cfg(name)
        model = at(model, choose(model.device, precision, model=name))
        c = model.class_index(str(kw["label"]))
        return (lambda: model.frames(c, scale=float(kw["scale"]), rescale=float(kw["rescale"]), sampler=kw["sampler"],
                                     steps=int(kw["steps"]), num_images=int(kw["num_images"]),
                                     seed=int(kw["seed"])).last()), model.precision.name
    if api_name == "text2img_generate":
        from ..ldm.pipeline import load_ldm
        model = load_ldm()
        model = at(model, choose(model.device, precision, model=model.name))
        return (lambda: model.decode(model.frames(
            kw["prompt"], negative_prompt=kw["negative_prompt"], scale=float(kw["scale"]), rescale=float(kw["rescale"]),
            sampler=kw["sampler"], steps=int(kw["steps"]), num_images=int(kw["num_images"]),
            seed=int(kw["seed"])).last().x)), model.precision.name
    raise ValueError(api_name)


def measure(endpoints=ENDPOINTS, repeats: int = 3, threads: int = 2, precision: str = "auto") -> dict:
    """{endpoint: {defaults, no_fetch_seconds, fetch_seconds, updates, bytes, sampling_seconds, precision}}, medians.
    The server and the sampling alone run at the same `precision` ("auto": what `python app.py` picks)."""
    from gradio_client import Client

    from ..precision import PRECISION_ENV
    from ..runtime import torch_threads
    out = {}
    with launched_app(env={"OMP_NUM_THREADS": str(threads), PRECISION_ENV: precision}) as url:
        client = Client(url, verbose=False, download_files=False)
        for api_name in endpoints:
            kw = page_defaults(client, api_name)
            time_no_fetch(client, api_name, kw)  # warm-up: the model loads on its first call
            no_fetch = [time_no_fetch(client, api_name, kw) for _ in range(repeats)]
            fetching = [time_fetching(client, api_name, kw) for _ in range(repeats)]
            out[api_name] = {"defaults": kw, "no_fetch_seconds": statistics.median(no_fetch),
                             "fetch_seconds": statistics.median(f[0] for f in fetching),
                             "updates": fetching[0][1], "bytes_fetched": fetching[0][2]}
    with torch_threads(threads):
        for api_name in endpoints:  # after the server stopped: the two never share the cores
            run, out[api_name]["precision"] = sampling_alone(api_name, out[api_name]["defaults"], precision)
            run()
            out[api_name]["sampling_seconds"] = statistics.median(_seconds(run) for _ in range(repeats))
    return out


def _seconds(run) -> float:
    t0 = time.perf_counter()
    run()
    return time.perf_counter() - t0


def rows(args) -> list[dict]:
    """The benchmark's rows: each endpoint's end-to-end time with and without fetches, and its sampling alone."""
    r = measure(repeats=args.repeats, threads=args.threads, precision=getattr(args, "precision", None) or "auto")
    table = []
    for api_name, m in r.items():
        d = m["defaults"]
        what = (f"{api_name}, the page's defaults ({int(d['num_images'])} images, {d['sampler']} {int(d['steps'])} steps, "
                f"{m['precision']})")
        table += [dict(name=f"end to end: {what}, client fetches no files", seconds=m["no_fetch_seconds"]),
                  dict(name=f"end to end: {what}, client fetches every streamed file ({m['updates']} updates, "
                            f"{m['bytes_fetched'] / 1e3:.0f} kB)", seconds=m["fetch_seconds"]),
                  dict(name=f"of which sampling alone ({api_name}'s pipeline, no images made): "
                            f"{100 * m['sampling_seconds'] / m['no_fetch_seconds']:.0f} % of the request with no fetch",
                       seconds=m["sampling_seconds"])]
    return table


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--only", nargs="*", default=list(ENDPOINTS), choices=ENDPOINTS)
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="the server's and the sampling's precision (default auto: what python app.py picks)")
    args = p.parse_args(argv)
    print(json.dumps(measure(args.only, args.repeats, args.threads, args.precision), indent=1, default=str))


if __name__ == "__main__":
    main()
