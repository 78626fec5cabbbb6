#!/usr/bin/python3
"""Train the face recapture model (docs/face-model.md): checkpoints + --resume.

  # 1. identity encoder (CosFace over the training identities, one identity per clip)
  nice -n 19 /usr/bin/python3 train/face_train.py --stage identity --data train/runs/face/data.pt \
      --run train/runs/face/identity --steps 3000
  # 2. face UNet + conditioner (identity encoder frozen)
  nice -n 19 /usr/bin/python3 train/face_train.py --stage face --data train/runs/face/data.pt \
      --identity-run train/runs/face/identity --run train/runs/face/unet --steps 100000
  # --resume continues RUN/checkpoint.pt; train/face_import.py writes one from the committed
  # weights (no optimizer state, no CosFace head: the head then starts at the references' vectors)

Face stage, per sample (x0 = aligned ground-truth crop in [-1, 1]):
  context = degrade(x0) * (1 - hard)   degrade: p 0.5 box-down/bilinear-up by 2 or 4, p 0.3 a
                                       colour shift of +-0.1 per channel (the generated frame
                                       around the face is blurry and may be off in colour)
  t = 999 with p --p-max-t, else U{0..999};  x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) n
  x0_hat = unet([x_t, context, hard, heatmap], t, conditioner(ref texture latent, identity))
  loss = mean((1 + 4 soft) * ((x0_hat - x0)^2 + 0.5 |x0_hat - x0|))
"""
import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import face_models as fm  # noqa: E402
import models  # noqa: E402


def tiny_configs():
    """Small structure-identical configs for the tests."""
    unet = models.unet_config(**dict(fm.UNET, block_out_channels=[8, 16], norm_num_groups=4,
                                     attention_head_dim=2, cross_attention_dim=16,
                                     down_block_types=["DownBlock2D", "CrossAttnDownBlock2D"],
                                     up_block_types=["CrossAttnUpBlock2D", "UpBlock2D"]))
    cond = dict(fm.CONDITIONER, cross_attention_dim=16, identity_dim=8, identity_tokens=2)
    ident = dict(fm.IDENTITY, block_out_channels=[4, 8], norm_num_groups=2, embedding_dim=8)
    return unet, cond, ident


def id_batch(data, idx):
    crop = data["crop"][idx].float() / 127.5 - 1.0
    return crop * data["hard"][idx].float()


class CheckpointError(Exception):
    pass


def resume_config(ck, key, fallback, run):
    """The module config to build: the checkpoint's when resuming (it may differ from this
    code's defaults, e.g. one seeded by face_import.py), else `fallback`."""
    if ck is None:
        return fallback
    try:
        return dict(ck["configs"][key])
    except (KeyError, TypeError):
        raise CheckpointError("%s/checkpoint.pt: no configs.%s" % (run, key))


@torch.no_grad()
def head_from_references(head, enc, refs):
    """CosFace class weights = the identity vectors of the references: the class centres the
    trained encoder already gives, used when the checkpoint has no head (the head is not
    exported, so a run seeded by face_import.py has none; its identities are the data's)."""
    head.w.copy_(enc(refs))


def train_identity(a, data, log):
    ck = common.load_checkpoint(a.run) if a.resume else None
    ident_cfg = tiny_configs()[2] if a.tiny else fm.IDENTITY
    ident_cfg = resume_config(ck, "identity_encoder", dict(ident_cfg, image_size=data["size"]),
                              a.run)
    if ident_cfg["image_size"] != data["size"]:
        log("error: %s/checkpoint.pt: identity encoder image_size %d, data crops %d"
            % (a.run, ident_cfg["image_size"], data["size"]))
        return 2
    enc = fm.FaceIdentityEncoder(ident_cfg)
    head = fm.CosFaceHead(ident_cfg["embedding_dim"], len(data["clips"]))
    refs = torch.stack([c["ref_id_input"].float() for c in data["clips"]])
    step, wall = 0, 0.0
    if ck is not None:
        enc.load_state_dict(ck["identity_encoder"])
        if "head" in ck:
            head.load_state_dict(ck["head"])
        else:
            head_from_references(head, enc, refs)
            log("no CosFace head in the checkpoint: started from the references' vectors")
    params = list(enc.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=1e-4)
    if ck is not None:
        if "opt" in ck:
            opt.load_state_dict(ck["opt"])
        else:
            log("optimizer state not resumed (seeded by face_import.py)")
        step, wall = ck["step"], ck["wall"]
        log("resumed from step %d (%.0f s)" % (step, wall))
    log("identity encoder: %d parameters, %d identities, %d frames"
        % (fm.param_count(enc), len(data["clips"]), data["crop"].shape[0]))
    rng = np.random.default_rng(a.seed + step)
    labels_all = data["clip"]
    n = labels_all.shape[0]
    last_ck, t0, ema = time.time(), time.time(), None
    while step < a.steps:
        idx = torch.from_numpy(rng.integers(0, n, a.batch))
        x = id_batch(data, idx)
        y = labels_all[idx]
        # a quarter of the batch: the reference images (the identity the element encodes)
        nr = a.batch // 4
        ridx = torch.from_numpy(rng.integers(0, len(data["clips"]), nr))
        x = torch.cat([x, refs[ridx]])
        y = torch.cat([y, ridx])
        loss = F.cross_entropy(head(enc(x), y), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        now = time.time()
        if step % 20 == 0 or step == a.steps:
            log("step %d loss %.4f (ema %.4f) %.2f s/it" % (step, loss.item(), ema, (now - t0) / 20))
            t0 = now
        if now - last_ck > a.checkpoint_minutes * 60 or step == a.steps:
            wall += now - last_ck
            last_ck = now
            common.save_checkpoint(a.run, {
                "identity_encoder": enc.state_dict(), "head": head.state_dict(),
                "opt": opt.state_dict(), "step": step, "wall": wall, "args": vars(a),
                "configs": {"identity_encoder": ident_cfg}, "ema_loss": ema})
            log("checkpoint at step %d, wall %.0f s" % (step, wall))
    return 0


def load_identity(run):
    ck = common.load_checkpoint(run)
    if ck is None:
        raise FileNotFoundError("%s/checkpoint.pt not found (train --stage identity first)" % run)
    enc = fm.FaceIdentityEncoder(ck["configs"]["identity_encoder"])
    enc.load_state_dict(ck["identity_encoder"])
    return enc.eval(), ck


def degrade(x0, rng):
    b = x0.shape[0]
    out = x0.clone()
    for i in range(b):
        if rng.random() < 0.5:
            k = int(rng.choice([2, 4]))
            out[i:i + 1] = F.interpolate(F.avg_pool2d(x0[i:i + 1], k), scale_factor=k,
                                         mode="bilinear", align_corners=False)
        if rng.random() < 0.3:
            out[i] += torch.from_numpy(rng.uniform(-0.1, 0.1, (3, 1, 1)).astype(np.float32))
    return out


def face_batch(data, idx, textures, ids, rng):
    x0 = data["crop"][idx].float() / 127.5 - 1.0
    hard = data["hard"][idx].float()
    soft = data["soft"][idx].float()
    heat = data["heat"][idx].float()
    clip = data["clip"][idx]
    context = degrade(x0, rng) * (1 - hard)
    return x0, context, hard, soft, heat, textures[clip], ids[clip]


def face_step(unet, cond, batch, abar, p_max_t):
    x0, context, hard, soft, heat, tex, ident = batch
    b = x0.shape[0]
    t = torch.randint(0, abar.shape[0], (b,))
    t = torch.where(torch.rand(b) < p_max_t, torch.full_like(t, abar.shape[0] - 1), t)
    ab = abar[t].view(b, 1, 1, 1)
    xt = ab.sqrt() * x0 + (1 - ab).sqrt() * torch.randn_like(x0)
    pred = unet(fm.unet_input(xt, context, hard, heat), t, cond(tex, ident))
    w = 1.0 + 4.0 * soft
    d = pred - x0
    loss = (w * (d * d + 0.5 * d.abs())).mean()
    # face-region MSE (inside the soft mask), for the log
    fmse = ((d * d) * soft).sum() / (soft.sum() * 3 + 1e-6)
    return loss, fmse


def train_face(a, data, log):
    if a.tiny:
        unet_cfg, cond_cfg, _ = tiny_configs()
    else:
        unet_cfg, cond_cfg = fm.UNET, fm.CONDITIONER
    enc, ick = load_identity(a.identity_run)
    ck = common.load_checkpoint(a.run) if a.resume else None
    unet_cfg = resume_config(ck, "unet", dict(unet_cfg, sample_size=data["size"]), a.run)
    cond_cfg = resume_config(ck, "conditioner", dict(
        cond_cfg, identity_dim=ick["configs"]["identity_encoder"]["embedding_dim"],
        texture_tokens=int(data["clips"][0]["texture"][0].numel()),
        latent_channels=int(data["clips"][0]["texture"].shape[0])), a.run)
    fit = {"identity_dim": ick["configs"]["identity_encoder"]["embedding_dim"],
           "texture_tokens": int(data["clips"][0]["texture"][0].numel())}
    for key, want in fit.items():
        if cond_cfg[key] != want:
            # a resumed conditioner built for another identity encoder or texture size
            log("error: %s/checkpoint.pt: conditioner %s %d, the identity run / data give %d"
                % (a.run, key, cond_cfg[key], want))
            return 2
    unet = models.UNet2DConditionModel(unet_cfg)
    cond = fm.FaceConditioner(cond_cfg)
    params = list(unet.parameters()) + list(cond.parameters())
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.0)
    step, wall = 0, 0.0
    if ck is not None:
        unet.load_state_dict(ck["unet"])
        cond.load_state_dict(ck["conditioner"])
        if "opt" in ck:
            opt.load_state_dict(ck["opt"])
        else:
            log("optimizer state not resumed (seeded by face_import.py)")
        step, wall = ck["step"], ck["wall"]
        log("resumed from step %d (%.0f s)" % (step, wall))
    ref_inputs = torch.stack([c["ref_id_input"].float() for c in data["clips"]])
    with torch.no_grad():
        ids = enc(ref_inputs)
    id_step = ick["step"]
    textures = torch.stack([c["texture"].float() for c in data["clips"]])
    log("face unet: %d parameters, conditioner %d, %d clips, %d frames"
        % (fm.param_count(unet), fm.param_count(cond), len(data["clips"]), data["crop"].shape[0]))
    abar = fm.alphas_cumprod()
    rng = np.random.default_rng(a.seed + step)
    torch.manual_seed(a.seed + step)
    n = data["crop"].shape[0]
    last_ck, t0, ema, fema = time.time(), time.time(), None, None
    while step < a.steps:
        if a.identity_reload and step % 50 == 0:
            # the identity stage is still running: follow its newest checkpoint
            try:
                enc2, ick2 = load_identity(a.identity_run)
            except (FileNotFoundError, RuntimeError, EOFError):
                enc2, ick2 = None, None
            if ick2 is not None and ick2["step"] != id_step:
                with torch.no_grad():
                    ids = enc2(ref_inputs)
                id_step = ick2["step"]
                log("identity vectors from identity step %d" % id_step)
        idx = torch.from_numpy(rng.integers(0, n, a.batch))
        loss, fmse = face_step(unet, cond, face_batch(data, idx, textures, ids, rng), abar, a.p_max_t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        fema = fmse.item() if fema is None else 0.98 * fema + 0.02 * fmse.item()
        now = time.time()
        if step % 10 == 0 or step == a.steps:
            log("step %d loss %.4f (ema %.4f) face mse ema %.4f (%.1f dB) %.2f s/it"
                % (step, loss.item(), ema, fema, 10 * np.log10(4.0 / max(fema, 1e-12)), (now - t0) / 10))
            t0 = now
        if now - last_ck > a.checkpoint_minutes * 60 or step == a.steps:
            wall += now - last_ck
            last_ck = now
            common.save_checkpoint(a.run, {
                "unet": unet.state_dict(), "conditioner": cond.state_dict(), "opt": opt.state_dict(),
                "step": step, "wall": wall, "args": vars(a), "ema_loss": ema, "identity_step": id_step,
                "configs": {"unet": unet_cfg, "conditioner": cond_cfg}, "align": data.get("align")})
            log("checkpoint at step %d, wall %.0f s" % (step, wall))
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", choices=["identity", "face"], required=True)
    ap.add_argument("--data", required=True, help="face_data.py output")
    ap.add_argument("--run", required=True)
    ap.add_argument("--identity-run", help="identity stage run folder (face stage)")
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=None, help="default 1e-3 identity, 2e-4 face")
    ap.add_argument("--p-max-t", type=float, default=0.5, help="share of samples at t = 999")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--checkpoint-minutes", type=float, default=4.0)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--identity-reload", action="store_true",
                    help="face stage: reload the identity checkpoint when it changes (both "
                         "stages running at once); the identity vectors follow it")
    ap.add_argument("--tiny", action="store_true", help="small configs for tests")
    a = ap.parse_args(argv)
    if a.lr is None:
        a.lr = 1e-3 if a.stage == "identity" else 2e-4
    common.setup_threads(a.threads)
    torch.manual_seed(a.seed)
    log = common.Logger(a.run)
    data = torch.load(a.data)
    if a.stage == "face" and not a.identity_run:
        log("error: --identity-run is required for --stage face")
        return 2
    try:
        if a.stage == "identity":
            return train_identity(a, data, log)
        return train_face(a, data, log)
    except CheckpointError as e:
        log("error: %s" % e)
        return 2


if __name__ == "__main__":
    sys.exit(main())
