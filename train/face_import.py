#!/usr/bin/python3
"""Seed the face training runs from an exported face model folder (the committed weights), so
that face training resumes from what landed in the repository when the run folders are gone
(train/import_model.py does the same for the main model).

  /usr/bin/python3 train/face_import.py --face models/avatar-default/face \
      --identity-run train/runs/face/identity --face-run train/runs/face/unet

Writes RUN/checkpoint.pt in the layout train/face_train.py --resume reads:
  identity run  identity_encoder (f16 -> f32), its config, step and wall time of
                training.json; no CosFace head (it is not exported: face_train.py starts it
                from the identity vectors of the references of the data it is given)
  face run      unet + conditioner, their configs, step, wall time, EMA loss and the identity
                step they were trained against
and no optimizer state (AdamW restarts its moments).  Then run face_train.py with --resume as
docs/face-model.md says.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import face_export  # noqa: E402
import safetensors_io  # noqa: E402

TRAINING_KEYS = ("identity_steps", "identity_wall_s", "face_steps", "face_wall_s")


def read_training(face_dir):
    """training.json of the face folder; missing keys are an error naming the file."""
    path = os.path.join(face_dir, "training.json")
    with open(path) as f:
        info = json.load(f)
    missing = [k for k in TRAINING_KEYS if k not in info]
    if missing:
        raise KeyError("%s: missing %s" % (path, ", ".join(missing)))
    return info


def checkpoints(face_dir):
    """The two run checkpoints (identity, face) as dicts, from the exported folder."""
    unet, cond, ident, _ = face_export.load(face_dir)
    info = read_training(face_dir)
    origin = os.path.abspath(face_dir)
    identity = {"identity_encoder": ident.state_dict(), "step": info["identity_steps"],
                "wall": float(info["identity_wall_s"]), "imported_from": origin,
                "configs": {"identity_encoder": dict(ident.config)}}
    face = {"unet": unet.state_dict(), "conditioner": cond.state_dict(),
            "step": info["face_steps"], "wall": float(info["face_wall_s"]),
            "ema_loss": info.get("face_ema_loss"), "identity_step": info["identity_steps"],
            "imported_from": origin,
            "configs": {"unet": dict(unet.config), "conditioner": dict(cond.config)}}
    return identity, face


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--face", default="models/avatar-default/face",
                    help="exported face model folder (MODEL/face)")
    ap.add_argument("--identity-run", required=True)
    ap.add_argument("--face-run", required=True)
    ap.add_argument("--force", action="store_true", help="overwrite existing checkpoints")
    a = ap.parse_args(argv)
    for run in (a.identity_run, a.face_run):
        if os.path.exists(os.path.join(run, "checkpoint.pt")) and not a.force:
            print("error: %s/checkpoint.pt exists (use --force to overwrite)" % run)
            return 1
    try:
        identity, face = checkpoints(a.face)
    except (OSError, KeyError, ValueError, RuntimeError, safetensors_io.SafetensorsError) as e:
        # a missing file, a bad JSON or safetensors file, a weight that does not fit its config
        why = e.args[0] if isinstance(e, KeyError) and e.args else e   # KeyError quotes it
        print("error: cannot import %s: %s" % (a.face, why))
        return 1
    for run, state in ((a.identity_run, identity), (a.face_run, face)):
        os.makedirs(run, exist_ok=True)
        common.save_checkpoint(run, state)
    print("seeded %s (identity step %d) and %s (face step %d) from %s"
          % (a.identity_run, identity["step"], a.face_run, face["step"], a.face))
    return 0


if __name__ == "__main__":
    sys.exit(main())
