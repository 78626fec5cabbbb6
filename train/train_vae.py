#!/usr/bin/python3
"""Train the AutoencoderKL of avatar-default on world frames (checkpoint + resume).

  nice -n 19 /usr/bin/python3 train/train_vae.py --data train/data/train --run train/runs/vae \
      --steps 3000 [--resume]

Random --crop crops.  Loss: L1 + MSE on RGB in [-1, 1] plus a small KL term (weight --kl) on the posterior,
with the latent sampled by the reparameterisation (as the VAE is used by diffusion), plus
--lowpass-weight times the L1 between the 8x8 means of output and input: the mean colour of
each latent cell's patch. The world's backgrounds and clothes are flat colours that differ per
identity; without this term an under-trained VAE mapped a green background to blue.
"""
import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import config  # noqa: E402
import dataset  # noqa: E402
import models  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="avatar-world dataset folder (clip_*/)")
    ap.add_argument("--run", required=True, help="run folder: log.txt, checkpoint.pt")
    ap.add_argument("--steps", type=int, default=3000, help="total optimizer steps")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--kl", type=float, default=1e-6)
    ap.add_argument("--size", type=int, default=config.IMAGE_SIZE)
    ap.add_argument("--crop", type=int, default=128,
                    help="train on random crops of this size (0 = whole image); the VAE is "
                         "convolutional, crops make a step 4x cheaper on a CPU")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--checkpoint-minutes", type=float, default=5.0)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--decoder-only", action="store_true",
                    help="freeze encoder + quant_conv (keeps the latent space of a UNet already "
                         "trained on it) and train only post_quant_conv + decoder")
    ap.add_argument("--lowpass-weight", type=float, default=1.0,
                    help="weight of the L1 on 8x8 patch means (one per latent cell)")
    ap.add_argument("--norm-groups", type=int, default=0,
                    help="override norm_num_groups of the config, also of a resumed run (the "
                         "GroupNorm weights are per channel, so the checkpoint still loads)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tiny", action="store_true", help="small config for tests")
    a = ap.parse_args(argv)

    common.setup_threads(a.threads)
    torch.manual_seed(a.seed)
    log = common.Logger(a.run)
    ck = common.load_checkpoint(a.run) if a.resume else None
    cfg = dict(config.VAE, sample_size=a.size)
    if a.tiny:
        cfg.update(block_out_channels=[8, 8, 16, 16], norm_num_groups=4)
    if ck is not None:
        cfg = dict(ck["config"])
    if a.norm_groups:
        if cfg["norm_num_groups"] != a.norm_groups:
            log("norm_num_groups %d -> %d" % (cfg["norm_num_groups"], a.norm_groups))
        cfg["norm_num_groups"] = a.norm_groups
    vae = models.AutoencoderKL(cfg)
    trainable = list(vae.parameters())
    if a.decoder_only:
        for p in list(vae.encoder.parameters()) + list(vae.quant_conv.parameters()):
            p.requires_grad_(False)
        trainable = [p for p in vae.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=a.lr, weight_decay=0.0)
    step, wall = 0, 0.0
    if ck is not None:
        vae.load_state_dict(ck["vae"])
        if "opt" in ck and ck.get("decoder_only", False) == a.decoder_only:
            opt.load_state_dict(ck["opt"])
        else:
            log("optimizer state not resumed (--decoder-only changed or seeded by import_model.py)")
        step, wall = ck["step"], ck["wall"]
        log("resumed from step %d (%.0f s)" % (step, wall))
    data = dataset.FrameDataset(a.data, a.size)
    log("vae: %d images, %d parameters, config %s" % (len(data), sum(p.numel() for p in vae.parameters()),
                                                   cfg["block_out_channels"]))
    loader = torch.utils.data.DataLoader(data, batch_size=a.batch, shuffle=True, drop_last=True,
                                         num_workers=0)
    last_ck = time.time()
    t0 = time.time()
    ema = None
    while step < a.steps:
        for x in loader:
            if a.crop and a.crop < x.shape[-1]:
                i, j = torch.randint(0, x.shape[-1] - a.crop + 1, (2,)).tolist()
                x = x[:, :, i:i + a.crop, j:j + a.crop]
            mean, logvar = vae.encode(x)
            z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
            rec = vae.decode(z)
            l1 = (rec - x).abs().mean()
            mse = (rec - x).pow(2).mean()
            kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()
            lowpass = (F.avg_pool2d(rec, 8) - F.avg_pool2d(x, 8)).abs().mean()
            loss = l1 + mse + a.kl * kl + a.lowpass_weight * lowpass
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
            now = time.time()
            if step % 10 == 0 or step == a.steps:
                log("step %d loss %.4f (ema %.4f) l1 %.4f lowpass %.4f kl %.2f latent_std %.3f %.2f s/it"
                    % (step, loss.item(), ema, l1.item(), lowpass.item(), kl.item(), mean.std().item(),
                       (now - t0) / 10 if step % 10 == 0 else 0.0))
                t0 = now
            if now - last_ck > a.checkpoint_minutes * 60 or step == a.steps:
                wall += now - last_ck
                last_ck = now
                common.save_checkpoint(a.run, {"vae": vae.state_dict(), "opt": opt.state_dict(),
                                               "step": step, "wall": wall, "config": cfg,
                                               "decoder_only": a.decoder_only,
                                               "args": vars(a)})
                log("checkpoint at step %d, wall %.0f s" % (step, wall))
            if step >= a.steps:
                break
    return 0


if __name__ == "__main__":
    sys.exit(main())
