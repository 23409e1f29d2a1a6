"""The guard's rule on its own: the Clopper–Pearson bound and when a window trips (no database, no model)."""

import pytest
from scipy.stats import beta

from db.services import guard, precision_bound
from db.services.policy import Policy

POLICY = Policy()  # target 0.99, window 200, 3 failures, bound from 10 outcomes


@pytest.mark.parametrize("successes,trials", [(0, 1), (1, 2), (9, 10), (19, 20), (190, 200), (197, 200), (199, 200), (4990, 5000)])
def test_upper_bound_is_the_exact_clopper_pearson_bound(successes, trials):
    assert precision_bound.upper_bound(successes, trials) == pytest.approx(beta.ppf(0.95, successes + 1, trials - successes), abs=1e-9)


def test_upper_bound_edges():
    assert precision_bound.upper_bound(0, 0) is None
    assert precision_bound.upper_bound(7, 7) == 1.0
    with pytest.raises(ValueError):
        precision_bound.upper_bound(3, 2)


def window(outcomes: int, failures: int) -> guard.Window:
    return guard.Window("m1", outcomes, failures)


def test_no_outcomes_few_outcomes_and_only_successes_never_trip():
    assert guard.trip_reason(window(0, 0), POLICY) is None
    assert guard.trip_reason(window(200, 0), POLICY) is None
    assert guard.trip_reason(window(1, 1), POLICY) is None  # bound 0.95 < 0.99, but one outcome is too few to judge
    assert guard.trip_reason(window(9, 2), POLICY) is None


def test_failures_trip_at_the_configured_count_with_the_numbers():
    assert guard.trip_reason(window(200, 2), POLICY) is None
    reason = guard.trip_reason(window(150, 3), POLICY)
    assert reason is not None and "3 of the last 150" in reason and "HITL_GUARD_MAX_FAILURES (3)" in reason and "0.99" in reason


def test_the_bound_trips_when_failures_alone_would_not():
    lenient = Policy(guard_max_failures=1000)
    # 2 failures in 20: P(>= 2 failures | precision 0.99) = 1.7% < 5%, so even the upper bound is below 0.99.
    assert precision_bound.upper_bound(18, 20) < 0.99
    reason = guard.trip_reason(window(20, 2), lenient)
    assert reason is not None and "upper bound is below the target" in reason
    # 5 in 200 is 2.5%, yet consistent with 99% (P = 5.3%): no trip; 6 in 200 is not (P = 1.6%).
    assert guard.trip_reason(window(200, 5), lenient) is None
    assert guard.trip_reason(window(200, 6), lenient) is not None
