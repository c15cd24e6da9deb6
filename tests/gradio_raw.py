"""Gradio's wire protocol by hand, as a hostile client speaks it: any payload, to any event (private ones too)."""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx

FILE_META = {"_type": "gradio.FileData"}


def new_session() -> str:
    return uuid.uuid4().hex[:12]


def join(url: str, fn_index: int, data: list, session: str) -> httpx.Response:
    return httpx.post(url + "gradio_api/queue/join", timeout=30, json={
        "data": data, "fn_index": fn_index, "session_hash": session, "event_data": None, "trigger_id": None})


def results(url: str, session: str, count: int = 1, timeout: float = 300) -> list[dict]:
    """The `process_completed` messages of the session's next `count` jobs, in order of completion."""
    done = []
    with httpx.stream("GET", url + "gradio_api/queue/data", params={"session_hash": session}, timeout=timeout) as s:
        for line in s.iter_lines():
            if line.startswith("data:"):
                msg = json.loads(line[5:])
                if msg.get("msg") == "process_completed":
                    done.append(msg)
                    if len(done) == count:
                        break
    return done


def call(url: str, fn_index: int, data: list, timeout: float = 300) -> dict:
    """One job in a fresh session: {"success": bool, "output": {...}} (or the refused join's status and detail)."""
    session = new_session()
    r = join(url, fn_index, data, session)
    if r.status_code != 200:
        return {"success": False, "joined": False, "status": r.status_code, "detail": r.json().get("detail")}
    return results(url, session, 1, timeout)[0]


def upload(url: str, path: str | Path) -> dict:
    """Upload a file as the page does; returns the FileData payload that names the server's copy."""
    with open(path, "rb") as f:
        r = httpx.post(url + "gradio_api/upload", files={"files": (Path(path).name, f)}, timeout=30)
    r.raise_for_status()
    return {"path": r.json()[0], "meta": FILE_META, "orig_name": Path(path).name}


def as_upload(path: str | Path) -> str:
    """A copy of a local file where gradio keeps what it received, for calling a tab's callback directly as the
    server would (the app opens no other file)."""
    import shutil
    from gradio.utils import get_upload_folder
    dest = Path(get_upload_folder()) / "test-uploads" / Path(path).name
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.exists():
        shutil.copyfile(path, dest)
    return str(dest)


def error_text(result: dict) -> str:
    return str(result.get("detail") or (result.get("output") or {}).get("error") or "")
