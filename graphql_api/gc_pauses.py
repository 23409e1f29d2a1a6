"""The garbage collector in a served process: fewer and shorter full collections, and every collection's
pause timed into hitl_gc_pause_seconds.

A full collection stops the event loop for as long as it takes to scan every tracked object; at 2,000 open
subscriptions that was 0.3-0.6 s. Two settings, measured with the benchmarks (findings.md §8):
- the objects built at startup (modules, the schema, the ORM's and pydantic's machinery, ~200k) live as long
  as the process: frozen, full collections no longer scan them (150-240 ms passes under 16 concurrent
  approvals became 26-41 ms);
- young collections every 10,000 net allocations instead of 700: a fan-out or a burst of requests keeps
  thousands of objects alive for milliseconds, and at 700 many of them were promoted to the old generation,
  whose growth is what starts a full collection (5-6 full collections in the approval rounds became 0).
Only `hitl serve` does this: a test process that builds many apps must not freeze them.
"""

import gc
import time

from graphql_api.metrics import Metrics

YOUNG_COLLECTION_THRESHOLD = 10_000


def tune_for_serving(metrics: Metrics) -> None:
    gc.collect()  # what is garbage now must not be frozen with the rest
    gc.freeze()
    metrics.gc_frozen_objects.set(gc.get_freeze_count())
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])
    _time_collections(metrics)


def _time_collections(metrics: Metrics) -> None:
    """Observe each collection's pause, by generation (a gc callback: called around every collection)."""
    histograms = [metrics.gc_pause.labels(generation=str(generation)) for generation in range(3)]
    started = [0.0]

    def callback(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            histograms[info["generation"]].observe(time.perf_counter() - started[0])

    gc.callbacks.append(callback)
