"""The face model's training code end to end on a tiny world dataset (2 identities x 4 frames,
128x128, 16x16 crops), so that it cannot rot: face_data.py crops, masks and heatmaps, the
alignment maths, both training stages with checkpoints and --resume, the identity loss going
down, face_export.py writing a folder that reads back equal, and face_eval.py's smoother
matching the engine's rules.

  test_face_training.py AVATAR_WORLD

Exits 77 (skip) without torch, numpy or PIL."""
import math
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    from PIL import Image  # noqa: F401
except ImportError as e:
    print("SKIP: %s" % e)
    sys.exit(77)

if len(sys.argv) < 2:
    print("usage: test_face_training.py AVATAR_WORLD", file=sys.stderr)
    sys.exit(2)
WORLD = sys.argv[1]
SRC = os.environ.get("AVATAR_SOURCE_DIR",
                     os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "train"))
import common  # noqa: E402
import face_align as fa  # noqa: E402
import face_data  # noqa: E402
import face_eval  # noqa: E402
import face_export  # noqa: E402
import face_models as fm  # noqa: E402
import face_train  # noqa: E402

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def test_alignment():
    # a face whose five points are the template under a known similarity
    q = np.zeros((70, 3), np.float32)
    rng = np.random.default_rng(0)
    q[:, :2] = rng.uniform(0.2, 0.8, (70, 2))
    tpl = np.asarray(fm.ALIGN["template"])
    for i, idx in enumerate((fa.LEFT_EYE, fa.RIGHT_EYE)):
        ring = rng.normal(0, 0.01, (6, 2))
        q[idx, :2] = tpl[i] + ring - ring.mean(0)
    q[fa.NOSE_TIP, :2], q[fa.MOUTH_LEFT, :2], q[fa.MOUTH_RIGHT, :2] = tpl[2], tpl[3], tpl[4]
    q[:, 2] = 0.9
    s, r, t = 2.0, math.radians(12), np.array([30.0, -5.0])
    rot = np.array([[math.cos(r), -math.sin(r)], [math.sin(r), math.cos(r)]])
    face = q.copy()
    face[:, :2] = (q[:, :2] * 64) @ rot.T * s + t
    tr = fa.fit_transform(face, fm.ALIGN["template"], 64)
    check(abs(tr[0] - math.cos(-r) / s) < 1e-6 and abs(tr[1] - math.sin(-r) / s) < 1e-6,
          "fit recovers the similarity (%s)" % tr[:2])
    back = fa.apply(tr, face[:, :2].astype(np.float64))
    check(np.abs(back - q[:, :2] * 64).max() < 1e-3, "every point maps back onto the crop")
    check(fa.face_confident(face, 0.3) and not fa.face_confident(face, 0.95),
          "confidence rule")
    face[5, 2] = 0
    check(not fa.face_confident(face, 0.3), "a missing point is not a confident face")
    hard = fa.hard_mask(q * np.array([64, 64, 1], np.float32), np.array([1.0, 0, 0, 0]), 64,
                        fm.ALIGN["brow_lift"])
    soft = fa.soft_mask(hard, 64, fm.ALIGN["feather"])
    check(soft.min() >= 0 and soft.max() <= 1 + 1e-6, "soft mask in [0, 1]")


def test_smoother():
    sm = face_eval.Smoother(0.6)
    m = np.array([0.5, 0.0, 10.0, 20.0])
    check(np.allclose(sm(m, 64), m), "smoother: first frame is the measurement")
    out = sm(m + np.array([0, 0, 1.0, 0]), 64)
    check(abs(out[2] - 10.4) < 1e-9, "smoother: 0.4 of a 1 px move (%g)" % out[2])
    out = sm(m + np.array([0, 0, 40.0, 0]), 64)
    check(abs(out[2] - 50.0) < 1e-9, "smoother: a jump restarts")


def main():
    test_alignment()
    test_smoother()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = os.path.join(tmp, "world")
        r = subprocess.run([WORLD, "dataset", "--split", "train", "--first-clip", "5000",
                            "--clips", "2", "--frames", "4", "--size", "128x128",
                            "--out", data_dir, "--jobs", "1"], capture_output=True, text=True)
        check(r.returncode == 0, "avatar-world dataset (%s)" % r.stderr.strip()[-200:])
        if r.returncode != 0:
            return 1
        data = face_data.build([data_dir], os.path.join(SRC, "models", "avatar-default", "vae"),
                               16, 1.0, 0, log=lambda *_: None)
        n = data["crop"].shape[0]
        check(len(data["clips"]) == 2 and n >= 4, "2 identities, %d confident frames" % n)
        check(tuple(data["crop"].shape[1:]) == (3, 16, 16) and data["crop"].dtype == torch.uint8,
              "crops (N, 3, 16, 16) u8")
        check(tuple(data["heat"].shape[1:]) == (3, 16, 16) and float(data["heat"].max()) > 0.5,
              "heatmaps drawn")
        hard = data["hard"].float()
        check(0.1 < float(hard.mean()) < 0.8, "hard masks cover the face (%.2f)" % hard.mean())
        check(tuple(data["clips"][0]["texture"].shape) == (4, 16, 16),
              "reference texture latent (4, 16, 16)")
        path = os.path.join(tmp, "data.pt")
        torch.save(data, path)

        id_run = os.path.join(tmp, "id")
        args = ["--data", path, "--threads", "1", "--batch", "8", "--tiny"]
        rc = face_train.main(["--stage", "identity", "--run", id_run, "--steps", "60",
                              "--lr", "3e-3"] + args)
        ck = common.load_checkpoint(id_run)
        check(rc == 0 and ck["step"] == 60, "identity stage: 60 steps, checkpoint written")
        # "... step N loss L (ema E) ...": the smoothed loss at step 20 and at step 60
        emas = [float(l.split("(ema ")[1].split(")")[0])
                for l in open(os.path.join(id_run, "log.txt")) if "(ema " in l]
        check(len(emas) == 3 and emas[-1] < emas[0],
              "identity loss goes down (ema %s)" % emas)
        rc = face_train.main(["--stage", "identity", "--run", id_run, "--steps", "65",
                              "--resume"] + args)
        check(rc == 0 and common.load_checkpoint(id_run)["step"] == 65, "identity --resume")

        face_run = os.path.join(tmp, "face")
        rc = face_train.main(["--stage", "face", "--run", face_run, "--identity-run", id_run,
                              "--steps", "3"] + args)
        ck = common.load_checkpoint(face_run)
        check(rc == 0 and ck["step"] == 3 and ck["identity_step"] == 65, "face stage: 3 steps")
        rc = face_train.main(["--stage", "face", "--run", face_run, "--identity-run", id_run,
                              "--steps", "4", "--resume"] + args)
        check(rc == 0 and common.load_checkpoint(face_run)["step"] == 4, "face --resume")

        out = os.path.join(tmp, "export")
        rc = face_export.main(["--identity-run", id_run, "--face-run", face_run, "--out", out])
        check(rc == 0, "export verified")
        for f in ("face_config.json", "scheduler_config.json", "unet/config.json",
                  "conditioner/diffusion_pytorch_model.safetensors",
                  "identity_encoder/diffusion_pytorch_model.safetensors"):
            check(os.path.exists(os.path.join(out, f)), "exported " + f)
        unet, cond, ident, cfg = face_export.load(out)
        check(cfg["crop_size"] == 16 and cfg["texture_size"] == 128, "face_config sizes")
        check(cfg["align"]["template"] == fm.ALIGN["template"], "template round trip")
    print("%d failure(s)" % len(failures) if failures else "all face training checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
