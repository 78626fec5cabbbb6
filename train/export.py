#!/usr/bin/python3
"""Export trained checkpoints to the diffusers-layout folder the engine loads.

  /usr/bin/python3 train/export.py --vae-run train/runs/vae --unet-run train/runs/unet \
      --out models/avatar-default [--references DIR --num-references 4] [--weights ema|last]

Writes OUT/{vae,unet,reference_unet,pose_guider,hand_encoder}/config.json +
diffusion_pytorch_model.safetensors (F16) and OUT/scheduler_config.json; with
--references, copies reference identities (clip_*/reference.png + reference.json) to
OUT/references/.  The UNet run's weight average (train_unet.py --ema-decay) is written
when the checkpoint has one, unless --weights last.  Every folder is read back and checked
against the f16-rounded model.
"""
import argparse
import json
import os
import shutil
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import config  # noqa: E402
import models  # noqa: E402
import safetensors_io as st  # noqa: E402

WEIGHTS = "diffusion_pytorch_model.safetensors"


def save_folder(module, cfg, path):
    os.makedirs(path, exist_ok=True)
    common.write_json(os.path.join(path, "config.json"), cfg)
    st.save({k: v.half() for k, v in module.state_dict().items()}, os.path.join(path, WEIGHTS),
            metadata={"format": "pt"})


def load_folder(cls, path):
    """Build `cls` from path/config.json and load the weights strictly (as f32)."""
    with open(os.path.join(path, "config.json")) as f:
        cfg = json.load(f)
    m = cls(cfg)
    m.load_state_dict(st.load(os.path.join(path, WEIGHTS), to_float32=True), strict=True)
    return m.eval()


def round_f16(module):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.half().float())
    return module.eval()


def unet_weights(uck, which, log=print):
    """The UNet run's state dicts to export: its weight EMA or its last step's."""
    ema = uck.get("weight_ema")
    if which == "ema" and ema is not None:
        log("unet run: weight EMA (decay %g, %d updates)" % (ema["decay"], ema["updates"]))
        return ema, "ema"
    if which == "ema":
        log("unet run: no weight EMA in the checkpoint, the last step's weights")
    return uck, "last"


def export(vck, uck, out, log=print, weights="ema"):
    vae_cfg = dict(vck["config"], scaling_factor=float(uck["scaling_factor"]))
    vae = models.AutoencoderKL(vae_cfg)
    vae.load_state_dict(vck["vae"])
    states, which = unet_weights(uck, weights, log)
    mods = {}
    for key, cls in (("unet", models.UNet2DConditionModel), ("reference_unet", models.UNet2DConditionModel),
                     ("pose_guider", models.PoseGuider), ("hand_encoder", models.HandEncoder)):
        cfg = uck["configs"]["unet" if key.endswith("unet") else key]
        if key == "reference_unet":
            cfg = models.reference_unet_config(cfg)
        m = cls(cfg)
        m.load_state_dict(states[key])
        mods[key] = (m, cfg)
    mods["vae"] = (vae, vae_cfg)
    total = 0
    for key, (m, cfg) in mods.items():
        save_folder(m, cfg, os.path.join(out, key))
        total += os.path.getsize(os.path.join(out, key, WEIGHTS))
        round_f16(m)
    common.write_json(os.path.join(out, "scheduler_config.json"), config.SCHEDULER)
    log("exported to %s: %.1f MB of f16 weights (%s UNet weights)" % (out, total / 1e6, which))
    return {k: v[0] for k, v in mods.items()}, which


@torch.no_grad()
def verify(out, ref_mods, size, log=print):
    """Reload every folder and compare one forward with the in-memory f16-rounded model."""
    torch.manual_seed(0)
    ok = True
    got = {
        "vae": load_folder(models.AutoencoderKL, os.path.join(out, "vae")),
        "unet": load_folder(models.UNet2DConditionModel, os.path.join(out, "unet")),
        "reference_unet": load_folder(models.UNet2DConditionModel, os.path.join(out, "reference_unet")),
        "pose_guider": load_folder(models.PoseGuider, os.path.join(out, "pose_guider")),
        "hand_encoder": load_folder(models.HandEncoder, os.path.join(out, "hand_encoder")),
    }
    lat = size // 8
    img = torch.rand(1, 3, size, size) * 2 - 1
    kp = torch.rand(1, got["hand_encoder"].config["num_keypoints"], 3)
    pose = torch.rand(1, 3, size, size)
    z = torch.randn(1, 4, lat, lat)
    for k, fn in (("vae", lambda m: m.decode(m.encode(img)[0])),
                  ("hand_encoder", lambda m: m(kp)),
                  ("pose_guider", lambda m: m(pose)),
                  ("unet", lambda m: m(torch.cat([z, z], 1)[:, :m.config["in_channels"]], 500, ref_mods["hand_encoder"](kp),
                                       ref_mods["pose_guider"](pose))),
                  ("reference_unet", lambda m: m(z, 0, ref_mods["hand_encoder"](kp)))):
        a, b = fn(got[k]), fn(ref_mods[k])
        err = (a - b).abs().max().item()
        log("verify %s: max_abs %.3g" % (k, err))
        ok &= err <= 1e-5
    return ok


def copy_references(src, out, n, log=print):
    dst = os.path.join(out, "references")
    os.makedirs(dst, exist_ok=True)
    clips = sorted(d for d in os.listdir(src) if d.startswith("clip_"))[:n]
    for i, c in enumerate(clips):
        shutil.copy(os.path.join(src, c, "reference.png"), os.path.join(dst, "identity_%02d.png" % i))
        if os.path.exists(os.path.join(src, c, "reference.json")):
            shutil.copy(os.path.join(src, c, "reference.json"), os.path.join(dst, "identity_%02d.json" % i))
    log("copied %d reference identities to %s" % (len(clips), dst))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vae-run", required=True)
    ap.add_argument("--unet-run", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--references", help="dataset folder whose clip_*/reference.* to bundle")
    ap.add_argument("--num-references", type=int, default=4)
    ap.add_argument("--size", type=int, default=config.IMAGE_SIZE)
    ap.add_argument("--weights", choices=("ema", "last"), default="ema",
                    help="the UNet run's weight average (when it has one) or its last step")
    a = ap.parse_args(argv)
    vck = common.load_checkpoint(a.vae_run)
    uck = common.load_checkpoint(a.unet_run)
    if vck is None or uck is None:
        print("error: checkpoint.pt missing in %s or %s" % (a.vae_run, a.unet_run))
        return 1
    mods, which = export(vck, uck, a.out, weights=a.weights)
    if a.references:
        copy_references(a.references, a.out, a.num_references)
    common.write_json(os.path.join(a.out, "training.json"),
                      {"vae_steps": vck["step"], "vae_wall_s": round(vck["wall"]),
                       "unet_steps": uck["step"], "unet_wall_s": round(uck["wall"]),
                       "unet_ema_loss": uck.get("ema_loss"),
                       "unet_weights": which})
    ok = verify(a.out, mods, a.size)
    print("export verified" if ok else "export verification FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
