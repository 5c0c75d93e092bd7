"""Compiled kernels (numba, plain arrays only).

numba's on-disk cache (``cache=True``) checks only the timestamp of the file that defines a function, not of the
files whose functions it inlines (``rates.rate_at``, the random streams, ``run_patch`` inside the batched
kernel). A stale entry would silently run old code after a change to any of those files. So, before any kernel
is loaded, the sources of all kernel code are hashed and every cached kernel is discarded when the hash changes.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_SOURCES = (_HERE.parent / "rates.py", *sorted(p for p in _HERE.glob("*.py") if p.name != "__init__.py"))


def _discard_stale_caches() -> None:
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in _SOURCES if p.exists())).hexdigest()
    cache_dirs = [_HERE / "__pycache__", _HERE.parent / "__pycache__"]
    stamp = cache_dirs[0] / "kernel-sources.sha256"
    try:
        if stamp.exists() and stamp.read_text() == digest:
            return
        for d in cache_dirs:
            if d.is_dir():
                for f in d.iterdir():
                    if f.suffix in (".nbi", ".nbc"):
                        f.unlink(missing_ok=True)
        stamp.parent.mkdir(exist_ok=True)
        tmp = stamp.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(digest)
        os.replace(tmp, stamp)
    except OSError:  # a read-only installation: numba then caches elsewhere or not at all
        pass


_discard_stale_caches()
