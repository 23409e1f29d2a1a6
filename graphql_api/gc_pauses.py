"""The garbage collector in a served process: startup objects frozen out of full collections, and every
collection's pause timed into hitl_gc_pause_seconds.

A full collection stops the event loop for as long as it takes to scan every tracked object. Most of them are
created at startup (modules, the schema, SQLAlchemy's and pydantic's machinery) and live as long as the process;
frozen, they are no longer scanned (measured under 16 concurrent approvals: full passes of 150-240 ms became
26-41 ms). Only `hitl serve` does this: a test process creating many apps must not freeze them.
"""

import gc
import time

from graphql_api.metrics import Metrics


def freeze_startup_objects(metrics: Metrics) -> None:
    gc.collect()  # what is garbage now must not be frozen with the rest
    gc.freeze()
    metrics.gc_frozen_objects.set(gc.get_freeze_count())


def time_collections(metrics: Metrics) -> None:
    """Observe each collection's pause, by generation (a gc callback: called around every collection)."""
    histograms = [metrics.gc_pause.labels(generation=str(generation)) for generation in range(3)]
    started = [0.0]

    def callback(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            histograms[info["generation"]].observe(time.perf_counter() - started[0])

    gc.callbacks.append(callback)
