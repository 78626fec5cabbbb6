#!/usr/bin/python3
"""Export the face model to MODEL/face/ (the layout engine/face-model.c loads).

  /usr/bin/python3 train/face_export.py --identity-run train/runs/face/identity \
      --face-run train/runs/face/unet --out models/avatar-default/face

Writes OUT/{unet,conditioner,identity_encoder}/config.json +
diffusion_pytorch_model.safetensors (F16), OUT/scheduler_config.json (DDIM, x0
prediction, trailing spacing), OUT/face_config.json (crop and texture size, alignment
parameters) and OUT/training.json; reads every folder back and checks it against the
f16-rounded model.
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import export  # noqa: E402
import face_models as fm  # noqa: E402
import models  # noqa: E402


def face_config(crop_size, texture_size, align):
    cfg = {"_class_name": "FaceRecapture", "crop_size": crop_size, "texture_size": texture_size}
    cfg.update({k: v for k, v in align.items() if k != "template"})
    cfg["template"] = [float(v) for pt in align["template"] for v in pt]
    return cfg


def write(out, unet, cond, ident, crop_size, texture_size, align=fm.ALIGN, dtype_half=True,
          log=print):
    """Writes the folder; returns the three modules rounded as stored."""
    parts = {"unet": (unet, unet.config), "conditioner": (cond, cond.config),
             "identity_encoder": (ident, ident.config)}
    total = 0
    for key, (m, cfg) in parts.items():
        if dtype_half:
            export.save_folder(m, cfg, os.path.join(out, key))
            export.round_f16(m)
        else:
            os.makedirs(os.path.join(out, key), exist_ok=True)
            common.write_json(os.path.join(out, key, "config.json"), cfg)
            import safetensors_io as st
            st.save({k: v.float() for k, v in m.state_dict().items()},
                    os.path.join(out, key, export.WEIGHTS))
        total += os.path.getsize(os.path.join(out, key, export.WEIGHTS))
    common.write_json(os.path.join(out, "scheduler_config.json"), fm.SCHEDULER)
    common.write_json(os.path.join(out, "face_config.json"),
                      face_config(crop_size, texture_size, align))
    log("exported the face model to %s: %.2f MB of weights" % (out, total / 1e6))
    return unet.eval(), cond.eval(), ident.eval()


def load(out):
    """The face model folder back as (unet, conditioner, identity encoder, face_config)."""
    unet = export.load_folder(models.UNet2DConditionModel, os.path.join(out, "unet"))
    cond = export.load_folder(fm.FaceConditioner, os.path.join(out, "conditioner"))
    ident = export.load_folder(fm.FaceIdentityEncoder, os.path.join(out, "identity_encoder"))
    with open(os.path.join(out, "face_config.json")) as f:
        cfg = json.load(f)
    t = cfg["template"]
    cfg["align"] = {"template": [[t[2 * i], t[2 * i + 1]] for i in range(5)],
                    "heatmap_sigma": cfg["heatmap_sigma"], "brow_lift": cfg["brow_lift"],
                    "feather": cfg["feather"], "min_confidence": cfg["min_confidence"]}
    return unet, cond, ident, cfg


@torch.no_grad()
def verify(out, ref, log=print):
    unet, cond, ident, cfg = load(out)
    r_unet, r_cond, r_ident = ref
    torch.manual_seed(0)
    s = cfg["crop_size"]
    c = cond.config
    side = int(round(c["texture_tokens"] ** 0.5))
    x = torch.randn(1, 3, ident.config["image_size"], ident.config["image_size"])
    z = torch.randn(1, c["latent_channels"], side, side)
    e = ident(x)
    inp = torch.randn(1, unet.config["in_channels"], s, s)
    ok = True
    for name, a, b in (("identity_encoder", ident(x), r_ident(x)),
                       ("conditioner", cond(z, e), r_cond(z, e)),
                       ("unet", unet(inp, 999, cond(z, e)), r_unet(inp, 999, r_cond(z, e)))):
        err = (a - b).abs().max().item()
        log("verify %s: max_abs %.3g" % (name, err))
        ok &= err <= 1e-4
    return ok


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--identity-run", required=True)
    ap.add_argument("--face-run", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    ick = common.load_checkpoint(a.identity_run)
    fck = common.load_checkpoint(a.face_run)
    if ick is None or fck is None:
        print("error: checkpoint.pt missing in %s or %s" % (a.identity_run, a.face_run))
        return 1
    ident = fm.FaceIdentityEncoder(ick["configs"]["identity_encoder"])
    ident.load_state_dict(ick["identity_encoder"])
    unet = models.UNet2DConditionModel(fck["configs"]["unet"])
    unet.load_state_dict(fck["unet"])
    cond = fm.FaceConditioner(fck["configs"]["conditioner"])
    cond.load_state_dict(fck["conditioner"])
    crop = fck["configs"]["unet"]["sample_size"]
    texture = int(round(cond.config["texture_tokens"] ** 0.5)) * 8
    # the alignment the run's data was made with (runs before it was recorded: the default)
    mods = write(a.out, unet, cond, ident, crop, texture, align=fck.get("align") or fm.ALIGN)
    common.write_json(os.path.join(a.out, "training.json"),
                      {"identity_steps": ick["step"], "identity_wall_s": round(ick["wall"]),
                       "face_steps": fck["step"], "face_wall_s": round(fck["wall"]),
                       "face_ema_loss": fck.get("ema_loss")})
    ok = verify(a.out, mods)
    print("export verified" if ok else "export verification FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
