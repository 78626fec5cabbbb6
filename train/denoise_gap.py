"""Denoising error of a train_unet.py run on its own training clips and on held-out clips, at
fixed timesteps: tells memorising (training longer will not help, more identities will) from
learning.

  /usr/bin/python3 train/denoise_gap.py --run train/runs/unet --vae-run train/runs/vae \
      --heldout train/data/heldout [--latents train/runs/unet/latents-train2.pt]

For each t: z_t = sqrt(abar_t) z0 + sqrt(1 - abar_t) eps with the same clips' frames drawn the
same way from both sets (seeded), every condition on (reference attention, hand tokens,
reference concat, pose), and the error is mean((x0_hat - z0)^2) over the scaled latent, x0_hat
= (z_t - sqrt(1 - abar_t) eps_hat) / sqrt(abar_t): the estimate a DDIM step starts from.  The
held-out latents are encoded once with the run's VAE and scale (RUN/latents-heldout.pt).
"""
import argparse
import os
import sys

import numpy as np
import torch

import common
import config
import export
import models
import train_unet

TIMESTEPS = (101, 301, 501, 751, 901)


def load_run(run, weights):
    ck = common.load_checkpoint(run)
    if ck is None:
        raise SystemExit("error: %s/checkpoint.pt not found" % run)
    cf = ck["configs"]
    mods = train_unet.build(dict(cf["unet"]), cf["pose_guider"], cf["hand_encoder"])
    state, _ = export.unet_weights(ck, weights)
    for m, k in zip(mods, train_unet.MODULE_KEYS):
        m.load_state_dict(state[k])
        m.eval()
    return ck, mods


@torch.no_grad()
def x0_error(mods, bank, abar, cache, t, samples, seed):
    """Mean x0 MSE at timestep t over `samples` frames drawn with `seed`."""
    unet, _, pose_guider, hand_enc = mods
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)  # sample_batch draws z0 = mean + std n with the global generator
    total, n = 0.0, 0
    while n < samples:
        b = min(4, samples - n)
        z0, ref, pose, hands, ref_hands, _ = train_unet.sample_batch(cache, b, 1.0, rng)
        eps = torch.randn(z0.shape)
        ab = abar[t]
        zt = ab.sqrt() * z0 + (1 - ab).sqrt() * eps
        x = torch.cat([zt, ref], 1) if models.reference_concat(unet.config) else zt
        bank.write(ref, hand_enc(ref_hands))
        bank.set_read(True, torch.ones(b, dtype=torch.bool))
        eps_hat = unet(x, torch.full((b,), t), hand_enc(hands), pose_guider(pose))
        bank.clear()
        x0 = (zt - (1 - ab).sqrt() * eps_hat) / ab.sqrt()
        total += (x0 - z0).pow(2).mean().item() * b
        n += b
    return total / samples


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="train_unet.py run folder")
    ap.add_argument("--vae-run", required=True, help="train_vae.py run folder (encodes the held-out clips)")
    ap.add_argument("--heldout", required=True, help="avatar-world dataset folder never trained on")
    ap.add_argument("--latents", default=None, help="the run's training latent cache (default RUN/latents.pt)")
    ap.add_argument("--samples", type=int, default=32, help="frames per set and timestep")
    ap.add_argument("--weights", choices=("ema", "last"), default="ema")
    ap.add_argument("--size", type=int, default=config.IMAGE_SIZE)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    common.setup_threads(a.threads)
    ck, mods = load_run(a.run, a.weights)
    train_path = a.latents or os.path.join(a.run, "latents.pt")
    if not os.path.exists(train_path):
        raise SystemExit("error: %s not found (the run's latent cache; see --latents)" % train_path)
    train = torch.load(train_path)
    held_path = os.path.join(a.run, "latents-heldout.pt")
    held = torch.load(held_path) if os.path.exists(held_path) else None
    if held is None or held.get("data") != os.path.abspath(a.heldout) or held["scaling_factor"] != ck["scaling_factor"]:
        vck = common.load_checkpoint(a.vae_run)
        if vck is None:
            raise SystemExit("error: %s/checkpoint.pt not found" % a.vae_run)
        vae = models.AutoencoderKL(vck["config"])
        vae.load_state_dict(vck["vae"])
        with torch.no_grad():
            held = train_unet.cache_latents(vae, a.heldout, a.size, held_path, lambda m: None,
                                            scale=ck["scaling_factor"])
    print("run %s, step %d, %s weights; %d training clips, %d held-out clips, %d frames per set"
          % (a.run, ck["step"], a.weights, len(train["clips"]), len(held["clips"]), a.samples))
    print("| t | x0 MSE training clips | x0 MSE held-out clips | ratio |")
    print("|---|---|---|---|")
    bank = models.ReferenceBank(mods[1], mods[0])
    abar = config.alphas_cumprod()
    for t in TIMESTEPS:
        et = x0_error(mods, bank, abar, train, t, a.samples, a.seed)
        eh = x0_error(mods, bank, abar, held, t, a.samples, a.seed)
        print("| %d | %.4f | %.4f | %.2f |" % (t, et, eh, eh / et), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
