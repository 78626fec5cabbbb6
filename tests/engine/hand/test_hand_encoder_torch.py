"""C HandEncoder vs the PyTorch reference (train/models.py HandEncoder).

usage: test_hand_encoder_torch.py HAND_ENCODER_RUN
Builds HandEncoder with random weights, exports the hand_encoder/ folder
(F32, and F16 against the same model with F16-rounded weights), runs the C
forward through the hand-encoder-run driver and compares the tokens:
max abs < 1e-5, relative L2 < 1e-6. Exits 77 when torch or train/models.py
is not available.
"""
import json
import os
import subprocess
import sys
import tempfile

SRC = os.environ.get("AVATAR_SOURCE_DIR",
                     os.path.join(os.path.dirname(__file__), "..", "..", ".."))
TRAIN = os.path.join(SRC, "train")
if not os.path.isfile(os.path.join(TRAIN, "models.py")):
    print("SKIP: %s/models.py not found" % TRAIN)
    sys.exit(77)
try:
    import torch
except ImportError:
    print("SKIP: python3-torch is not installed")
    sys.exit(77)
sys.path.insert(0, TRAIN)
import models  # noqa: E402
import safetensors_io  # noqa: E402

torch.manual_seed(1234)
torch.set_num_threads(1)
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def random_keypoints(b, k):
    kp = torch.rand(b, k, 3) * torch.tensor([1.2, 1.2, 1.6]) - torch.tensor([0.1, 0.1, 0.3])
    kp[0, 0, 2] = 0.3            # exactly the threshold: present
    kp[0, 1, 2] = 0.2999         # just below: missing
    kp[0, 2, 2] = 1.8            # clamped to 1
    kp[0, 3, 2] = -1.0           # clamped to 0: missing
    kp[1, 21:, 2] = 0.0          # a whole missing right hand
    return kp


def run_c(exe, folder, kp, tmp):
    kp_path = os.path.join(tmp, "kp.f32")
    out_path = os.path.join(tmp, "tok.f32")
    kp.numpy().astype("<f4").tofile(kp_path)
    r = subprocess.run([exe, folder, kp_path, str(kp.shape[0]), out_path],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stderr)
        return None
    import numpy as np
    return torch.from_numpy(np.fromfile(out_path, dtype="<f4").copy())


def compare(name, got, want):
    if got is None:
        check(False, name + ": C forward failed")
        return
    want = want.reshape(-1).double()
    got = got.double()
    if got.numel() != want.numel():
        check(False, "%s: %d tokens values, expected %d" % (name, got.numel(), want.numel()))
        return
    max_abs = (got - want).abs().max().item()
    rel = ((got - want).norm() / want.norm()).item()
    print("%s: max abs %.3g, rel L2 %.3g" % (name, max_abs, rel))
    check(max_abs < 1e-5, name + ": max abs < 1e-5")
    check(rel < 1e-6, name + ": rel L2 < 1e-6")


def export(enc, cfg, folder, dtype):
    os.makedirs(folder)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f)
    tensors = {k: v.to(dtype) for k, v in enc.state_dict().items()}
    safetensors_io.save(tensors, os.path.join(folder, "diffusion_pytorch_model.safetensors"))


def check_shipped(exe, tmp):
    """models/avatar-default/hand_encoder (F16) when present in the tree."""
    folder = os.path.join(SRC, "models", "avatar-default", "hand_encoder")
    cfg_path = os.path.join(folder, "config.json")
    st_path = os.path.join(folder, "diffusion_pytorch_model.safetensors")
    if not (os.path.isfile(cfg_path) and os.path.isfile(st_path)):
        print("skip shipped model: %s not found" % folder)
        return
    with open(cfg_path) as f:
        cfg = {k: v for k, v in json.load(f).items() if not k.startswith("_")}
    enc = models.HandEncoder(cfg)
    enc.load_state_dict(safetensors_io.load(st_path, to_float32=True))
    kp = random_keypoints(2, cfg["num_keypoints"])
    with torch.no_grad():
        want = enc(kp)
    compare("shipped model B=2", run_c(exe, folder, kp, tmp), want)


def main():
    if len(sys.argv) != 2:
        print("usage: %s HAND_ENCODER_RUN" % sys.argv[0])
        return 2
    exe = sys.argv[1]
    cfg = {"num_keypoints": 42, "num_frequencies": 6, "hidden_dim": 64,
           "cross_attention_dim": 48, "confidence_threshold": 0.3}
    enc = models.HandEncoder(cfg)
    with torch.no_grad():
        for p in enc.parameters():  # non-trivial LayerNorm and embeddings
            p.add_(torch.randn_like(p) * 0.3)
    keys = sorted(enc.state_dict())
    want_keys = sorted(["linear_1.weight", "linear_1.bias", "linear_2.weight", "linear_2.bias",
                        "keypoint_embedding.weight", "missing_embedding",
                        "norm_out.weight", "norm_out.bias"])
    check(keys == want_keys, "state_dict keys match docs/model-format.md: %s" % keys)
    kp = random_keypoints(3, 42)
    with tempfile.TemporaryDirectory() as tmp:
        export(enc, cfg, os.path.join(tmp, "f32"), torch.float32)
        with torch.no_grad():
            want = enc(kp)
        compare("F32 B=3", run_c(exe, os.path.join(tmp, "f32"), kp, tmp), want)

        # F16 file: the reference is the same model with F16-rounded weights.
        export(enc, cfg, os.path.join(tmp, "f16"), torch.float16)
        with torch.no_grad():
            for p in enc.parameters():
                p.copy_(p.half().float())
            want16 = enc(kp)
        compare("F16 B=3", run_c(exe, os.path.join(tmp, "f16"), kp, tmp), want16)

        # All missing: a reference image without detected hands.
        none = torch.zeros(1, 42, 3)
        with torch.no_grad():
            want0 = enc(none)
        compare("all missing", run_c(exe, os.path.join(tmp, "f16"), none, tmp), want0)
        check_shipped(exe, tmp)
    if failures:
        print("%d failure(s)" % len(failures))
        return 1
    print("all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
