#!/usr/bin/python3
"""Face recapture on held-out clips: face-region PSNR / SSIM and identity similarity with and
without it, plus a contact sheet of face crops (docs/face-model.md, "Evaluation").

  /usr/bin/python3 train/face_eval.py --model models/avatar-default \
      --heldout train/data/heldout --renders train/runs/quality/renders \
      --out train/runs/face/eval.json --sheet docs/facerecapture-sheet.png

Inputs ("without" frames), each scored against the renderer's ground truth:
  blurred   the ground-truth frame with its face box blurred (4x box-down, bilinear up): a
            stand-in for a generator that gets the pose right and the face soft;
  render    the avatar pipeline's own output (`avatar-engine render` folders of the held-out
            clips, e.g. the quality report's train/runs/quality/renders/clip_N/*/, 48 PNGs each).
"With" = the same frames through the facerecapture procedure (train/face_align.py +
train/face_models.py, the PyTorch twin of the element, checked equal by the face-vs-torch
test): the clip's ground-truth pose (the element reads it from the keypoint meta), the clip's
reference.png/.json as the reference, crop transform smoothing 0.5, `--steps` DDIM steps from
the engine's noise (seed 0), strength 1.
Metrics (train/metrics.py): PSNR and SSIM over the face box of boxes.jsonl; identity
similarity = cosine of the identity encoder's vectors of the output's and the ground truth's
aligned, masked face crops (aligned by the ground-truth face points).
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_engine  # noqa: E402  (noise_fill: the engine's noise)
import dataset  # noqa: E402
import export  # noqa: E402
import face_align as fa  # noqa: E402
import face_data  # noqa: E402
import face_export  # noqa: E402
import face_models as fm  # noqa: E402
import metrics  # noqa: E402
import models  # noqa: E402


class Smoother:
    """ae_face_smoother_update (engine/face-align.c)."""

    def __init__(self, smoothing):
        self.k = 1.0 - smoothing
        self.state = None

    def reset(self):
        self.state = None

    def __call__(self, m, size):
        if self.state is not None:
            s = self.state
            sm, ss = np.hypot(m[0], m[1]), np.hypot(s[0], s[1])
            cm = fa.invert_points(m, np.array([size / 2.0, size / 2.0]))
            cs = fa.invert_points(s, np.array([size / 2.0, size / 2.0]))
            if abs(sm / ss - 1) > 0.25 or np.hypot(*(cm - cs)) * sm > 0.25 * size:
                self.state = None
        if self.state is None:
            self.state = np.array(m, np.float64)
        else:
            self.state = self.state + self.k * (np.asarray(m) - self.state)
        return self.state.copy()


class Recapture:
    def __init__(self, model_dir, steps, seed=0):
        self.unet, self.cond, self.ident, cfg = face_export.load(os.path.join(model_dir, "face"))
        self.vae = export.load_folder(models.AutoencoderKL, os.path.join(model_dir, "vae"))
        self.scale = float(self.vae.config["scaling_factor"])
        self.align = cfg["align"]
        self.size = cfg["crop_size"]
        self.texture_size = cfg["texture_size"]
        self.steps = steps
        n = 3 * self.size * self.size
        self.noise = torch.from_numpy(check_engine.noise_fill(seed, 0, 0, n).astype(np.float32)
                                      .reshape(1, 3, self.size, self.size))

    @torch.no_grad()
    def identity(self, img, face):
        tr = fa.fit_transform(face, self.align["template"], self.ident.config["image_size"])
        crop, _, hard, _, _ = fa.prepare(img, face, tr, self.ident.config["image_size"], self.align)
        return self.ident(torch.from_numpy(crop * hard)[None])[0]

    @torch.no_grad()
    def reference(self, img, face):
        tr = fa.fit_transform(face, self.align["template"], self.texture_size)
        crop = fa.warp_crop(img, tr, self.texture_size).transpose(2, 0, 1) / 127.5 - 1.0
        z = self.vae.encode(torch.from_numpy(crop.astype(np.float32))[None])[0] * self.scale
        return self.cond(z, self.identity(img, face)[None])

    @torch.no_grad()
    def __call__(self, img, face, ctx, tr):
        crop, masked, hard, soft, heat = fa.prepare(img, face, tr, self.size, self.align)
        gen = fm.ddim_sample(self.unet, torch.from_numpy(masked)[None],
                             torch.from_numpy(hard)[None], torch.from_numpy(heat)[None], ctx,
                             self.steps, self.noise)
        g = (gen[0].numpy().transpose(1, 2, 0) + 1) * 127.5
        return fa.blend(img, g, soft[0], tr, 1.0), crop, gen[0].numpy()


def blur_face(img, box):
    x0, y0, x1, y1 = box
    t = torch.from_numpy(img.astype(np.float32)).permute(2, 0, 1)[None]
    small = F.avg_pool2d(t, 4)
    up = F.interpolate(small, size=img.shape[:2], mode="bilinear", align_corners=False)
    out = img.copy()
    b = up[0].permute(1, 2, 0).numpy().round().clip(0, 255).astype(np.uint8)
    out[y0:y1, x0:x1] = b[y0:y1, x0:x1]
    return out


def load_clip(clip):
    frames, poses, boxes = dataset.clip_frames_meta(clip)
    return frames, poses, boxes


def evaluate(rc, clip, inputs, label, acc, sheet, max_frames, log):
    frames, poses, boxes = load_clip(clip)
    rimg = np.asarray(Image.open(os.path.join(clip, "reference.png")).convert("RGB"))
    rface = face_data.reference_face(clip)
    ctx = rc.reference(rimg, rface)
    smoother = Smoother(0.5)
    n = min(len(frames), max_frames or len(frames), len(inputs))
    for i in range(n):
        gt = np.asarray(Image.open(os.path.join(clip, "frames", frames[i])).convert("RGB"))
        face = face_data.load_face_doc(poses[i])
        w = float(poses[i].get("canvas_width") or gt.shape[1])
        h = float(poses[i].get("canvas_height") or gt.shape[0])
        box = metrics.box_pixels(boxes[i].get("face"), w, h, gt.shape[1], gt.shape[0])
        src = inputs[i](gt, box) if callable(inputs[i]) else inputs[i]
        if box is None:
            continue
        if not fa.face_confident(face, rc.align["min_confidence"]):
            smoother.reset()
            out = src          # the element passes it through
            crop_in = crop_out = None
        else:
            tr = smoother(fa.fit_transform(face, rc.align["template"], rc.size), rc.size)
            out, crop_in, gen = rc(src, face, ctx, tr)
            crop_out = gen
        x0, y0, x1, y1 = box
        ident_gt = rc.identity(gt, face) if fa.face_confident(face, 0.0) else None
        for key, img in (("without", src), ("with", out)):
            a = acc.setdefault(label, {}).setdefault(key, {"psnr": [], "ssim": [], "identity": []})
            reg_out, reg_gt = img[y0:y1, x0:x1], gt[y0:y1, x0:x1]
            a["psnr"].append(metrics.psnr(reg_out, reg_gt))
            if min(reg_out.shape[:2]) >= 11:
                a["ssim"].append(metrics.ssim(reg_out, reg_gt))
            if ident_gt is not None:
                a["identity"].append(float(torch.dot(rc.identity(img, face), ident_gt)))
        if crop_in is not None and sheet is not None and i % 12 == 0 and len(sheet) < 12:
            gt_tr = fa.fit_transform(face, rc.align["template"], rc.size)
            gt_crop = fa.warp_crop(gt, gt_tr, rc.size)
            sheet.append((label, np.clip((crop_in.transpose(1, 2, 0) + 1) * 127.5, 0, 255),
                          np.clip((crop_out.transpose(1, 2, 0) + 1) * 127.5, 0, 255), gt_crop))
    log("%s %s: %d frames" % (label, os.path.basename(clip), n))


def summarize(acc):
    out = {}
    for label, d in acc.items():
        out[label] = {}
        for key, m in d.items():
            out[label][key] = {k: (float(np.mean(v)) if v else None) for k, v in m.items()}
            out[label][key]["frames"] = len(m["psnr"])
    return out


def write_sheet(sheet, path):
    if not sheet:
        return
    cell = 96
    rows = []
    for _, a, b, c in sheet:
        row = [np.asarray(Image.fromarray(x.astype(np.uint8)).resize((cell, cell), Image.NEAREST))
               for x in (a, b, c)]
        rows.append(np.concatenate(row, axis=1))
    img = np.concatenate(rows, axis=0)
    Image.fromarray(img).quantize(256).save(path, optimize=True)   # palette PNG: small in docs/


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/avatar-default")
    ap.add_argument("--heldout", default="train/data/heldout")
    ap.add_argument("--renders", help="folder of clip_N/<run>/NNNNN.png pipeline renders")
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--frames", type=int, default=0, help="per clip (0 = all)")
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--out", required=True)
    ap.add_argument("--sheet", help="PNG: rows of [input crop, restored crop, ground truth]")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    rc = Recapture(a.model, a.steps)
    acc, sheet = {}, []
    clips = dataset.list_clips(a.heldout)[:a.clips]
    for clip in clips:
        n = len(dataset.list_frames(clip))
        evaluate(rc, clip, [lambda gt, box: blur_face(gt, box) if box else gt] * n, "blurred",
                 acc, sheet if len(sheet) < 6 else None, a.frames, print)
    if a.renders:
        for clip in clips:
            base = os.path.join(a.renders, os.path.basename(clip))
            if not os.path.isdir(base):
                continue
            for run in sorted(os.listdir(base)):
                d = os.path.join(base, run)
                files = sorted(f for f in os.listdir(d) if f.endswith(".png")) if os.path.isdir(d) else []
                if run.endswith(".tmp") or len(files) < len(dataset.list_frames(clip)):
                    continue
                imgs = [np.asarray(Image.open(os.path.join(d, f)).convert("RGB")) for f in files]
                evaluate(rc, clip, imgs, "render", acc, sheet, a.frames, print)
    res = {"steps": a.steps, "model": a.model, "clips": [os.path.basename(c) for c in clips],
           "summary": summarize(acc)}
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1, sort_keys=True)
    print(json.dumps(res["summary"], indent=1, sort_keys=True))
    if a.sheet:
        write_sheet(sheet, a.sheet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
