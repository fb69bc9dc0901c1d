"""P-values for the drift tests, written with numpy and the standard library only.

The drift Lambda ships without scipy, yet users compare our p-values with scipy's. Each function
here computes the same distribution scipy uses for the same test (including ``ks_2samp``'s
``method="auto"`` choice between the exact and the asymptotic Kolmogorov-Smirnov distribution),
with the published algorithm named in its docstring, so results agree with scipy to ~1e-12.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

MAX_AUTO_N = 10_000
"""``ks_2samp(method="auto")`` is exact when both samples have at most this many values (scipy)."""

_MINLOG = -708.3964185322641
_FPMIN = 1e-300
_EPS = 2.220446049250313e-16


# ---------------------------------------------------------------- chi-squared and normal
def chi2_sf(stat: float, df: int) -> float:
    """P(X >= stat) for X ~ chi-squared(df): the regularized upper incomplete gamma Q(df/2, stat/2)."""
    if math.isnan(stat) or df <= 0:
        return math.nan
    if math.isinf(stat):
        return 0.0
    if stat <= 0.0:
        return 1.0
    return gammaincc(df / 2.0, stat / 2.0)


def gammaincc(a: float, x: float) -> float:
    """Regularized upper incomplete gamma Q(a, x) (series below a+1, Lentz continued fraction above)."""
    if x <= 0.0:
        return 1.0
    log_prefix = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1.0:
        # P(a, x) = x^a e^-x / Gamma(a+1) * sum_k x^k / ((a+1)...(a+k))
        term = 1.0 / a
        total = term
        ap = a
        for _ in range(100_000):
            ap += 1.0
            term *= x / ap
            total += term
            if abs(term) < abs(total) * _EPS:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefix))
    b = x + 1.0 - a
    c = 1.0 / _FPMIN
    d = 1.0 / b
    h = d
    for i in range(1, 100_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        if abs(d) < _FPMIN:
            d = _FPMIN
        c = b + an / c
        if abs(c) < _FPMIN:
            c = _FPMIN
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return min(1.0, math.exp(log_prefix) * h)


def normal_two_sided_p(z: float) -> float:
    """Two-sided p-value of a standard normal statistic."""
    if math.isnan(z):
        return math.nan
    return math.erfc(abs(z) / math.sqrt(2.0))


# ---------------------------------------------------------------- two-sample Kolmogorov-Smirnov
def ks_2samp_method(n1: int, n2: int) -> str:
    """The distribution ``scipy.stats.ks_2samp(method="auto")`` picks for these sample sizes."""
    return "exact" if max(n1, n2) <= MAX_AUTO_N else "asymp"


def ks_2samp_pvalues(stats: Sequence[float], n1: int, n2: int, method: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Two-sided p-values for several KS statistics sharing the sample sizes ``n1``, ``n2``.

    Returns ``(statistics, p_values)``; in exact mode the statistic is rounded to the lattice value
    ``h / lcm(n1, n2)`` exactly as scipy reports it. Columns with the same sizes are computed
    together (the exact path vectorizes over them).
    """
    d = np.asarray(stats, dtype=np.float64).copy()
    p = np.empty_like(d)
    if method == "auto":
        method = ks_2samp_method(n1, n2)
    if method == "exact":
        g = math.gcd(n1, n2)
        lcm = (n1 // g) * n2
        h = np.round(d * lcm).astype(np.int64)
        d = h * 1.0 / lcm
        p[:] = 1.0
        todo = h > 0
        if todo.any():
            if n1 == n2:
                p[todo] = [_ks_square_outside(n1, int(hh)) for hh in h[todo]]
            else:
                p[todo] = _ks_outside(n1, n2, g, h[todo])
        bad = ~((p >= 0.0) & (p <= 1.0))
        if not bad.any():
            return d, p
        # scipy falls back to the asymptotic distribution when the exact value is unusable.
        p[bad] = [kolmogorov_sf(_ks_en(n1, n2), float(x)) for x in d[bad]]
        return d, np.clip(p, 0.0, 1.0)
    en = _ks_en(n1, n2)
    p[:] = [kolmogorov_sf(en, float(x)) for x in d]
    return d, np.clip(p, 0.0, 1.0)


def _ks_en(n1: int, n2: int) -> int:
    m, n = sorted([float(n1), float(n2)], reverse=True)
    return int(np.round(m * n / (m + n)))


def _ks_square_outside(n: int, h: int) -> float:
    """P(D_{n,n} >= h/n) = 2 * sum_k (-1)^(k-1) C(2n, n-kh) / C(2n, n) (reflection principle)."""
    j = np.arange(n, dtype=np.float64)
    ratios = np.cumprod((n - j) / (n + j + 1.0))  # ratios[t-1] = C(2n, n-t) / C(2n, n)
    ks = np.arange(1, n // h + 1)
    terms = ratios[ks * h - 1]
    signs = np.where(ks % 2 == 1, 1.0, -1.0)
    return float(2.0 * np.sum((terms * signs)[::-1]))


def _ks_outside(m: int, n: int, g: int, hs: np.ndarray) -> np.ndarray:
    """Exact two-sample tail for several statistics: a scalar sweep for narrow bands (few cells,
    where numpy's per-call overhead dominates), one vectorized sweep over all columns otherwise."""
    # rough costs in microseconds: ~15 per anti-diagonal for numpy, ~0.3 per lattice cell in Python
    numpy_cost = 15.0 * (m + n)
    python_cost = float(np.sum(0.6 * hs * g + min(m, n)))
    if python_cost < numpy_cost:
        return np.asarray([_ks_outside_band_scalar(m, n, g, int(h)) for h in hs])
    return _ks_outside_band(m, n, g, hs)


def _ks_outside_band_scalar(m: int, n: int, g: int, h: int) -> float:
    """The recursion of :func:`_ks_outside_band` for one statistic, row by row in plain floats."""
    if m > n:  # the count is symmetric; sweeping the shorter side means fewer, wider rows
        m, n = n, m
    limit = h * g
    prev_lo = 0
    prev = [0.0] * (min(n, -(-limit // m) - 1 if limit % m else limit // m - 1) + 1)  # x = 0: all inside
    for x in range(1, m + 1):
        lo = max(0, (n * x - limit) // m + 1)
        hi = min(n, -((-(n * x + limit)) // m) - 1)
        if lo > hi:
            return 1.0
        row = [0.0] * (hi - lo + 1)
        before = 1.0  # B(x, lo - 1) lies outside the band (or does not exist when lo == 0)
        size = len(prev)
        for y in range(lo, hi + 1):
            j = y - prev_lo
            up = prev[j] if 0 <= j < size else 1.0  # B(x - 1, y)
            before = (x * up + y * before) / (x + y)
            row[y - lo] = before
        prev, prev_lo = row, lo
    return prev[n - prev_lo]


def _ks_outside_band(m: int, n: int, g: int, hs: np.ndarray) -> np.ndarray:
    """Share of lattice paths (0,0) -> (m,n) that touch |n*x - m*y| >= h*g, for several h at once.

    B(x, y) = probability that a uniformly random path to (x, y) has left the band; B = 1 outside
    the band and B(x, y) = (x*B(x-1, y) + y*B(x, y-1)) / (x + y) inside (Hodges 1958; computing the
    outside share directly follows Viehmann 2021 for stability). We sweep anti-diagonals x + y = s,
    so every step is one vector operation over all columns and the band's width.
    """
    hs = np.asarray(hs, dtype=np.int64)
    limit = (hs * g)[:, None]
    big = int(limit.max())
    total = m + n
    # the band is < 2*big/total + 2 wide on a diagonal; two rows padded with 1.0, reused in turn
    cap = 2 * big // total + 4
    bufs = [np.ones((hs.size, cap + 2)), np.ones((hs.size, cap + 2))]
    bufs[0][:, 1] = 0.0  # B(0, 0) = 0
    plo, pw, which = 0, 1, 0
    all_x = np.arange(m + 1, dtype=np.float64)
    for s in range(1, total + 1):
        lo = max(0, s - n, (m * s - big) // total + 1)
        hi = min(m, s, -((-(m * s + big)) // total) - 1)
        if lo > hi:
            return np.ones(hs.size)
        width = hi - lo + 1
        prev, nxt = bufs[which], bufs[1 - which]
        start = lo - plo  # prev[:, x - plo + 1] = B(x, s-1-x)
        left = prev[:, start : start + width]  # B(x-1, y)
        down = prev[:, start + 1 : start + 1 + width]  # B(x, y-1)
        xs = all_x[lo : hi + 1]
        cur = nxt[:, 1 : width + 1]
        np.subtract(left, down, out=cur)
        cur *= xs / s  # (x*left + y*down) / s == down + x/s * (left - down)
        cur += down
        np.copyto(cur, 1.0, where=np.abs(total * xs - m * s) >= limit)  # |n*x - m*y| >= h*g: outside
        prev[:, 1 : pw + 1] = 1.0  # clean the old row before it is reused
        plo, pw, which = lo, width, 1 - which
    # the last diagonal holds the single point (m, n)
    return bufs[which][:, m - plo + 1].copy()


# ---------------------------------------------------------------- Kolmogorov distribution (kstwo)
def kolmogorov_sf(n: int, x: float) -> float:
    """P(D_n > x) for the two-sided one-sample KS statistic D_n (scipy's ``kstwo.sf``).

    Region choice follows Simard & L'Ecuyer (2011): Ruben-Gambino closed forms at the extremes,
    twice the exact one-sided Smirnov tail where it is accurate, the Durbin matrix
    (Marsaglia-Tsang-Wang 2003) for small n*x^2 and the Pelz-Good expansion for large n.
    """
    if math.isnan(x) or n <= 0:
        return math.nan
    if x >= 1.0:
        return 0.0
    if x <= 0.0:
        return 1.0
    t = n * x
    if t <= 1.0:
        if t <= 0.5:
            return 1.0
        log_cdf = _log_nfact_over_npow(n) + n * math.log(2.0 * t - 1.0)
        return _clip(1.0 - math.exp(log_cdf))
    if t >= n - 1:
        return _clip(2.0 * (1.0 - x) ** n)
    if x >= 0.5:
        return _clip(2.0 * smirnov_sf(n, x))
    nxx = t * x
    if n <= 140:
        if nxx <= 4.0:
            return _clip(1.0 - _durbin_cdf(n, x))
        return _clip(2.0 * smirnov_sf(n, x))
    if nxx >= 370.0:
        return 0.0
    if nxx >= 2.2:
        return _clip(2.0 * smirnov_sf(n, x))
    if n <= 100_000 and n * x**1.5 <= 1.4:
        return _clip(1.0 - _durbin_cdf(n, x))
    return _clip(1.0 - _pelz_good_cdf(n, x))


def _clip(p: float) -> float:
    return min(1.0, max(0.0, p))


def _log_nfact_over_npow(n: int) -> float:
    """log(n! / n^n), summed in extended precision."""
    i = np.arange(1, n + 1, dtype=np.longdouble)
    return float(np.sum(np.log(i / n)))


def _durbin_cdf(n: int, d: float) -> float:
    """P(D_n < d) by the Durbin matrix method as formulated by Marsaglia, Tsang and Wang (2003)."""
    nd = n * d
    if d >= 1.0:
        return 1.0
    if nd <= 0.5:
        return 0.0
    k = math.ceil(nd)
    h = k - nd
    m = 2 * k - 1
    inv_fact = np.ones(m + 1)  # inv_fact[i] = 1 / i!
    inv_fact[1:] = np.cumprod(1.0 / np.arange(1, m + 1))
    i = np.arange(m)
    diff = i[:, None] - i[None, :] + 1
    H = np.where(diff >= 0, inv_fact[np.clip(diff, 0, m)], 0.0)
    edge = (1.0 - h ** (i + 1)) * inv_fact[i + 1]
    H[:, 0] = edge
    H[m - 1, :] = edge[::-1]
    H[m - 1, 0] = (1.0 - 2.0 * h**m + max(0.0, 2.0 * h - 1.0) ** m) * inv_fact[m]
    # H^n by repeated squaring, rescaling by powers of two to stay in range
    result = np.eye(m)
    r_exp = 0
    base_exp = 0
    e = n
    while e > 0:
        if e & 1:
            result = result @ H
            r_exp += base_exp
            r_exp += _rescale(result)
        e >>= 1
        if e:
            H = H @ H
            base_exp *= 2
            base_exp += _rescale(H)
    val = float(result[k - 1, k - 1])
    if val <= 0.0:
        return 0.0
    log_p = math.log(val) + r_exp * math.log(2.0) + _log_nfact_over_npow(n)
    return _clip(math.exp(log_p))


def _rescale(a: np.ndarray) -> int:
    """Scale ``a`` in place by a power of two when it grows large; return the exponent removed."""
    top = float(np.max(np.abs(a)))
    if top > 2.0**128:
        e = math.frexp(top)[1]
        a *= 2.0**-e
        return e
    return 0


def _pelz_good_cdf(n: int, x: float) -> float:
    """Pelz-Good (1976) asymptotic expansion of P(D_n <= x) to order n^(-3/2)."""
    z = math.sqrt(n) * x
    z2, z3, z4, z6 = z * z, z**3, z**4, z**6
    pi2, pi4, pi6 = math.pi**2, math.pi**4, math.pi**6
    if -pi2 / (8.0 * z2) < _MINLOG:
        return 0.0
    kmax = max(1, math.ceil(16.0 * z / math.pi)) + 2
    k = np.arange(1, kmax + 1, dtype=np.float64)
    odd = 2.0 * k - 1.0
    w = np.exp(-(odd**2) * pi2 / (8.0 * z2))  # exp(-(2k-1)^2 pi^2 / (8 z^2))
    o2, o4, o6 = odd**2, odd**4, odd**6
    s0 = np.sum(w)
    s1 = np.sum((pi2 * o2 / 4.0 - z2) * w)
    s2 = np.sum(((6 * z6 + 2 * z4) + (2 * z4 - 5 * z2) * pi2 * o2 / 4.0 + pi4 * (1 - 2 * z2) * o4 / 16.0) * w)
    s3 = np.sum(
        (
            (-30 * z6 - 90 * z**8)
            + pi2 * (135 * z4 - 96 * z6) * o2 / 4.0
            + pi4 * (-60 * z2 + 212 * z4) * o4 / 16.0
            + pi6 * (5 - 30 * z2) * o6 / 64.0
        )
        * w
    )
    root = math.sqrt(2.0 * math.pi)
    k0 = root / z * s0
    k1 = root / (6.0 * z4) * s1
    k2 = root / (72.0 * z**7) * s2
    k3 = root / (6480.0 * z**10) * s3
    w2 = np.exp(-(k**2) * pi2 / (2.0 * z2))
    k2 -= pi2 * root / (36.0 * z3) * np.sum(k**2 * w2)
    k3 += pi2 * root / (216.0 * z6) * np.sum((3.0 * z2 - pi2 * k**2) * k**2 * w2)
    return float(k0 + k1 / math.sqrt(n) + k2 / n + k3 / n**1.5)


def smirnov_sf(n: int, x: float) -> float:
    """P(D+_n > x) for the one-sided KS statistic: the exact Birnbaum-Tingey (1951) sum.

    Terms are summed in log space in extended precision; above n = 10^6 the Smirnov approximation
    exp(-(6nx+1)^2 / 18n) is used, as scipy does.
    """
    if math.isnan(x):
        return math.nan
    if x <= 0.0:
        return 1.0
    if x >= 1.0:
        return 0.0
    if n == 1:
        return 1.0 - x
    nx = n * x
    if nx <= 1.0:
        return _clip(1.0 - x * (1.0 + x) ** (n - 1))
    if -2.0 * n * x * x < _MINLOG:
        return 0.0
    if nx >= n - 1:
        return _clip((1.0 - x) ** n)
    if n > 1_000_000:
        return _clip(math.exp(-((6.0 * nx + 1.0) ** 2) / 18.0 / n))
    ld = np.longdouble
    xl = ld(x)
    vmax = math.floor(n * (1.0 - x))
    v = np.arange(0, vmax + 1, dtype=ld)
    b = 1 - xl - v / n
    keep = b > 0
    v, b = v[keep], b[keep]
    a = xl + v / n
    log_binom = np.zeros(v.size, dtype=ld)
    if v.size > 1:
        j = v[1:]
        log_binom[1:] = np.cumsum(np.log((n - j + 1) / j))
    terms = log_binom + (v - 1) * np.log(a) + (n - v) * np.log(b)
    return _clip(float(xl * np.sum(np.exp(terms))))
