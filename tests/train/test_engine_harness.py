"""bench/unet_vs_torch.py and train/check_engine.py against a stand-in engine
(tests/train/fake_engine.py): both must pass on exact outputs and fail on perturbed ones."""
import os
import subprocess
import sys

try:
    import torch  # noqa: F401
except ImportError:
    print("SKIP: python3-torch is not installed")
    sys.exit(77)

SRC = os.environ.get("AVATAR_SOURCE_DIR", ".")
FAKE = os.path.join(SRC, "tests", "train", "fake_engine.py")
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def run(cmd, perturb):
    env = dict(os.environ, FAKE_ENGINE_PERTURB=str(perturb))
    p = subprocess.run([sys.executable] + cmd, capture_output=True, text=True, env=env)
    return p.returncode, p.stdout + p.stderr


bench = [os.path.join(SRC, "bench", "unet_vs_torch.py"), "--config", "tiny", "--repeat", "1", "--engine", FAKE]
# one bench run (each costs two torch start-ups): an engine off by exactly 0.01 must be
# timed and reported as off by 0.01; check_engine below covers the exact case
rc, out = run(bench, 0.01)
print(out)
check(rc == 0 and "ratio torch/engine:" in out and "GFLOP/s" in out, "bench runs the engine half")
check("max_abs 0.01," in out, "bench: perturbed output reported")
check("warmup_calls: 1" in out, "bench: the engine gets one untimed warm-up call, as torch does")

chk = [os.path.join(SRC, "train", "check_engine.py"), "--engine", FAKE]
rc, out = run(chk, 0)
print(out)
check(rc == 0 and "PASS" in out, "check_engine passes on an exact engine")
rc, out = run(chk, 0.01)
check(rc == 1 and "FAIL unet" in out, "check_engine fails on a perturbed engine")

print("FAILED: %d" % len(failures) if failures else "PASS")
sys.exit(1 if failures else 0)
