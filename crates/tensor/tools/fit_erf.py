"""Fits the two polynomials of fastmath.rs's erf_f32 and prints their
coefficients and worst relative errors (evaluated in float64).

* |x| < 1: erf(x)/x as a polynomial of degree 7 in x*x.
* 1 <= |x| <= 4: erfc(x)*exp(x*x) as a polynomial of degree 11 in 1/x.

Each is a least-squares fit to the relative error on 2000 Chebyshev nodes
of its interval, against Python's math.erf / math.erfc; the error is then
measured on 200,001 evenly spaced points. Needs numpy; run by hand:

    python3 crates/tensor/tools/fit_erf.py
"""
import math

import numpy as np

erf = np.vectorize(math.erf)
erfc = np.vectorize(math.erfc)


def fit(f, lo, hi, deg, var):
    k = np.arange(2000)
    x = (lo + hi) / 2 + (hi - lo) / 2 * np.cos(np.pi * (k + 0.5) / 2000)
    y = f(x)
    a = np.vander(var(x), deg + 1, increasing=True)
    w = 1 / np.abs(y)
    c, *_ = np.linalg.lstsq(a * w[:, None], y * w, rcond=None)
    xs = np.linspace(lo, hi, 200001)
    ys = f(xs)
    err = np.max(np.abs(np.polyval(c[::-1], var(xs)) - ys) / np.abs(ys))
    return c, err


for name, f, lo, hi, deg, var in [
    ("P (erf(x)/x in x^2, |x| < 1)", lambda x: erf(x) / x, 1e-6, 1.0, 7, lambda x: x * x),
    ("Q (erfc(x)e^(x^2) in 1/x, 1..4)", lambda x: erfc(x) * np.exp(x * x), 1.0, 4.0, 11,
     lambda x: 1 / x),
]:
    c, err = fit(f, lo, hi, deg, var)
    print(f"{name}: max relative error {err:.3g}")
    for v in c:
        print(f"    {float(v)!r},")
