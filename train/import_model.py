#!/usr/bin/python3
"""Seed training runs from an exported model folder (the committed weights), so that
training resumes from what landed in the repository when the run folders are gone.

  /usr/bin/python3 train/import_model.py --model models/avatar-default \
      --vae-run train/runs/vae --unet-run train/runs/unet

Writes RUN/checkpoint.pt for each run with the weights (f16 -> f32), configs, step counts and
wall times of training.json, and no optimizer state (AdamW restarts its moments).  Then run
train_vae.py / train_unet.py with --resume as docs/training.md says.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import export  # noqa: E402
import models  # noqa: E402


def read_json(path):
    with open(path) as f:
        return json.load(f)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="exported folder (models/avatar-default)")
    ap.add_argument("--vae-run", required=True)
    ap.add_argument("--unet-run", required=True)
    ap.add_argument("--force", action="store_true", help="overwrite existing checkpoints")
    a = ap.parse_args(argv)
    info = read_json(os.path.join(a.model, "training.json"))
    for run in (a.vae_run, a.unet_run):
        if os.path.exists(os.path.join(run, "checkpoint.pt")) and not a.force:
            print("error: %s/checkpoint.pt exists (use --force to overwrite)" % run)
            return 1
        os.makedirs(run, exist_ok=True)

    vae_cfg = read_json(os.path.join(a.model, "vae", "config.json"))
    scaling = float(vae_cfg.pop("scaling_factor"))
    vae = export.load_folder(models.AutoencoderKL, os.path.join(a.model, "vae"))
    common.save_checkpoint(a.vae_run, {"vae": vae.state_dict(), "config": vae_cfg,
                                       "step": info["vae_steps"], "wall": info["vae_wall_s"],
                                       "imported_from": a.model})
    state = {"step": info["unet_steps"], "wall": info["unet_wall_s"], "scaling_factor": scaling,
             "ema_loss": info.get("unet_ema_loss"), "imported_from": a.model, "configs": {}}
    for key, cls in (("unet", models.UNet2DConditionModel), ("reference_unet", models.UNet2DConditionModel),
                     ("pose_guider", models.PoseGuider), ("hand_encoder", models.HandEncoder)):
        m = export.load_folder(cls, os.path.join(a.model, key))
        state[key] = m.state_dict()
        if key != "reference_unet":  # its config follows from the unet's
            state["configs"][key] = m.config
    common.save_checkpoint(a.unet_run, state)
    print("seeded %s (vae step %d) and %s (unet step %d, scaling_factor %.5f) from %s"
          % (a.vae_run, info["vae_steps"], a.unet_run, info["unet_steps"], scaling, a.model))
    return 0


if __name__ == "__main__":
    sys.exit(main())
