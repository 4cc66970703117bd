"""Fits the two polynomials of fastmath.rs's gelu_f32 / gelu_grad_f32
(the exact GELU and its derivative evaluated in f32 lanes) and prints
their coefficients and the worst relative error of each polynomial
evaluated the way the kernel evaluates it: Horner's rule in float32,
with the coefficients rounded to float32.

* central, |x| < T: (Phi(x) - 1/2) / x as a polynomial in s = x*x;
* tail, T <= a <= CUT: Phi(-a) * e^(a*a/2) * a as a polynomial in
  t = 1/a - CENTER (the shift keeps the coefficients small, so that the
  float32 evaluation does not cancel).

Phi is the standard normal CDF, computed from Python's math.erf / erfc in
float64; near 1/a = 0 (a > 33, beyond the tail's range anyway) the
asymptotic series would be used. Each fit is a least-squares fit to the
relative error on Chebyshev nodes, with the coefficients rounded to
float32 one at a time (lowest order first), each rounding followed by a
refit of the rest. Needs numpy; run by hand:

    python3 crates/tensor/tools/fit_gelu.py
"""
import math

import numpy as np

T = 1.25
CUT = 12.5
CENTER = (1 / CUT + 1 / T) / 2
DEG_CENTRAL = 6
DEG_TAIL = 11


def central(x):
    return np.array([0.5 * math.erf(v / math.sqrt(2)) / v for v in x])


def tail(v):
    return np.array([0.5 * math.erfc(1 / u / math.sqrt(2)) * math.exp(0.5 / u / u) / u for u in v])


def fit32(f, lo, hi, deg, var, n=3000):
    k = np.arange(n)
    x = (lo + hi) / 2 + (hi - lo) / 2 * np.cos(np.pi * (k + 0.5) / n)
    y = f(x)
    t = var(x)
    w = 1 / np.abs(y)
    coef = []
    for i in range(deg + 1):
        rest = y - sum(c * t**j for j, c in enumerate(coef))
        a = np.vander(t, deg + 1, increasing=True)[:, i:]
        c, *_ = np.linalg.lstsq(a * w[:, None], rest * w, rcond=None)
        coef.append(float(np.float32(c[0])))
    return coef


def horner32(coef, t):
    t = t.astype(np.float32)
    p = np.full_like(t, np.float32(coef[-1]))
    for c in coef[-2::-1]:
        p = (p * t).astype(np.float32) + np.float32(c)
    return p


for name, f, lo, hi, deg, var in [
    ("central (Phi(x) - 1/2)/x in x*x", central, 1e-6, T, DEG_CENTRAL, lambda x: x * x),
    ("tail Phi(-a) e^(a^2/2) a in 1/a - CENTER", tail, 1 / CUT, 1 / T, DEG_TAIL,
     lambda v: v - CENTER),
]:
    coef = fit32(f, lo, hi, deg, var)
    xs = np.linspace(lo, hi, 200001).astype(np.float32)
    ys = f(xs.astype(np.float64))
    got = horner32(coef, var(xs).astype(np.float32)).astype(np.float64)
    err = np.max(np.abs(got - ys) / np.abs(ys))
    print(f"{name}: worst relative error in float32 {err:.3g}")
    for c in coef:
        print(f"    {str(np.float32(c))},")
print(f"CENTER = {np.float32(CENTER)}")
