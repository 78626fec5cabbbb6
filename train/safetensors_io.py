"""Minimal safetensors reader/writer (no external package).

Format: u64 little-endian header length N, then N bytes of JSON
({name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}),
then the raw little-endian tensor bytes; offsets are relative to the end of the header.
"""
import json
import struct

import numpy as np
import torch

_DTYPES = {
    "F32": (np.float32, torch.float32),
    "F16": (np.float16, torch.float16),
    "F64": (np.float64, torch.float64),
    "I64": (np.int64, torch.int64),
    "I32": (np.int32, torch.int32),
    "U8": (np.uint8, torch.uint8),
}
_TORCH_TO_NAME = {v[1]: k for k, v in _DTYPES.items()}


class SafetensorsError(Exception):
    pass


def load(path, to_float32=False):
    """Read a safetensors file into a dict of torch tensors (BF16 becomes F32)."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise SafetensorsError("%s: truncated (no header length)" % path)
    (hlen,) = struct.unpack("<Q", blob[:8])
    if 8 + hlen > len(blob):
        raise SafetensorsError("%s: header length %d past end of file" % (path, hlen))
    try:
        header = json.loads(blob[8:8 + hlen].decode("utf-8"))
    except ValueError as e:
        raise SafetensorsError("%s: bad JSON header: %s" % (path, e))
    data = memoryview(blob)[8 + hlen:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = info.get("dtype")
        shape = info.get("shape")
        begin, end = info.get("data_offsets", [0, -1])
        if end > len(data) or begin > end:
            raise SafetensorsError("%s: tensor '%s': offsets out of range" % (path, name))
        raw = bytes(data[begin:end])
        if dtype == "BF16":
            u16 = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = u16.view(np.float32)
        elif dtype in _DTYPES:
            arr = np.frombuffer(raw, dtype=np.dtype(_DTYPES[dtype][0]).newbyteorder("<"))
        else:
            raise SafetensorsError("%s: tensor '%s': unknown dtype %s" % (path, name, dtype))
        count = int(np.prod(shape)) if shape else 1
        if arr.size != count:
            raise SafetensorsError("%s: tensor '%s': %d elements for shape %s"
                                   % (path, name, arr.size, shape))
        t = torch.from_numpy(arr.reshape(shape).copy())
        if to_float32 and t.is_floating_point():
            t = t.float()
        out[name] = t
    return out


def save(tensors, path, metadata=None):
    """Write a dict of torch tensors (contiguous, any supported dtype); keys sorted."""
    header = {}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        if t.dtype not in _TORCH_TO_NAME:
            raise SafetensorsError("%s: tensor '%s': unsupported dtype %s" % (path, name, t.dtype))
        raw = t.numpy().astype(t.numpy().dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _TORCH_TO_NAME[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    header["__metadata__"] = dict(metadata or {"format": "pt"})
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    # pad the header with spaces so the data starts 8-byte aligned
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for raw in chunks:
            f.write(raw)
