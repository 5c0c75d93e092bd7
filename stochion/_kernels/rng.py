"""xoshiro256** random numbers over a plain ``uint64[4]`` state, for the compiled kernels.

The kernels keep their streams in arrays rather than ``numpy.random.Generator`` objects so that batched
trials running in parallel (``numba.prange``) each own a stream, and so that the pure-Python reference can
reproduce every draw bit for bit. States are seeded from ``numpy.random.SeedSequence`` (see
:func:`stream_state`), which gives independent, well-mixed streams per trial.

Reference: Blackman D, Vigna S (2021) Scrambled linear pseudorandom number generators. ACM Trans Math Softw
47:36. doi:10.1145/3460772
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["stream_state", "next_double", "next_u64"]

_5 = np.uint64(5)
_9 = np.uint64(9)
_7 = np.uint64(7)
_57 = np.uint64(57)
_17 = np.uint64(17)
_45 = np.uint64(45)
_19 = np.uint64(19)
_11 = np.uint64(11)
_TWO_M53 = 1.0 / 9007199254740992.0


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
