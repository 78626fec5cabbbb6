#!/usr/bin/python3
"""Face crops of `avatar-world dataset` clips for the face model (docs/face-model.md).

  /usr/bin/python3 train/face_data.py --data train/data/train train/data/face/train \
      --vae models/avatar-default/vae --out train/runs/face/data.pt [--jitter 1]

For every frame whose face is confident (face_align.face_confident): the aligned crop
(u8), hard mask (u8), soft (feathered) mask and landmark heatmap (f16), at the crop size,
with the crop transform jittered (--jitter: scale +-5 %, rotation +-3 degrees, shift +-2 %
of the crop; the element smooths the transform over time, so the model must not rely on
exact placement).  Per clip (one identity): the reference face aligned at TEXTURE_SIZE,
its VAE latent (mean * scaling_factor, as the engine's ae_avatar_model_encode_rgb), and the
masked aligned reference crop for the identity encoder.
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
import face_align as fa  # noqa: E402
import face_models as fm  # noqa: E402
import models  # noqa: E402


def load_face_doc(doc):
    people = doc.get("people") or []
    if not people:
        return None
    return fa.face_array(people[0].get("face_keypoints_2d"))


def jitter(tr, size, rng, amount):
    """Similarity about the crop centre applied after tr (crop coordinates)."""
    if amount <= 0:
        return tr
    s = 1.0 + rng.uniform(-0.05, 0.05) * amount
    r = math.radians(rng.uniform(-3, 3) * amount)
    d = rng.uniform(-0.02, 0.02, 2) * size * amount
    ja, jb = s * math.cos(r), s * math.sin(r)
    c = size / 2.0
    a, b, tx, ty = tr
    # q' = J (q - c) + c + d
    na, nb = ja * a - jb * b, jb * a + ja * b
    qx, qy = tx - c, ty - c
    ntx = ja * qx - jb * qy + c + d[0]
    nty = jb * qx + ja * qy + c + d[1]
    return np.array([na, nb, ntx, nty])


def reference_face(clip):
    path = os.path.join(clip, "reference.json")
    with open(path) as f:
        doc = json.load(f)
    if "people" not in doc and isinstance(doc.get("pose"), dict):
        doc = doc["pose"]
    return load_face_doc(doc)


def id_input(crop, hard):
    """Identity encoder input: aligned crop in [-1, 1] times the hard face mask."""
    return crop * hard


@torch.no_grad()
def encode_texture(vae, scale, img, face):
    tr = fa.fit_transform(face, fm.ALIGN["template"], fm.TEXTURE_SIZE)
    crop = fa.warp_crop(img, tr, fm.TEXTURE_SIZE).transpose(2, 0, 1) / 127.5 - 1.0
    mean, _ = vae.encode(torch.from_numpy(crop.astype(np.float32))[None])
    return mean[0] * scale


def build(roots, vae_dir, size, jitter_amount, seed, log=print, max_clips=0):
    vae = export.load_folder(models.AutoencoderKL, vae_dir)
    scale = float(vae.config["scaling_factor"])
    rng = np.random.default_rng(seed)
    al = fm.ALIGN
    items = {k: [] for k in ("crop", "hard", "soft", "heat", "clip")}
    clips = []
    for root in roots:
        for clip in dataset.list_clips(root)[:max_clips or None]:
            rface = reference_face(clip)
            rimg = np.asarray(Image.open(os.path.join(clip, "reference.png")).convert("RGB"))
            if not fa.face_confident(rface, al["min_confidence"]):
                log("skip %s: reference face not confident" % clip)
                continue
            rtr = fa.fit_transform(rface, al["template"], size)
            rcrop, _, rhard, _, _ = fa.prepare(rimg, rface, rtr, size, al)
            with open(os.path.join(clip, "clip.json")) as f:
                meta = json.load(f)
            ci = len(clips)
            n0 = len(items["clip"])
            frames, poses, _ = dataset.clip_frames_meta(clip)
            for name, doc in zip(frames, poses):
                face = load_face_doc(doc)
                if not fa.face_confident(face, al["min_confidence"]):
                    continue
                img = np.asarray(Image.open(os.path.join(clip, "frames", name)).convert("RGB"))
                tr = jitter(fa.fit_transform(face, al["template"], size), size, rng, jitter_amount)
                crop, _, hard, soft, heat = fa.prepare(img, face, tr, size, al)
                items["crop"].append(np.round((crop + 1) * 127.5).clip(0, 255).astype(np.uint8))
                items["hard"].append(hard.astype(np.uint8))
                items["soft"].append(soft.astype(np.float16))
                items["heat"].append(heat.astype(np.float16))
                items["clip"].append(ci)
            clips.append({"name": clip, "identity": meta["identity"],
                          "texture": encode_texture(vae, scale, rimg, rface).half(),
                          "ref_id_input": torch.from_numpy(id_input(rcrop, rhard)).half(),
                          "frames": len(items["clip"]) - n0})
            if len(clips) % 50 == 0:
                log("%d clips, %d frames" % (len(clips), len(items["clip"])))
    out = {k: torch.from_numpy(np.stack(v)) for k, v in items.items() if k != "clip"}
    out["clip"] = torch.tensor(items["clip"], dtype=torch.long)
    out["clips"] = clips
    out["size"] = size
    out["align"] = dict(al)
    log("%d clips, %d frames" % (len(clips), len(items["clip"])))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", nargs="+", required=True, help="avatar-world dataset folders")
    ap.add_argument("--vae", default="models/avatar-default/vae")
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", type=int, default=fm.CROP_SIZE)
    ap.add_argument("--jitter", type=float, default=1.0)
    ap.add_argument("--max-clips", type=int, default=0, help="per folder (0 = all)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    data = build(a.data, a.vae, a.size, a.jitter, a.seed, max_clips=a.max_clips)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    torch.save(data, a.out + ".tmp")
    os.replace(a.out + ".tmp", a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
