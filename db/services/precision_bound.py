"""An exact one-sided upper confidence bound of a binomial proportion (Clopper–Pearson).

Clopper–Pearson rather than Wilson: it is exact (its coverage is at least the nominal level for every n and
p), where Wilson's interval under-covers for proportions near 1 and small n — the guard's case (precision
≈ 0.99, a window that starts empty). Being conservative here means the guard trips only on evidence.

The upper bound u for k successes in n trials solves P(X <= k | n, u) = alpha (u = 1 when k = n); that is
the beta quantile Beta(1 - alpha; k + 1, n - k), computed here by bisection on the binomial distribution
function in log space (no SciPy in the service; tests compare with scipy.stats.beta).
"""

import math

_ITERATIONS = 60  # bisection on [0, 1]: 2**-60, far below any difference that matters here


def _log_pmf(i: int, n: int, log_p: float, log_q: float) -> float:
    return math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p); summed over the shorter tail."""
    if k >= n or p <= 0.0:
        return 1.0
    if k < 0 or p >= 1.0:
        return 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    if k + 1 <= n - k:
        return min(1.0, math.fsum(math.exp(_log_pmf(i, n, log_p, log_q)) for i in range(k + 1)))
    upper = math.fsum(math.exp(_log_pmf(i, n, log_p, log_q)) for i in range(k + 1, n + 1))
    return max(0.0, 1.0 - upper)


def upper_bound(successes: int, trials: int, *, confidence: float = 0.95) -> float | None:
    """One-sided `confidence` upper bound of the success probability; None without trials."""
    if trials <= 0:
        return None
    if not 0 <= successes <= trials:
        raise ValueError("successes must be between 0 and trials")
    if successes == trials:
        return 1.0
    alpha = 1.0 - confidence
    low, high = successes / trials, 1.0  # the cdf falls from >= 1/2 here to 0 at 1
    for _ in range(_ITERATIONS):
        middle = (low + high) / 2.0
        if binomial_cdf(successes, trials, middle) > alpha:
            low = middle
        else:
            high = middle
    return high
