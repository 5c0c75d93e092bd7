"""xoshiro256** random numbers over a plain ``uint64[4]`` state, for the compiled kernels.

The kernels keep their streams in arrays rather than ``numpy.random.Generator`` objects so that batched
trials running in parallel (``numba.prange``) each own a stream, and so that the pure-Python reference can
reproduce every draw bit for bit. States are seeded from ``numpy.random.SeedSequence`` (see
:func:`stream_state`), which gives independent, well-mixed streams per trial.

Reference: Blackman D, Vigna S (2021) Scrambled linear pseudorandom number generators. ACM Trans Math Softw
47:36. doi:10.1145/3460772
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["child_seeds", "stream_state", "next_double", "next_u64", "next_exponential", "ziggurat_tables"]

_5 = np.uint64(5)
_9 = np.uint64(9)
_7 = np.uint64(7)
_57 = np.uint64(57)
_17 = np.uint64(17)
_45 = np.uint64(45)
_19 = np.uint64(19)
_11 = np.uint64(11)
_TWO_M53 = 1.0 / 9007199254740992.0


def ziggurat_tables():
    """Tables of the 256-layer ziggurat for the unit exponential with 53-bit mantissas.

    Marsaglia G, Tsang WW (2000) The ziggurat method for generating random variables. J Stat Softw 5(8).
    doi:10.18637/jss.v005.i08 — the construction of their ``zigset`` with ``m2 = 2**53``, the layout numpy's
    ``random_standard_exponential`` uses. The tables are recomputed here in double precision and differ from
    numpy's stored constants by ~1e-13 relative (no statistical difference; not bit-comparable with numpy).
    Returns ``(ke uint64[256], we float64[256], fe float64[256], r)``.
    """
    m2 = float(2**53)
    de = 7.697117470131487
    te = de
    ve = 3.949659822581572e-3
    ke = np.zeros(256, dtype=np.uint64)
    we = np.zeros(256)
    fe = np.zeros(256)
    q = ve / math.exp(-de)
    ke[0] = np.uint64((de / q) * m2)
    ke[1] = np.uint64(0)
    we[0] = q / m2
    we[255] = de / m2
    fe[0] = 1.0
    fe[255] = math.exp(-de)
    for i in range(254, 0, -1):
        de = -math.log(ve / de + math.exp(-de))
        ke[i + 1] = np.uint64((de / te) * m2)
        te = de
        fe[i] = math.exp(-de)
        we[i] = de / m2
    return ke, we, fe, 7.697117470131487


_ZIG_KE, _ZIG_WE, _ZIG_FE, _ZIG_R = ziggurat_tables()
_0xFF = np.uint64(0xFF)
_3 = np.uint64(3)
_8 = np.uint64(8)


def child_seeds(seed_sequence: np.random.SeedSequence, n: int) -> list:
    """The ``n`` children that ``seed_sequence.spawn(n)`` would give a fresh sequence, without mutating it.

    ``SeedSequence.spawn`` remembers how many children it made, so spawning twice from one object gives
    different streams; deriving them from ``(entropy, spawn_key + (i,))`` keeps a seed reproducible however
    often it is used.
    """
    ss = seed_sequence
    return [np.random.SeedSequence(ss.entropy, spawn_key=tuple(ss.spawn_key) + (i,), pool_size=ss.pool_size)
            for i in range(n)]


def stream_state(seed_sequence: np.random.SeedSequence) -> np.ndarray:
    """A fresh xoshiro256** state (``uint64[4]``, never all zero) drawn from a ``SeedSequence``."""
    state = seed_sequence.generate_state(4, np.uint64)
    if not state.any():  # the one forbidden state; probability 2**-256
        state[0] = np.uint64(1)
    return np.ascontiguousarray(state)


@numba.njit(cache=True, inline="always")
def next_u64(s):
    """Advance ``s`` in place and return the next 64-bit output."""
    s0 = s[0]
    s1 = s[1]
    s2 = s[2]
    s3 = s[3]
    x = s1 * _5
    result = ((x << _7) | (x >> _57)) * _9
    t = s1 << _17
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = (s3 << _45) | (s3 >> _19)
    s[0] = s0
    s[1] = s1
    s[2] = s2
    s[3] = s3
    return result


@numba.njit(cache=True, inline="always")
def next_double(s):
    """Uniform double in [0, 1) with 53 random bits."""
    return float(next_u64(s) >> _11) * _TWO_M53


@numba.njit(cache=True, inline="always")
def next_exponential(s):
    """Unit exponential variate by the ziggurat (exact; one 64-bit draw ~99 % of the time)."""
    while True:
        ri = next_u64(s) >> _3
        idx = ri & _0xFF
        ri >>= _8
        x = float(ri) * _ZIG_WE[idx]
        if ri < _ZIG_KE[idx]:
            return x
        if idx == 0:
            return _ZIG_R - math.log1p(-next_double(s))
        if (_ZIG_FE[idx - 1] - _ZIG_FE[idx]) * next_double(s) + _ZIG_FE[idx] < math.exp(-x):
            return x
