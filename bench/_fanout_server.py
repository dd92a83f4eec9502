"""Runs one server of ``bench/fanout.py`` under uvicorn, in its own process.

``python bench/_fanout_server.py hub PORT``: the hub, ``create_app(Settings())`` with its
settings from the ``TRADEHUB_*`` environment (as ``tradehub serve`` builds it).
``python bench/_fanout_server.py anchor PORT``: the stock-strawberry anchor
(``TRADEHUB_REDIS_URL`` and ``TRADEHUB_REDIS_PREFIX`` from the environment).

Both run with the same uvicorn options, those of ``tradehub serve``: one process, uvloop and
httptools when installed (uvicorn's ``auto``), the websockets sans-I/O protocol,
``ws_per_message_deflate=False``, no access log.
"""

from __future__ import annotations

import sys as _sys
from pathlib import Path as _Path

# bench/engine.py would shadow the engine package for scripts run from bench/: the repository
# root comes first on the path.
_sys.path.insert(0, str(_Path(__file__).resolve().parent.parent))

import contextlib
import ctypes
import os
import signal
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for path in (str(ROOT), str(BENCH)):
    if path not in sys.path:
        sys.path.append(path)


def trace_collections() -> None:
    """Time every collection; one summary line per generation goes to the log at exit."""
    import atexit
    import gc
    import time

    started: list[float] = [0.0]
    pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses[info["generation"]].append(time.perf_counter() - started[0])

    def report() -> None:
        for generation, times in pauses.items():
            if times:
                print(
                    f"gc: generation {generation}: {len(times)} collections, "
                    f"{sum(times) * 1e3:.0f} ms in all, longest {max(times) * 1e3:.1f} ms, "
                    f"tracked objects now {len(gc.get_objects(generation))}",
                    file=sys.stderr,
                    flush=True,
                )

    gc.callbacks.append(callback)
    atexit.register(report)


def with_heap_report(app: Any) -> Any:
    """``GET /_fanout/heap``: a full collection, then the count of tracked objects by type."""
    import gc
    import json
    from collections import Counter

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/_fanout/heap":
            await app(scope, receive, send)
            return
        gc.collect()
        objects = gc.get_objects()
        top = Counter(type(o).__qualname__ for o in objects).most_common(15)
        body = json.dumps({"objects": len(objects), "top": top}).encode()
        del objects
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return wrapped


def main() -> None:
    # Die with the benchmark, whatever happens to it.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    import uvicorn

    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "hub":
        from hub.app import create_app
        from hub.logs import configure_logging
        from hub.settings import Settings

        settings = Settings()
        configure_logging(
            json_lines=False, level=os.environ.get("FANOUT_SERVER_LOG_LEVEL", "warning")
        )
        app = create_app(settings)
    elif mode == "anchor":
        from _fanout_anchor import create_anchor_app

        app = create_anchor_app(
            os.environ["TRADEHUB_REDIS_URL"], os.environ["TRADEHUB_REDIS_PREFIX"]
        )
    else:
        raise SystemExit(f"unknown server {mode!r}")
    experiment = os.environ.get("FANOUT_SERVER_GC", "")
    if experiment:
        # An experiment, never the default: what the collector costs the fan-out.
        import gc

        if "freeze" in experiment:
            gc.collect()
            gc.freeze()
        if "threshold" in experiment:
            gc.set_threshold(50_000, 50, 100)
        if "off" in experiment:
            gc.disable()
        if "trace" in experiment:
            trace_collections()
            app = with_heap_report(app)
    # uvicorn re-raises the SIGTERM it caught once it has shut down; exit normally then, so
    # that atexit hooks (the gc trace) run.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        ws_per_message_deflate=False,
        ws_max_size=1 << 20,
        access_log=False,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=3,
        backlog=4096,
    )


if __name__ == "__main__":
    main()
