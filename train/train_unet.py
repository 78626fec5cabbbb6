#!/usr/bin/python3
"""Train the Denoising UNet, Reference UNet, pose guider and hand encoder of
avatar-default on cached VAE latents (checkpoint + resume).

  nice -n 19 /usr/bin/python3 train/train_unet.py --data train/data/train \
      --vae-run train/runs/vae --run train/runs/unet --steps 20000 [--resume]

Per step (DESIGN.md section 2; MimicMotion, AnimateAnyone, ShowMaker):
  z0 = VAE mean + std * n, scaled by the VAE scaling factor; t ~ U{0..999};
  z_t = sqrt(abar_t) z0 + sqrt(1 - abar_t) eps       (DDPM, SD1.5 scaled_linear betas)
  Reference UNet(ref latent, t=0, hand tokens of the reference) -> bank of norm1 states
  eps_hat = UNet(z_t, t, hand tokens, pose_guider(pose image)) with reference attention;
            with --reference-concat the UNet's input is [z_t, ref latent] (in_channels 8,
            Stable Video Diffusion's image conditioning, as in MimicMotion)
  loss = mean(w * s_t * (eps_hat - eps)^2), w = --region-weight inside face/hand boxes, else 1,
         s_t = min(SNR_t, --min-snr-gamma) / SNR_t (Min-SNR weighting; 1 when the option is 0)
The weights are also averaged (EMA, decay min(--ema-decay, (1 + n) / (10 + n)) after n updates,
as diffusers' EMAModel); export.py writes the averaged weights.
Condition dropout: with p --drop-ref a sample loses reference attention, hand tokens (zero
tokens) and the concatenated reference latent (zeros) = the CFG unconditional pass; else each of
the three is dropped alone with p --drop-module, so that every ablation of the quality report
(one module off) is a case the model was trained on.  With p --drop-pose the pose features are
zeroed.
"""
import argparse
import copy
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import config  # noqa: E402
import dataset  # noqa: E402
import models  # noqa: E402


def tiny_configs():
    """Small structure-identical configs for the tests."""
    unet = models.unet_config(**dict(config.UNET, block_out_channels=[16, 32], norm_num_groups=8,
                                     attention_head_dim=2, cross_attention_dim=16,
                                     down_block_types=["DownBlock2D", "CrossAttnDownBlock2D"],
                                     up_block_types=["CrossAttnUpBlock2D", "UpBlock2D"]))
    pose = dict(config.POSE_GUIDER, block_out_channels=[4, 8, 8, 8], conditioning_embedding_channels=16)
    hand = dict(config.HAND_ENCODER, hidden_dim=16, cross_attention_dim=16, num_frequencies=4)
    vae = dict(config.VAE, block_out_channels=[8, 8, 16, 16], norm_num_groups=4)
    return unet, pose, hand, vae


def build(unet_cfg, pose_cfg, hand_cfg):
    unet = models.UNet2DConditionModel(unet_cfg)
    ref = models.UNet2DConditionModel(models.reference_unet_config(unet_cfg))
    # AnimateAnyone: both streams start equal (the Reference UNet without the concat inputs)
    state = unet.state_dict()
    state["conv_in.weight"] = state["conv_in.weight"][:, :unet_cfg["out_channels"]]
    ref.load_state_dict(state)
    return unet, ref, models.PoseGuider(pose_cfg), models.HandEncoder(hand_cfg)


@torch.no_grad()
def cache_latents(vae, data_root, size, out_path, log, scale=None):
    """Encodes every frame and reference once.  Stores latent mean/std (f16), pose
    images (u8), hand key points, face/hand box weight maps' boxes."""
    vae.eval()
    clips = []
    for clip in dataset.list_clips(data_root):
        frames, poses, boxes = dataset.clip_frames_meta(clip)
        xs = torch.stack([dataset.load_rgb(os.path.join(clip, "frames", f), size) for f in frames])
        means, stds = [], []
        for i in range(0, len(xs), 8):
            m, lv = vae.encode(xs[i:i + 8] * 2 - 1)
            means.append(m)
            stds.append(torch.exp(0.5 * lv))
        rm, rlv = vae.encode(dataset.load_rgb(os.path.join(clip, "reference.png"), size)[None] * 2 - 1)
        pose_imgs = torch.stack([(dataset.load_rgb(os.path.join(clip, "pose", f), size) * 255).round().byte()
                                 for f in frames])
        w = float(poses[0].get("canvas_width") or size)
        h = float(poses[0].get("canvas_height") or size)
        clips.append({
            "name": os.path.basename(clip),
            "mean": torch.cat(means).half(), "std": torch.cat(stds).half(),
            "ref_mean": rm[0].half(),
            "pose": pose_imgs,
            "hands": torch.stack([dataset.hand_keypoints(p, clip) for p in poses[:len(frames)]]),
            "ref_hands": dataset.reference_keypoints(clip),
            "boxes": boxes[:len(frames)], "canvas": (w, h),
        })
        log("cached %s: %d frames" % (clip, len(frames)))
    allm = torch.cat([c["mean"].float() for c in clips])
    if scale is None:
        # as SD: scale latents to unit variance
        scale = float(1.0 / allm.std())
    cache = {"clips": clips, "scaling_factor": scale, "size": size, "data": os.path.abspath(data_root)}
    torch.save(cache, out_path)
    return cache


def sample_batch(cache, batch, region_weight, rng, frames=1):
    """batch / frames groups of `frames` consecutive frames of one clip each; the reference
    latent and key points once per group."""
    clips = cache["clips"]
    lat = cache["size"] // 8
    z0, ref, pose, hands, ref_hands, wmap = [], [], [], [], [], []
    for _ in range(batch // frames):
        c = clips[rng.integers(len(clips))]
        n = c["mean"].shape[0]
        if n < frames:
            raise ValueError("clip %s has %d frames, fewer than --frames %d" % (c["name"], n, frames))
        i0 = int(rng.integers(n - frames + 1))
        ref.append(c["ref_mean"].float())
        ref_hands.append(c["ref_hands"])
        w, h = c["canvas"]
        for i in range(i0, i0 + frames):
            z0.append(c["mean"][i].float() + c["std"][i].float() * torch.randn(c["mean"][i].shape))
            pose.append(c["pose"][i].float() / 255.0)
            hands.append(c["hands"][i])
            wmap.append(dataset.region_weight(c["boxes"][i], w, h, lat, region_weight))
    s = cache["scaling_factor"]
    return (torch.stack(z0) * s, torch.stack(ref) * s, torch.stack(pose), torch.stack(hands),
            torch.stack(ref_hands), torch.stack(wmap))


def condition_keeps(b, a, frames=1):
    """(B,) bool masks: reference attention, hand tokens, reference concat (one choice per
    group of `frames`, as a window is one UNet call at inference), pose (per frame)."""
    g = b // frames
    cond = torch.rand(g) >= a.drop_ref
    keep = [(cond & (torch.rand(g) >= a.drop_module)).repeat_interleave(frames) for _ in range(3)]
    return keep + [torch.rand(b) >= a.drop_pose]


def train_step(mods, bank, batch, abar, a):
    """One loss; with a.frames F > 1 the batch is groups of F frames that share the timestep,
    the reference and its dropout, and attend to each other (all-frame attention)."""
    unet, ref_unet, pose_guider, hand_enc = mods
    z0, ref, pose, hands, ref_hands, wmap = batch
    b, f = z0.shape[0], a.frames
    t = torch.randint(0, abar.shape[0], (b // f,)).repeat_interleave(f)
    eps = torch.randn_like(z0)
    ab = abar[t].view(b, 1, 1, 1)
    zt = ab.sqrt() * z0 + (1 - ab).sqrt() * eps
    keep_ref, keep_hands, keep_concat, keep_pose = condition_keeps(b, a, f)
    if models.reference_concat(unet.config):
        zt = torch.cat([zt, ref.repeat_interleave(f, 0) * keep_concat.float().view(b, 1, 1, 1)], 1)
    ctx = hand_enc(hands) * keep_hands.float().view(b, 1, 1)
    bank.write(ref, hand_enc(ref_hands))
    bank.set_read(True, keep_ref)
    unet.set_frames(f)
    pred = unet(zt, t, ctx, pose_guider(pose) * keep_pose.float().view(b, 1, 1, 1))
    unet.set_frames(1)
    bank.clear()
    err = (pred - eps).pow(2)
    mse = err.detach().mean()
    if a.min_snr_gamma > 0:
        # Min-SNR-gamma (Hang et al. 2023) for epsilon prediction: min(SNR, g) / SNR per
        # sample; stops the near-noiseless steps from dominating, converges faster.
        snr = ab.view(b) / (1 - ab.view(b))
        err = err * (torch.clamp(snr, max=a.min_snr_gamma) / snr).view(b, 1, 1, 1)
    loss = (err * wmap).sum() / (wmap.sum() * err.shape[1])
    return loss, mse


def reshape_adam_state(opt_state, index, shape, fn):
    """Gives AdamW's moments of a weight whose shape changed on resume the new shape (fn)."""
    st = opt_state["state"].get(index, {})
    for k in ("exp_avg", "exp_avg_sq"):
        if k in st and st[k].shape != shape:
            st[k] = fn(st[k])


def widen_conv_in_weight(in_channels):
    return lambda w: models.widen_conv_in({"conv_in.weight": w}, in_channels)["conv_in.weight"]


def resize_hand_state(state, f_old, f_new):
    w = state["linear_1.weight"]
    return dict(state, **{"linear_1.weight": models.resize_hand_frequencies(w, f_old, f_new)})


MODULE_KEYS = ("unet", "reference_unet", "pose_guider", "hand_encoder")


class WeightEMA:
    """Exponential moving average of the trainable weights of `mods` (the modules' float
    copies; n = updates so far)."""

    def __init__(self, mods, decay, state=None):
        self.decay = decay
        self.mods = copy.deepcopy(mods)
        self.n = 0
        if state is not None:
            for m, k in zip(self.mods, MODULE_KEYS):
                m.load_state_dict(state[k])
            self.n = state["updates"]

    @torch.no_grad()
    def update(self, mods):
        d = min(self.decay, (1 + self.n) / (10 + self.n))
        for em, m in zip(self.mods, mods):
            for pe, p in zip(em.parameters(), m.parameters()):
                pe.mul_(d).add_(p.detach(), alpha=1 - d)
        self.n += 1

    def state(self):
        st = {k: m.state_dict() for m, k in zip(self.mods, MODULE_KEYS)}
        st.update(updates=self.n, decay=self.decay)
        return st


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--vae-run", required=True, help="run folder of train_vae.py (checkpoint.pt)")
    ap.add_argument("--run", required=True)
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--drop-ref", type=float, default=0.1)
    ap.add_argument("--drop-pose", type=float, default=0.1)
    ap.add_argument("--drop-module", type=float, default=0.05,
                    help="outside the unconditional samples, p of dropping one module alone")
    ap.add_argument("--reference-concat", action="store_true",
                    help="the UNet takes [z_t, reference latent] (in_channels 8); a resumed "
                         "4-channel run gets zero weights for the new inputs")
    ap.add_argument("--region-weight", type=float, default=3.0,
                    help="loss amplification inside face and hand boxes (MimicMotion)")
    ap.add_argument("--min-snr-gamma", type=float, default=5.0,
                    help="Min-SNR loss weighting min(SNR, gamma)/SNR (0 = plain MSE)")
    ap.add_argument("--size", type=int, default=config.IMAGE_SIZE)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--checkpoint-minutes", type=float, default=5.0)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--norm-groups", type=int, default=0,
                    help="override norm_num_groups of both UNets, also of a resumed run (GroupNorm "
                         "weights are per channel, so the checkpoint still loads)")
    ap.add_argument("--new-latents", action="store_true",
                    help="the VAE changed: encode the latents again (RUN/latents.pt is replaced) and "
                         "measure a new scaling_factor instead of keeping the resumed run's")
    ap.add_argument("--latents", default=None,
                    help="latent cache file (default RUN/latents.pt); a new --data needs a new file")
    ap.add_argument("--cache-only", action="store_true",
                    help="encode the latent cache and stop (e.g. beside a run still training)")
    ap.add_argument("--frames", type=int, default=1,
                    help="frames per group: --batch / F groups of F consecutive frames of one clip, "
                         "with all-frame attention inside a group (the engine's --temporal-attention)")
    ap.add_argument("--hand-frequencies", type=int, default=0,
                    help="set num_frequencies of the hand encoder's positional encoding, also of a "
                         "resumed run (the kept frequencies keep their weights, new ones start at 0)")
    ap.add_argument("--ema-decay", type=float, default=0.999,
                    help="decay of the weight average export.py writes (0 = none)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tiny", action="store_true", help="small configs for tests")
    a = ap.parse_args(argv)

    if a.frames < 1 or a.batch % a.frames:
        ap.error("--batch %d must be a multiple of --frames %d" % (a.batch, a.frames))
    common.setup_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    log = common.Logger(a.run)
    if a.tiny:
        unet_cfg, pose_cfg, hand_cfg, _ = tiny_configs()
    else:
        unet_cfg, pose_cfg, hand_cfg = config.UNET, config.POSE_GUIDER, config.HAND_ENCODER
    ck = common.load_checkpoint(a.run) if a.resume else None
    if ck is not None and "configs" in ck:
        unet_cfg, pose_cfg, hand_cfg = (ck["configs"][k] for k in ("unet", "pose_guider", "hand_encoder"))
    unet_cfg = dict(unet_cfg, sample_size=a.size // 8)
    if a.norm_groups and unet_cfg["norm_num_groups"] != a.norm_groups:
        log("norm_num_groups %d -> %d" % (unet_cfg["norm_num_groups"], a.norm_groups))
        unet_cfg["norm_num_groups"] = a.norm_groups
    if a.reference_concat and not models.reference_concat(unet_cfg):
        log("reference concat: unet in_channels %d -> %d" % (unet_cfg["in_channels"], 2 * unet_cfg["out_channels"]))
        unet_cfg["in_channels"] = 2 * unet_cfg["out_channels"]
    hand_f_old = hand_cfg["num_frequencies"]
    if a.hand_frequencies and a.hand_frequencies != hand_f_old:
        log("hand encoder num_frequencies %d -> %d" % (hand_f_old, a.hand_frequencies))
        hand_cfg = dict(hand_cfg, num_frequencies=a.hand_frequencies)
    hand_f = hand_cfg["num_frequencies"]
    mods = build(unet_cfg, pose_cfg, hand_cfg)
    params = [p for m in mods for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.0)
    step, wall = 0, 0.0
    if ck is not None:
        ck["unet"] = models.widen_conv_in(ck["unet"], unet_cfg["in_channels"])
        ck["hand_encoder"] = resize_hand_state(ck["hand_encoder"], hand_f_old, hand_f)
        for m, k in zip(mods, MODULE_KEYS):
            m.load_state_dict(ck[k])
        if "opt" in ck:
            index = {id(p): i for i, p in enumerate(params)}
            w = mods[0].conv_in.weight
            reshape_adam_state(ck["opt"], index[id(w)], w.shape, widen_conv_in_weight(w.shape[1]))
            w = mods[3].linear_1.weight
            reshape_adam_state(ck["opt"], index[id(w)], w.shape,
                               lambda t: models.resize_hand_frequencies(t, hand_f_old, hand_f))
            opt.load_state_dict(ck["opt"])
        else:
            log("optimizer state not in the checkpoint (seeded by import_model.py): AdamW restarts")
        step, wall = ck["step"], ck["wall"]
        log("resumed from step %d (%.0f s)" % (step, wall))
    weight_ema = None
    if a.ema_decay > 0:
        ema_state = ck.get("weight_ema") if ck is not None else None
        if ema_state is not None:
            ema_state["unet"] = models.widen_conv_in(ema_state["unet"], unet_cfg["in_channels"])
            ema_state["hand_encoder"] = resize_hand_state(ema_state["hand_encoder"], hand_f_old, hand_f)
        else:
            log("weight EMA (decay %g) starts from the current weights" % a.ema_decay)
        weight_ema = WeightEMA(mods, a.ema_decay, ema_state)

    vck = common.load_checkpoint(a.vae_run)
    if vck is None:
        log("error: %s/checkpoint.pt not found (train the VAE first)" % a.vae_run)
        return 1
    vae = models.AutoencoderKL(vck["config"])
    vae.load_state_dict(vck["vae"])
    cache_path = a.latents or os.path.join(a.run, "latents.pt")
    if os.path.exists(cache_path) and not a.new_latents:
        cache = torch.load(cache_path)
        if cache.get("data", os.path.abspath(a.data)) != os.path.abspath(a.data):
            log("error: %s holds the latents of %s, not of --data %s (pass --latents NEW_FILE)"
                % (cache_path, cache["data"], a.data))
            return 1
    else:
        # keep the latent scale of the weights being resumed; a fresh run measures it
        cache = cache_latents(vae, a.data, a.size, cache_path, log,
                              scale=ck["scaling_factor"] if ck is not None and not a.new_latents else None)
    del vae
    if a.cache_only:
        log("latent cache %s: %d clips" % (cache_path, len(cache["clips"])))
        return 0
    log("unet: %d parameters per UNet, %d clips, scaling_factor %.5f"
        % (sum(p.numel() for p in mods[0].parameters()), len(cache["clips"]), cache["scaling_factor"]))
    bank = models.ReferenceBank(mods[1], mods[0])
    abar = config.alphas_cumprod()
    for m in mods:
        m.train()
    last_ck = time.time()
    t0 = time.time()
    ema = None
    while step < a.steps:
        batch = sample_batch(cache, a.batch, a.region_weight, rng, a.frames)
        loss, mse = train_step(mods, bank, batch, abar, a)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if weight_ema is not None:
            weight_ema.update(mods)
        step += 1
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        now = time.time()
        if step % 10 == 0 or step == a.steps:
            log("step %d loss %.4f (ema %.4f) mse %.4f %.2f s/it"
                % (step, loss.item(), ema, mse.item(), (now - t0) / 10 if step % 10 == 0 else 0.0))
            t0 = now
        if now - last_ck > a.checkpoint_minutes * 60 or step == a.steps:
            wall += now - last_ck
            last_ck = now
            state = {k: m.state_dict() for m, k in zip(mods, MODULE_KEYS)}
            state.update(opt=opt.state_dict(), step=step, wall=wall, args=vars(a),
                         weight_ema=weight_ema.state() if weight_ema is not None else None,
                         configs={"unet": unet_cfg, "pose_guider": pose_cfg, "hand_encoder": hand_cfg},
                         scaling_factor=cache["scaling_factor"], ema_loss=ema)
            common.save_checkpoint(a.run, state)
            log("checkpoint at step %d, wall %.0f s" % (step, wall))
    return 0


if __name__ == "__main__":
    sys.exit(main())
