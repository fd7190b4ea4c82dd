"""Minimal safetensors reader/writer using only the standard library and numpy.

There is no `safetensors` Python package on this machine, so the format is written by hand:

    8 bytes   little-endian u64 N = length of the JSON header
    N bytes   UTF-8 JSON: {name: {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
                           "__metadata__": {str: str}}   (padded with spaces to a multiple of 8)
    rest      raw little-endian tensor bytes; offsets are relative to the start of this region.

Tensors are stored contiguously in header order. Accepts numpy arrays or torch tensors (moved to CPU).

Usage:
    from safetensors_io import save_file, load_file
    save_file({"w": np.zeros((2, 3), np.float32)}, "x.safetensors", metadata={"note": "hi"})
    tensors, metadata = load_file("x.safetensors")
"""
import json
import struct

import numpy as np

_DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}


def _to_numpy(t):
    if hasattr(t, "detach"):  # torch tensor, without importing torch here
        t = t.detach().cpu().contiguous().numpy()
    return np.asarray(t)


def _code_for(arr):
    for code, dt in _DTYPES.items():
        if arr.dtype.kind == dt.kind and arr.dtype.itemsize == dt.itemsize:
            return code
    raise TypeError(f"unsupported dtype {arr.dtype}")


def save_file(tensors, path, metadata=None):
    """Write {name: array} to `path` in insertion order. metadata: optional {str: str}."""
    header = {}
    blobs = []
    offset = 0
    for name, t in tensors.items():
        arr = _to_numpy(t)
        code = _code_for(arr)
        data = np.ascontiguousarray(arr, dtype=_DTYPES[code]).tobytes()
        header[name] = {"dtype": code, "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError("metadata must be {str: str}")
        header["__metadata__"] = dict(metadata)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * (-len(hjson) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)


def load_file(path):
    """Return ({name: numpy array}, metadata dict) in header order."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", {})
    body = memoryview(raw)[8 + n:]
    out = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        dt = _DTYPES[info["dtype"]]
        out[name] = np.frombuffer(body[begin:end], dtype=dt).reshape(info["shape"]).copy()
    return out, metadata


if __name__ == "__main__":  # round-trip self-test
    import os
    import tempfile

    src = {
        "a": np.arange(6, dtype=np.float32).reshape(2, 3),
        "b": np.array([1, -2, 3], dtype=np.int32),
        "c": np.array(2.5, dtype=np.float32),
    }
    p = os.path.join(tempfile.mkdtemp(), "t.safetensors")
    save_file(src, p, metadata={"k": "v"})
    got, meta = load_file(p)
    assert list(got) == list(src) and meta == {"k": "v"}
    for k in src:
        assert got[k].dtype == src[k].dtype and np.array_equal(got[k], src[k]), k
    (n,) = struct.unpack("<Q", open(p, "rb").read(8))
    assert n % 8 == 0
    print("safetensors_io ok")
