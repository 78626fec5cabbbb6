#!/usr/bin/python3
"""Issue 4 benchmark: one SD1.5 UNet step in the C engine and in PyTorch, same weights.

One run: build the real SD1.5 UNet config (block_out_channels 320,640,1280,1280,
attention_head_dim 8, cross_attention_dim 768, layers_per_block 2) with train/models.py
(diffusers key names), random weights (seeded), write them as a diffusers folder (f16 on
disk; both sides use exactly the f16-rounded values), time one step at batch 2
(as with CFG), 4x64x64 latents, 77 tokens in PyTorch (2 threads, warm-up, median), then
`avatar-engine run unet --model DIR --in IN --out OUT --warmup 1 --repeat N`, compare the outputs
and print both times, the ratio torch/engine, GFLOP/s of each, OpenBLAS sgemm GFLOP/s
and peak RSS of each.

  /usr/bin/python3 bench/unet_vs_torch.py --engine build/engine/avatar-engine
  /usr/bin/python3 bench/unet_vs_torch.py --config tiny --torch-only   (quick self-check)
"""
import argparse
import glob
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")
os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "train"))
import models  # noqa: E402
import safetensors_io as st  # noqa: E402

CONFIGS = {
    # the real SD1.5 UNet (860M parameters)
    "sd15": dict(sample_size=64),
    # a small structure-identical config for quick runs and the test suite
    "tiny": dict(block_out_channels=[32, 64, 64], attention_head_dim=8, cross_attention_dim=32,
                 norm_num_groups=8, sample_size=16,
                 down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
                 up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]),
}


def count_flops(unet, args):
    """FLOPs of one forward from the layer shapes (2 per multiply-add).

    Conv2d: 2*Cin/groups*k*k*Cout*Hout*Wout per image; Linear: 2*in*out per row;
    attention: QK^T and AV, 2*2*heads*Nq*Nk*head_dim per image.  Norms, activations
    and additions are left out (under 0.5% here).
    """
    total = [0]
    hooks = []

    def conv_hook(m, inp, out):
        k = m.kernel_size[0] * m.kernel_size[1]
        total[0] += 2 * out.numel() * (m.in_channels // m.groups) * k

    def lin_hook(m, inp, out):
        total[0] += 2 * out.numel() * m.in_features

    def attn_hook(m, inp, out):
        x = inp[0]
        ctx = inp[1] if len(inp) > 1 and inp[1] is not None else x
        total[0] += 2 * 2 * x.shape[0] * m.heads * x.shape[1] * ctx.shape[1] * m.head_dim

    for m in unet.modules():
        if isinstance(m, torch.nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, torch.nn.Linear):
            hooks.append(m.register_forward_hook(lin_hook))
        elif isinstance(m, models.Attention):
            hooks.append(m.register_forward_hook(attn_hook))
    with torch.no_grad():
        unet(*args)
    for h in hooks:
        h.remove()
    return total[0]


def sgemm_gflops(exe):
    """OpenBLAS sgemm GFLOP/s: bench_sgemm_ops if built, else numpy float32 matmul."""
    if exe and os.path.exists(exe):
        out = subprocess.run([exe], capture_output=True, text=True).stdout
        vals = [float(v) for v in re.findall(r"([0-9.]+)\s*GFLOP/s", out)]
        if vals:
            return max(vals), "bench_sgemm_ops (%s)" % exe
    n = 2048
    a = np.random.rand(n, n).astype(np.float32)
    b = np.random.rand(n, n).astype(np.float32)
    a @ b
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2.0 * n ** 3 / min(times) / 1e9, "numpy float32 matmul %dx%d (bench_sgemm_ops not found)" % (n, n)


class _Done:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run_with_peak_rss(cmd):
    """Run cmd; peak RSS in MiB from /proc/PID/status VmHWM, polled until it exits.
    (getrusage(RUSAGE_CHILDREN) would count the forked copy of this big process.)"""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        peak_kb = 0
        while proc.poll() is None:
            try:
                with open("/proc/%d/status" % proc.pid) as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            peak_kb = max(peak_kb, int(line.split()[1]))
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        out.seek(0)
        err.seek(0)
        return _Done(proc.returncode, out.read(), err.read()), peak_kb / 1024.0


def find_default(pattern):
    hits = sorted(glob.glob(os.path.join(ROOT, pattern)))
    return hits[0] if hits else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", help="avatar-engine binary (default: first build-*/engine/avatar-engine)")
    ap.add_argument("--sgemm", help="bench_sgemm_ops binary (default: first build-*/bench/bench_sgemm_ops)")
    ap.add_argument("--config", choices=sorted(CONFIGS), default="sd15")
    ap.add_argument("--repeat", type=int, default=3, help="timed calls on each side (median)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--torch-only", action="store_true", help="skip the engine half")
    ap.add_argument("--workdir", help="where to write the model folder and tensors, kept (default: a /tmp dir, removed)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    work = a.workdir or tempfile.mkdtemp(prefix="unet_vs_torch_")
    try:
        return run(a, work)
    finally:
        if not a.workdir:
            shutil.rmtree(work, ignore_errors=True)


def run(a, work):

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    cfg = models.unet_config(**CONFIGS[a.config])
    unet = models.UNet2DConditionModel(cfg).eval()
    # f16 on disk: round the weights once so both sides compute with identical values
    with torch.no_grad():
        for p in unet.parameters():
            p.copy_(p.half().float())
    nparam = sum(p.numel() for p in unet.parameters())
    mdir = os.path.join(work, "unet")
    os.makedirs(mdir, exist_ok=True)
    with open(os.path.join(mdir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
    st.save({k: v.half() for k, v in unet.state_dict().items()},
            os.path.join(mdir, "diffusion_pytorch_model.safetensors"))

    s = cfg["sample_size"]
    g = torch.Generator().manual_seed(a.seed + 1)
    sample = torch.randn(2, cfg["in_channels"], s, s, generator=g)
    ehs = torch.randn(2, 77, cfg["cross_attention_dim"], generator=g)
    timestep = torch.tensor([999.0])
    in_path = os.path.join(work, "in.safetensors")
    st.save({"sample": sample, "timestep": timestep, "encoder_hidden_states": ehs}, in_path)

    args = (sample, timestep.long(), ehs)
    flops = count_flops(unet, args)
    with torch.no_grad():
        ref = unet(*args)  # warm-up
        times = []
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            ref = unet(*args)
            times.append(time.perf_counter() - t0)
    t_torch = statistics.median(times)
    rss_torch = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("config: %s (%d parameters, %.1f MB f16 on disk in %s)"
          % (a.config, nparam, os.path.getsize(os.path.join(mdir, "diffusion_pytorch_model.safetensors")) / 1e6, mdir))
    print("step: batch 2, %dx%dx%d latents, 77 tokens, timestep 999; %.4f TFLOP (analytic)"
          % (cfg["in_channels"], s, s, flops / 1e12))
    print("torch %s, %d threads: %.3f s per step (median of %d, after a warm-up), %.1f GFLOP/s"
          % (torch.__version__, a.threads, t_torch, a.repeat, flops / t_torch / 1e9))
    print("torch peak RSS: %.0f MiB" % rss_torch)
    gf, how = sgemm_gflops(a.sgemm or find_default("build*/bench/bench_sgemm_ops"))
    print("sgemm: %.1f GFLOP/s via %s" % (gf, how))
    if not torch.isfinite(ref).all():
        print("ERROR: torch output is not finite")
        return 1
    if a.torch_only:
        return 0

    engine = a.engine or find_default("build*/engine/avatar-engine")
    if not engine or not os.path.exists(engine):
        print("ERROR: avatar-engine not found (pass --engine PATH, or --torch-only)")
        return 2
    out_path = os.path.join(work, "out.safetensors")
    cmd = [engine, "run", "unet", "--model", mdir, "--in", in_path, "--out", out_path,
           "--warmup", "1", "--repeat", str(a.repeat)]
    print("engine: " + " ".join(cmd))
    p, rss_engine = run_with_peak_rss(cmd)
    sys.stdout.write(p.stdout)
    sys.stderr.write(p.stderr)
    if p.returncode != 0:
        print("ERROR: avatar-engine exited with %d" % p.returncode)
        return 1
    m = re.search(r"time_per_call_s:\s*([0-9.eE+-]+)", p.stdout + p.stderr)
    if not m:
        print("ERROR: no 'time_per_call_s:' line in the engine's output")
        return 1
    t_engine = float(m.group(1))
    out = st.load(out_path, to_float32=True)["sample"]
    diff = (out.double() - ref.double())
    max_abs = diff.abs().max().item()
    rel = (diff.norm() / ref.double().norm()).item()
    print("engine: %.3f s per step (median of %d, after a warm-up), %.1f GFLOP/s (%.0f%% of sgemm)"
          % (t_engine, a.repeat, flops / t_engine / 1e9, 100.0 * flops / t_engine / 1e9 / gf))
    print("engine peak RSS: %.0f MiB (weights f32 in memory: %.0f MiB)" % (rss_engine, nparam * 4 / 2 ** 20))
    print("ratio torch/engine: %.2f" % (t_torch / t_engine))
    print("output engine vs torch: max_abs %.3g, rel_l2 %.3g" % (max_abs, rel))
    return 0


if __name__ == "__main__":
    sys.exit(main())
