"""train/safetensors_io.py: round trip and clear errors on malformed files."""
import json
import os
import struct
import sys
import tempfile

try:
    import torch
except ImportError:
    print("SKIP: python3-torch is not installed")
    sys.exit(77)

sys.path.insert(0, os.path.join(os.environ.get("AVATAR_SOURCE_DIR", "."), "train"))
import safetensors_io as st  # noqa: E402

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def expect_error(blob, needle, what):
    with tempfile.NamedTemporaryFile(suffix=".safetensors", delete=False) as f:
        f.write(blob)
    try:
        st.load(f.name)
        check(False, what + " (no error)")
    except st.SafetensorsError as e:
        check(needle in str(e) and f.name in str(e), "%s: %s" % (what, e))
    finally:
        os.unlink(f.name)


def header(h):
    raw = json.dumps(h).encode()
    return struct.pack("<Q", len(raw)) + raw


with tempfile.TemporaryDirectory() as d:
    p = os.path.join(d, "a.safetensors")
    src = {"w": torch.randn(3, 5), "h": torch.randn(7).half(), "i": torch.arange(4, dtype=torch.int64),
           "s": torch.tensor(2.5)}
    st.save(src, p)
    got = st.load(p)
    for k, v in src.items():
        check(got[k].dtype == v.dtype and torch.equal(got[k], v), "round trip %s %s" % (k, v.dtype))
    with open(p, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
    check((8 + n) % 8 == 0, "data section is 8-byte aligned")
    check(hdr["w"]["dtype"] == "F32" and hdr["h"]["dtype"] == "F16", "dtype names F32/F16")
    check(st.load(p, to_float32=True)["h"].dtype == torch.float32, "to_float32 converts F16")
    # bf16: 1.0 is 0x3f80
    raw = header({"b": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}) + struct.pack("<HH", 0x3F80, 0xC000)
    with open(p, "wb") as f:
        f.write(raw)
    check(st.load(p)["b"].tolist() == [1.0, -2.0], "BF16 read as F32")

expect_error(b"\x01\x02", "truncated", "truncated file")
expect_error(struct.pack("<Q", 1000) + b"{}", "past end", "header length past the end")
expect_error(header({"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}) + b"\0" * 8,
             "offsets out of range", "offsets out of range")
expect_error(header({"x": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 4]}}) + b"\0" * 4,
             "unknown dtype", "unknown dtype")
expect_error(header({"x": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}) + b"\0" * 8,
             "elements for shape", "size does not match shape")
expect_error(struct.pack("<Q", 3) + b"{x}", "bad JSON", "bad JSON header")

print("FAILED: %d" % len(failures) if failures else "PASS")
sys.exit(1 if failures else 0)
