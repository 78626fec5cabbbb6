#!/usr/bin/python3
"""Run a model folder through `avatar-engine` and through train/models.py on the same
inputs; compare (max abs error, relative L2) within a stated tolerance.

  check_engine.py [--engine PATH] [--model models/avatar-default] [--pipeline | --pipeline-only]
                  [--pipeline-size 64]

Components: unet (hand tokens as encoder_hidden_states, no pose/reference: the engine's
plain UNet path), vae-encode, vae-decode.  Without --model a small random model in the
avatar-default layout is exported to a temporary folder.  Exit 77 when no avatar-engine
binary is found (looked up in --engine, $AVATAR_ENGINE, build*/engine/).
Tolerance (f32 both sides, same f16 weights): max_abs 2e-3, rel_l2 2e-4.

--pipeline also runs the whole avatar pipeline (`avatar-engine render --save-latents`)
against the same procedure written here on train/models.py and train/sample.py's DDIM:
reference PNG of an odd size (resized; checked against PIL's bilinear resize), its hand
key points, 6 pose frames drawn by the engine (the saved drawings are the torch input),
initial noise from a numpy port of ae_noise_fill (checked against the engine's), 3 DDIM
steps, CFG 2.5 with batch [uncond, cond] (uncond: no reference attention, zero hand
tokens), pose guider features in both.  Two cases, window 4, overlap 2:
  independent: no temporal attention, lookahead 1 (torch: all frames in one batch;
               overlapping windows must then change nothing);
  temporal:    all-frame attention per window (attn1 over the window's frames, then the
               reference tokens), lookahead all, progressive fusion of the overlapping
               windows' eps per step, cond and uncond separately before CFG (torch: the
               papers' whole-clip lockstep written out per frame).
Tolerance on the final latents: max_abs 2e-3, rel_l2 2e-4; decoded PNGs within 2/255.
"""
import argparse
import glob
import os
import subprocess
import sys
import tempfile

import numpy as np

try:
    import torch
except ImportError:
    print("SKIP: python3-torch is not installed")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import export  # noqa: E402
import models  # noqa: E402
import safetensors_io as st  # noqa: E402
import train_unet  # noqa: E402
import sample  # noqa: E402

TOL = {"max_abs": 2e-3, "rel_l2": 2e-4}


def find_engine(arg):
    cands = [arg, os.environ.get("AVATAR_ENGINE")]
    cands += sorted(glob.glob(os.path.join(os.getcwd(), "engine", "avatar-engine")))
    cands += sorted(glob.glob(os.path.join(os.path.dirname(HERE), "build*", "engine", "avatar-engine")))
    for c in cands:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


def random_model(out, concat=False):
    unet_cfg, pose_cfg, hand_cfg, vae_cfg = train_unet.tiny_configs()
    if concat:
        unet_cfg = dict(unet_cfg, in_channels=2 * unet_cfg["out_channels"])
    torch.manual_seed(0)
    uck = {"configs": {"unet": unet_cfg, "pose_guider": pose_cfg, "hand_encoder": hand_cfg},
           "scaling_factor": 0.5}
    for key, m in zip(train_unet.MODULE_KEYS, train_unet.build(unet_cfg, pose_cfg, hand_cfg)):
        with torch.no_grad():
            for p in m.parameters():
                p.add_(0.05 * torch.randn_like(p))
        uck[key] = m.state_dict()
    vae = models.AutoencoderKL(vae_cfg)
    export.export({"config": vae_cfg, "vae": vae.state_dict()}, uck, out, log=lambda s: None)


def compare(name, got, ref):
    d = got.double() - ref.double()
    max_abs = d.abs().max().item()
    rel = (d.norm() / ref.double().norm().clamp_min(1e-30)).item()
    ok = max_abs <= TOL["max_abs"] and rel <= TOL["rel_l2"]
    print("%s %s: max_abs %.3g rel_l2 %.3g" % ("ok  " if ok else "FAIL", name, max_abs, rel))
    return ok


def run(engine, comp, mdir, inputs, work):
    inp, out = os.path.join(work, comp + ".in.safetensors"), os.path.join(work, comp + ".out.safetensors")
    st.save(inputs, inp)
    p = subprocess.run([engine, "run", comp, "--model", mdir, "--in", inp, "--out", out],
                       capture_output=True, text=True)
    if p.returncode != 0:
        print("FAIL %s: avatar-engine exited %d: %s" % (comp, p.returncode, p.stderr.strip()[-500:]))
        return None
    return st.load(out, to_float32=True)


# ---------------------------------------------------------------- whole pipeline

M64 = (1 << 64) - 1


def _splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def _splitmix64_np(x):
    """Vectorised over uint64 arrays (numpy wraps on overflow)."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def noise_fill(seed, stream, index, n):
    """numpy port of ae_noise_fill (engine/sampler.c, docs/schedulers.md): a splitmix64
    counter hash keyed by (seed, stream, index) feeding Box-Muller in double precision."""
    key = _splitmix64(_splitmix64(_splitmix64(seed) ^ stream) ^ (index & M64))
    pairs = np.arange((n + 1) // 2, dtype=np.uint64)
    with np.errstate(over="ignore"):
        b1 = _splitmix64_np(np.uint64(key) + np.uint64(2) * pairs)
        b2 = _splitmix64_np(np.uint64(key) + np.uint64(2) * pairs + np.uint64(1))
    u1 = ((b1 >> np.uint64(11)).astype(np.float64) + 1.0) * (1.0 / 9007199254740992.0)
    u2 = ((b2 >> np.uint64(11)).astype(np.float64) + 1.0) * (1.0 / 9007199254740992.0)
    r = np.sqrt(-2.0 * np.log(u1))
    th = 2.0 * np.pi * u2
    out = np.empty(2 * len(pairs), dtype=np.float64)
    out[0::2] = r * np.cos(th)
    out[1::2] = r * np.sin(th)
    return out[:n].astype(np.float32)


def initial_noise(seed, frames, fs, rho):
    """The avatar stream's initial noise of frames 0..frames-1 (docs/avatar-pipeline.md):
    sqrt(rho) * shared + sqrt(1 - rho) * own_f in float32, shared = index -1."""
    a, b = np.sqrt(np.float32(rho)), np.sqrt(np.float32(1.0) - np.float32(rho))
    shared = noise_fill(seed, 0, -1, fs)
    return np.stack([a * shared + b * noise_fill(seed, 0, f, fs) for f in range(frames)])


def _triangle(j, w):
    x = (j + 0.5) * 2.0 / w
    return min(x, 2.0 - x)


@torch.no_grad()
def torch_pipeline(m, saved, steps, guidance, window, overlap, temporal, ref_init):
    """The per-window procedure of docs/avatar-pipeline.md on the engine's saved inputs,
    whole clip in lockstep. Returns the final latents (N, C, h, w)."""
    vae, unet = m["vae"], m["unet"]
    sf = vae.config["scaling_factor"]
    cfg = m["scheduler"]
    abar = sample.alphas_cumprod(cfg)
    ref_img = saved["reference"].float().permute(0, 3, 1, 2) / 255.0
    ref_kp = saved["reference_hand_keypoints"].float()
    pose_imgs = saved["pose"].float().permute(0, 3, 1, 2) / 255.0
    hands = saved["hand_keypoints"].float()
    z = saved["_noise"].clone()
    n = z.shape[0]
    bank = models.ReferenceBank(m["reference_unet"], unet)
    z_ref = vae.encode(ref_img * 2 - 1)[0] * sf
    bank.write(z_ref, m["hand_encoder"](ref_kp[None]))
    no_ref = torch.zeros_like(z_ref)   # the unconditional pass's concat channels
    if ref_init:
        z = sample.reference_init(z, z_ref, abar[sample.ddim_timesteps(cfg, steps)[0]])
    pose = m["pose_guider"](pose_imgs)
    ctx = m["hand_encoder"](hands)
    zero = torch.zeros_like(ctx)
    stride = window - overlap
    starts = [0] if n <= window else [k * stride for k in range(1 + -(-(n - window) // stride))]
    for t in sample.ddim_timesteps(cfg, steps):
        if not temporal:
            keep = torch.cat([torch.zeros(n, dtype=torch.bool), torch.ones(n, dtype=torch.bool)])
            bank.set_read(True, keep)
            zin = torch.cat([sample.unet_input(unet, z, no_ref), sample.unet_input(unet, z, z_ref)])
            e = unet(zin, t, torch.cat([zero, ctx]), torch.cat([pose, pose]))
            eu, ec = e[:n], e[n:]
        else:
            eu, ec = torch.zeros_like(z), torch.zeros_like(z)
            wsum = torch.zeros(n)
            for f0 in starts:
                sl = slice(f0, min(f0 + window, n))
                w = torch.tensor([_triangle(j, window) for j in range(sl.stop - f0)])
                # one UNet call per half and window, as the engine: all-frame attention
                # over the window's frames (models.BasicTransformerBlock.frames)
                unet.set_frames(sl.stop - f0)
                bank.set_read(False)
                u = unet(sample.unet_input(unet, z[sl], no_ref), t, zero[sl], pose[sl])
                bank.set_read(True)
                c = unet(sample.unet_input(unet, z[sl], z_ref), t, ctx[sl], pose[sl])
                eu[sl] += w[:, None, None, None] * u
                ec[sl] += w[:, None, None, None] * c
                wsum[sl] += w
            unet.set_frames(1)
            eu = eu / wsum[:, None, None, None]
            ec = ec / wsum[:, None, None, None]
        eps = eu + guidance * (ec - eu)
        z = sample.ddim_step(z, eps, t, t - cfg["num_train_timesteps"] // steps, abar, cfg)
    bank.clear()
    return z


def _pose_frames(n, canvas):
    """n OpenPose frames: a standing body, both hands, moving a little per frame."""
    frames = []
    for f in range(n):
        dx = 3.0 * f
        body = []
        for k, (x, y) in enumerate([(0.5, 0.2), (0.5, 0.35), (0.35, 0.35), (0.3, 0.55),
                                    (0.32, 0.72), (0.65, 0.35), (0.7, 0.55), (0.68, 0.72),
                                    (0.42, 0.7), (0.42, 0.85), (0.42, 0.98), (0.58, 0.7),
                                    (0.58, 0.85), (0.58, 0.98), (0.47, 0.17), (0.53, 0.17),
                                    (0.44, 0.19), (0.56, 0.19)]):
            body += [x * canvas + (dx if k in (3, 4) else 0.0), y * canvas, 0.9]
        hands = {}
        for side, cx in (("left", 0.68), ("right", 0.32)):
            pts = []
            for k in range(21):
                pts += [(cx + 0.01 * (k % 5) - 0.02) * canvas + (dx if side == "right" else -dx),
                        (0.74 + 0.012 * (k // 5)) * canvas, 0.8]
            hands[side] = pts
        frames.append({"version": 1.3, "canvas_width": canvas, "canvas_height": canvas,
                       "people": [{"pose_keypoints_2d": body,
                                   "hand_left_keypoints_2d": hands["left"],
                                   "hand_right_keypoints_2d": hands["right"]}]})
    return frames


def check_pipeline(engine, mdir, work, size=64, frames=6, steps=3, guidance=2.5):
    import json
    from PIL import Image
    ok = True
    m = sample.load_model(mdir)
    # reference: an odd-sized image (engine resizes it like PIL's bilinear)
    rng = np.random.default_rng(5)
    ref_png = os.path.join(work, "ref.png")
    src = os.path.join(mdir, "references", "identity_00.png")
    if os.path.exists(src):
        Image.open(src).convert("RGB").crop((13, 7, 13 + 203, 7 + 187)).save(ref_png)
    else:
        base = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
        Image.fromarray(base).resize((101, 83), Image.BILINEAR).save(ref_png)
    ref_json = os.path.join(work, "ref.json")
    with open(ref_json, "w") as f:
        json.dump(_pose_frames(1, 256)[0], f)
    poses = os.path.join(work, "poses.jsonl")
    with open(poses, "w") as f:
        for fr in _pose_frames(frames, 256):
            f.write(json.dumps(fr) + "\n")
    # the independent case also turns the reference init off and draws each frame's noise on
    # its own; the temporal case keeps the init on and mixes in a shared noise field
    for case, extra, temporal, rho in (("independent", ["--no-temporal-attention", "--lookahead", "1",
                                                        "--no-reference-init"], False, 0.0),
                                       ("temporal", ["--temporal-attention", "--lookahead", "all"], True, 0.6)):
        out = os.path.join(work, "render-" + case)
        lat = os.path.join(work, case + ".safetensors")
        cmd = [engine, "render", "--model", mdir, "--reference", ref_png, "--reference-pose",
               ref_json, "--poses", poses, "--out", out, "--size", "%dx%d" % (size, size),
               "--steps", str(steps), "--guidance", str(guidance), "--window", "4",
               "--overlap", "2", "--seed", "11", "--threads", "2", "--save-latents", lat,
               "--noise-correlation", repr(rho)] + extra
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            print("FAIL pipeline %s: avatar-engine exited %d: %s"
                  % (case, p.returncode, p.stderr.strip()[-500:]))
            ok = False
            continue
        saved = st.load(lat)
        n = saved["latents"].shape[0]
        if n != frames:
            print("FAIL pipeline %s: %d frames out for %d in" % (case, n, frames))
            ok = False
            continue
        if case == "independent":
            want = np.asarray(Image.open(ref_png).convert("RGB").resize((size, size), Image.BILINEAR))
            d = np.abs(want.astype(int) - saved["reference"][0].numpy().astype(int)).max()
            print("%s reference resize vs PIL bilinear: max diff %d/255" % ("ok  " if d <= 1 else "FAIL", d))
            ok &= bool(d <= 1)
        fs = int(np.prod(saved["latents"].shape[1:]))
        noise = initial_noise(11, n, fs, rho).reshape(saved["latents"].shape)
        d = float(np.abs(noise - saved["noise_init"].numpy()).max())
        print("%s noise_init numpy port vs engine: max diff %.3g" % ("ok  " if d <= 1e-6 else "FAIL", d))
        ok &= d <= 1e-6
        saved["_noise"] = torch.from_numpy(noise)
        z = torch_pipeline(m, saved, steps, guidance, 4, 2, temporal, ref_init=temporal)
        ok &= compare("pipeline %s (%d frames) latents" % (case, n), saved["latents"], z)
        img = ((m["vae"].decode(z / m["vae"].config["scaling_factor"]) + 1) / 2).clamp(0, 1)
        img = (img * 255).round().permute(0, 2, 3, 1).to(torch.uint8).numpy()
        d = max(int(np.abs(np.asarray(Image.open(os.path.join(out, "%05d.png" % i))).astype(int)
                           - img[i].astype(int)).max()) for i in range(n))
        print("%s pipeline %s PNGs vs torch decode: max diff %d/255" % ("ok  " if d <= 2 else "FAIL", case, d))
        ok &= d <= 2
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine")
    ap.add_argument("--model")
    ap.add_argument("--pipeline", action="store_true", help="also the whole avatar pipeline")
    ap.add_argument("--pipeline-only", action="store_true", help="only the whole avatar pipeline")
    ap.add_argument("--pipeline-size", type=int, default=64, help="frame size of the pipeline check")
    ap.add_argument("--reference-concat", action="store_true",
                    help="the random model's UNet takes [z_t, reference latent] (in_channels 8)")
    a = ap.parse_args()
    engine = find_engine(a.engine)
    if engine is None:
        print("SKIP: avatar-engine not built (pass --engine or set AVATAR_ENGINE)")
        return 77
    torch.set_num_threads(2)
    torch.manual_seed(1)
    with tempfile.TemporaryDirectory() as work:
        mdir = a.model
        if mdir is None:
            mdir = os.path.join(work, "model")
            random_model(mdir, concat=a.reference_concat)
        unet = export.load_folder(models.UNet2DConditionModel, os.path.join(mdir, "unet"))
        vae = export.load_folder(models.AutoencoderKL, os.path.join(mdir, "vae"))
        hands = export.load_folder(models.HandEncoder, os.path.join(mdir, "hand_encoder"))
        lat = unet.config["sample_size"]
        size = lat * 8
        ok = True
        if a.pipeline or a.pipeline_only:
            ok &= check_pipeline(engine, mdir, work, size=a.pipeline_size)
        if a.pipeline_only:
            print("PASS" if ok else "FAILED")
            return 0 if ok else 1
        with torch.no_grad():
            z = torch.randn(2, unet.config["in_channels"], lat, lat)
            ctx = hands(torch.rand(2, 42, 3))
            t = torch.tensor([500.0])
            ref = unet(z, t.long(), ctx)
            got = run(engine, "unet", os.path.join(mdir, "unet"),
                      {"sample": z, "timestep": t, "encoder_hidden_states": ctx}, work)
            ok &= got is not None and compare("unet", got["sample"], ref)
            img = torch.rand(1, 3, size, size) * 2 - 1
            mean, logvar = vae.encode(img)
            got = run(engine, "vae-encode", os.path.join(mdir, "vae"), {"sample": img}, work)
            ok &= got is not None and compare("vae-encode mean", got["mean"], mean)
            ok &= got is not None and compare("vae-encode logvar", got["logvar"], logvar)
            dec = vae.decode(mean)
            got = run(engine, "vae-decode", os.path.join(mdir, "vae"), {"latent": mean}, work)
            ok &= got is not None and compare("vae-decode", got["sample"], dec)
    print("PASS" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
