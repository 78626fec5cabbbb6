#!/usr/bin/python3
"""Run the exported avatar-default model in PyTorch on one dataset clip and write a contact
sheet (reference | pose | ground truth | output per row) plus PSNR per frame.

  /usr/bin/python3 train/sample.py --model models/avatar-default --clip DIR/clip_00000 \
      --frames 4 --steps 20 --guidance 2.5 --out sheet.png

The same procedure the engine implements (docs/model-format.md): DDIM (eta 0), CFG batch
[uncond, cond], uncond = no reference attention + zero hand tokens (+ zero concat latent when
the UNet takes the reference latent concatenated to its input).
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dataset  # noqa: E402
import export  # noqa: E402
import models  # noqa: E402


def ddim_timesteps(cfg, steps):
    """diffusers DDIMScheduler.set_timesteps with timestep_spacing 'leading'."""
    ratio = cfg["num_train_timesteps"] // steps
    return [int(t) + cfg["steps_offset"] for t in (np.arange(0, steps) * ratio)[::-1]]


def load_model(path):
    m = {
        "vae": export.load_folder(models.AutoencoderKL, os.path.join(path, "vae")),
        "unet": export.load_folder(models.UNet2DConditionModel, os.path.join(path, "unet")),
        "reference_unet": export.load_folder(models.UNet2DConditionModel, os.path.join(path, "reference_unet")),
        "pose_guider": export.load_folder(models.PoseGuider, os.path.join(path, "pose_guider")),
        "hand_encoder": export.load_folder(models.HandEncoder, os.path.join(path, "hand_encoder")),
    }
    with open(os.path.join(path, "scheduler_config.json")) as f:
        m["scheduler"] = json.load(f)
    return m


def alphas_cumprod(cfg):
    betas = torch.linspace(cfg["beta_start"] ** 0.5, cfg["beta_end"] ** 0.5, cfg["num_train_timesteps"],
                           dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, 0)


def ddim_step(z, eps, t, prev, abar, cfg):
    """DDIM, eta 0, epsilon prediction, no clipping (diffusers DDIMScheduler.step)."""
    a_t = abar[t].float()
    if prev >= 0:
        a_p = abar[prev].float()
    else:
        a_p = torch.tensor(1.0) if cfg["set_alpha_to_one"] else abar[0].float()
    x0 = (z - (1 - a_t).sqrt() * eps) / a_t.sqrt()
    return a_p.sqrt() * x0 + (1 - a_p).sqrt() * eps


def unet_input(unet, z, c):
    """[z, c] along channels for a reference-concat UNet (c: the reference latent, or zeros in
    the unconditional pass), z alone for a UNet with in_channels = latent channels."""
    if not models.reference_concat(unet.config):
        return z
    return torch.cat([z, c.expand_as(z)], 1)


def reference_init(noise, z_ref, abar_t0):
    """The engine's reference init (docs/avatar-pipeline.md): the first latents carry the
    reference latent as much as a training sample at t0 carries its own (sqrt(abar_t0))."""
    a = abar_t0.float()
    return a.sqrt() * z_ref + (1 - a).sqrt() * noise


@torch.no_grad()
def generate(m, ref_img, ref_kp, pose_imgs, hand_kps, steps, guidance, seed=0, use_ref=True, use_hands=True,
             ref_init=True, use_concat=True, noise_correlation=1.0):
    """ref_img (3,H,W) [0,1]; pose_imgs (F,3,H,W) [0,1]; hand_kps (F,42,3) -> (F,3,H,W) [0,1]."""
    vae, unet = m["vae"], m["unet"]
    sf = vae.config["scaling_factor"]
    cfg = m["scheduler"]
    abar = alphas_cumprod(cfg)
    n = pose_imgs.shape[0]
    bank = models.ReferenceBank(m["reference_unet"], unet)
    z_ref = vae.encode(ref_img[None] * 2 - 1)[0] * sf
    bank.write(z_ref, m["hand_encoder"](ref_kp[None]))
    pose = m["pose_guider"](pose_imgs)
    ctx = m["hand_encoder"](hand_kps) if use_hands else torch.zeros(n, 42, unet.config["cross_attention_dim"])
    lat = pose_imgs.shape[-1] // 8
    g = torch.Generator().manual_seed(seed)
    # the engine's noise correlation (docs/avatar-pipeline.md): a field shared by all frames
    shared = torch.randn(1, 4, lat, lat, generator=g)
    own = torch.randn(n, 4, lat, lat, generator=g)
    z = noise_correlation ** 0.5 * shared + (1 - noise_correlation) ** 0.5 * own
    ts = ddim_timesteps(cfg, steps)
    if ref_init:
        z = reference_init(z, z_ref, abar[ts[0]])
    keep = torch.cat([torch.zeros(n, dtype=torch.bool), torch.full((n,), use_ref)])
    c_uncond = torch.zeros_like(z_ref)
    c_cond = z_ref if use_concat else c_uncond
    for i, t in enumerate(ts):
        bank.set_read(True, keep)
        zin = torch.cat([unet_input(unet, z, c_uncond), unet_input(unet, z, c_cond)])
        eps2 = unet(zin, t, torch.cat([torch.zeros_like(ctx), ctx]), torch.cat([pose, pose]))
        eu, ec = eps2[:n], eps2[n:]
        eps = eu + guidance * (ec - eu)
        z = ddim_step(z, eps, t, t - cfg["num_train_timesteps"] // steps, abar, cfg)
    bank.clear()
    return ((vae.decode(z / sf) + 1) / 2).clamp(0, 1)


def psnr(a, b):
    mse = (a - b).pow(2).mean().item()
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def to_img(t):
    return Image.fromarray((t.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--clip", required=True)
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--stride", type=int, default=6)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=2.5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", required=True)
    ap.add_argument("--no-reference-init", action="store_true",
                    help="start from pure noise (the engine's --no-reference-init)")
    ap.add_argument("--no-reference-concat", action="store_true",
                    help="zeros instead of the reference latent at the UNet input (the engine's "
                         "--no-reference-concat)")
    ap.add_argument("--noise-correlation", type=float, default=1.0,
                    help="share of the initial noise common to all frames (the engine's option)")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    m = load_model(a.model)
    size = m["vae"].config["sample_size"]
    frames, poses, _ = dataset.clip_frames_meta(a.clip)
    idx = list(range(0, len(frames), a.stride))[:a.frames]
    gt = torch.stack([dataset.load_rgb(os.path.join(a.clip, "frames", frames[i]), size) for i in idx])
    pose = torch.stack([dataset.load_rgb(os.path.join(a.clip, "pose", frames[i]), size) for i in idx])
    kps = torch.stack([dataset.hand_keypoints(poses[i]) for i in idx])
    ref = dataset.load_rgb(os.path.join(a.clip, "reference.png"), size)
    out = generate(m, ref, dataset.reference_keypoints(a.clip), pose, kps, a.steps, a.guidance,
                   ref_init=not a.no_reference_init, use_concat=not a.no_reference_concat,
                   noise_correlation=a.noise_correlation)
    sheet = Image.new("RGB", (4 * size, len(idx) * size))
    for r in range(len(idx)):
        for c, t in enumerate((ref, pose[r], gt[r], out[r])):
            sheet.paste(to_img(t), (c * size, r * size))
        print("frame %s: PSNR %.2f dB (reference copy %.2f dB)"
              % (frames[idx[r]], psnr(out[r], gt[r]), psnr(ref, gt[r])))
    sheet.save(a.out)
    print("wrote " + a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
