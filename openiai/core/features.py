"""Feature vectors as every layer handles them: float32, unit length, little-endian on disk.

Nothing here knows a dimension: a recognizer's width comes from the model version registry
(:mod:`openiai.core.versions`), so helpers take it as an argument or read it off the array.
"""

from __future__ import annotations

import numpy as np

FEATURE_DTYPE = np.dtype("<f4")  # float32 little-endian, the stored byte layout


def to_bytes(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=FEATURE_DTYPE).tobytes()


def from_bytes(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=FEATURE_DTYPE)


def as_vector(v, dim: int) -> np.ndarray:
    """float32 (dim,) from a numpy array, a list of floats or little-endian float32 bytes."""
    if isinstance(v, (bytes, bytearray, memoryview)):
        a = np.frombuffer(bytes(v), dtype=FEATURE_DTYPE)
    else:
        a = np.asarray(v, dtype=np.float32)
    a = a.reshape(-1).astype(np.float32, copy=False)
    if a.shape[0] != dim:
        raise ValueError(f"vector has {a.shape[0]} dimensions, expected {dim}")
    return a


def normalize(v: np.ndarray) -> np.ndarray:
    """Unit length along the last axis (a zero vector stays zero)."""
    v = np.asarray(v, np.float32)
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(norm, 1e-12)


def fuse(face_vectors) -> np.ndarray:
    """A person's fused vector: the normalised mean of its (unit) face vectors.

    Accepts one vector or a stack (n, dim); the dimension is the array's own."""
    a = np.asarray(face_vectors, np.float32)
    return normalize(a.reshape(-1, a.shape[-1]).mean(axis=0))


def fuse_runs(face_person: np.ndarray, face_vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(person keys, fused vectors) of faces sorted by person: each person is one run of rows,
    fused as :func:`fuse` does (the mean's direction is the sum's)."""
    starts = np.flatnonzero(np.r_[True, face_person[1:] != face_person[:-1]])
    return face_person[starts], normalize(np.add.reduceat(normalize(face_vectors), starts, axis=0))
