"""Load the golden diffusers models with strict key matching and reproduce their outputs.

Proves that train/models.py has diffusers' key names and math.  Exit 0 = pass,
1 = fail, 77 = skipped (../shared or torch missing).
Usage: check_goldens.py [GOLDEN_DIR]   (default $AVATAR_SHARED_DIR/golden)
"""
import json
import os
import sys

try:
    import torch
except ImportError:
    print("SKIP: python3-torch is not installed")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402
import safetensors_io as st  # noqa: E402


def compare(name, got, ref, tol):
    got = got.detach().double()
    ref = ref.double()
    if got.shape != ref.shape:
        print("FAIL %s: shape %s, expected %s" % (name, tuple(got.shape), tuple(ref.shape)))
        return False
    max_abs = (got - ref).abs().max().item()
    rel = ((got - ref).norm() / ref.norm().clamp_min(1e-30)).item()
    ok = max_abs <= tol["max_abs"] and rel <= tol["rel_l2"]
    print("%s %s: max_abs %.3g (tol %g) rel_l2 %.3g (tol %g)"
          % ("ok  " if ok else "FAIL", name, max_abs, tol["max_abs"], rel, tol["rel_l2"]))
    return ok


def load_strict(module, path):
    sd = st.load(path, to_float32=True)
    mine = module.state_dict()
    missing = sorted(set(mine) - set(sd))
    extra = sorted(set(sd) - set(mine))
    if missing or extra:
        print("FAIL %s: keys missing %s, unexpected %s" % (path, missing[:5], extra[:5]))
        return False
    for k, v in sd.items():
        if tuple(mine[k].shape) != tuple(v.shape):
            print("FAIL %s: %s shape %s, expected %s" % (path, k, tuple(v.shape), tuple(mine[k].shape)))
            return False
    module.load_state_dict(sd, strict=True)
    return True


def check_unet(case_dir):
    case = json.load(open(os.path.join(case_dir, "case.json")))
    cfg = json.load(open(os.path.join(case_dir, "model", "config.json")))
    unet = models.UNet2DConditionModel(cfg).eval()
    if not load_strict(unet, os.path.join(case_dir, "model", "diffusion_pytorch_model.safetensors")):
        return False
    inp = st.load(os.path.join(case_dir, "inputs.safetensors"))
    tol = case["tolerance"]["out.sample"]
    ok = True
    for run in ("t999", "t1"):
        ref = st.load(os.path.join(case_dir, run + ".safetensors"))
        with torch.no_grad():
            out = unet(inp["sample"], ref["timestep"].long(), inp["encoder_hidden_states"])
        ok &= compare("unet %s out.sample" % run, out, ref["out.sample"], tol)
    return ok


def check_vae(case_dir):
    case = json.load(open(os.path.join(case_dir, "case.json")))
    cfg = json.load(open(os.path.join(case_dir, "model", "config.json")))
    vae = models.AutoencoderKL(cfg).eval()
    if not load_strict(vae, os.path.join(case_dir, "model", "diffusion_pytorch_model.safetensors")):
        return False
    inp = st.load(os.path.join(case_dir, "inputs.safetensors"))
    enc = st.load(os.path.join(case_dir, "encode.safetensors"))
    dec = st.load(os.path.join(case_dir, "decode.safetensors"))
    tol = case["tolerance"]
    name = os.path.basename(case_dir)
    with torch.no_grad():
        mean, logvar = vae.encode(inp["image"])
        sample = vae.decode(inp["latent"])
    ok = compare(name + " mean", mean, enc["mean"], tol["mean"])
    ok &= compare(name + " logvar", logvar, enc["logvar"], tol["logvar"])
    ok &= compare(name + " sample", sample, dec["sample"], tol["sample"])
    return ok


def check_pipeline(golden):
    """DDIM 4 steps + CFG 7.5 + VAE decode (train/sample.py's loop) against diffusers."""
    import sample
    case_dir = os.path.join(golden, "pipeline_ddim4_cfg_tiny")
    case = json.load(open(os.path.join(case_dir, "case.json")))
    unet_dir = os.path.join(golden, "unet_sd15_tiny", "model")
    vae_dir = os.path.join(golden, "vae_kl_tiny_lpb1", "model")
    unet = models.UNet2DConditionModel(json.load(open(os.path.join(unet_dir, "config.json")))).eval()
    vae = models.AutoencoderKL(json.load(open(os.path.join(vae_dir, "config.json")))).eval()
    if not (load_strict(unet, os.path.join(unet_dir, "diffusion_pytorch_model.safetensors"))
            and load_strict(vae, os.path.join(vae_dir, "diffusion_pytorch_model.safetensors"))):
        return False
    ref = st.load(os.path.join(case_dir, "pipeline.safetensors"))
    sched = json.load(open(os.path.join(case_dir, "scheduler_config.json"))) \
        if os.path.exists(os.path.join(case_dir, "scheduler_config.json")) else None
    import config
    sched = sched or config.SCHEDULER
    ts = sample.ddim_timesteps(sched, len(ref["timesteps"]))
    ok = ts == ref["timesteps"].tolist()
    print("%s ddim timesteps %s (diffusers %s)" % ("ok  " if ok else "FAIL", ts, ref["timesteps"].tolist()))
    abar = sample.alphas_cumprod(sched)
    g = 7.5
    z = ref["noise_init"]
    tol = case["tolerance"]
    with torch.no_grad():
        for i, t in enumerate(ts):
            pred = unet(torch.cat([z, z]), t, ref["encoder_hidden_states"])
            eps = pred[:1] + g * (pred[1:] - pred[:1])
            z = sample.ddim_step(z, eps, t, t - sched["num_train_timesteps"] // len(ts), abar, sched)
            ok &= compare("pipeline step%02d.latents" % i, z, ref["step%02d.latents" % i], tol["step*"])
        img = vae.decode(z / vae.config["scaling_factor"])
    ok &= compare("pipeline image", img, ref["image"], tol["image"])
    return ok


def main():
    if len(sys.argv) > 1:
        golden = sys.argv[1]
    else:
        shared = os.environ.get("AVATAR_SHARED_DIR", "")
        golden = os.path.join(shared, "golden")
    if not os.path.isdir(os.path.join(golden, "unet_sd15_tiny")):
        print("SKIP: golden data not found at %s (set AVATAR_SHARED_DIR to ../shared)" % golden)
        return 77
    torch.set_num_threads(2)
    ok = check_unet(os.path.join(golden, "unet_sd15_tiny"))
    for case in ("vae_kl_tiny_lpb1", "vae_kl_tiny_lpb2"):
        ok &= check_vae(os.path.join(golden, case))
    ok &= check_pipeline(golden)
    print("PASS" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
