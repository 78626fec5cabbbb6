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
aligned, masked face crops (aligned by the ground-truth face points). Means per input kind and
per kind and clip ("blurred/clip_00003").

--element BUILD runs the element itself instead of the PyTorch twin:

  /usr/bin/python3 train/face_eval.py --element build --renders train/runs/quality/renders \
      --out train/runs/face/eval_element_steps1.json --sheet docs/facerecapture-sheet.png

The input frames (the blurred ground truth written as PNGs, or a render folder) go through
`facerecapture` in a GStreamer pipeline run by BUILD/tools/avatar-meta-launch, which attaches
the clip's poses.jsonl as the keypoint meta (what posemapper attaches in the avatar pipeline);
"without" = enabled=false (checked to be the input byte for byte), "with" = enabled=true, both
at the element's defaults but --steps.  The sheet's rows are then [input crop, output crop,
ground truth crop], all cut at the ground-truth face's transform.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

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


def clip_truth(clip):
    """Per frame of a held-out clip: (ground-truth image, face points, face box in pixels or
    None)."""
    frames, poses, boxes = dataset.clip_frames_meta(clip)
    out = []
    for name, pose, boxd in zip(frames, poses, boxes):
        gt = np.asarray(Image.open(os.path.join(clip, "frames", name)).convert("RGB"))
        w = float(pose.get("canvas_width") or gt.shape[1])
        h = float(pose.get("canvas_height") or gt.shape[0])
        box = metrics.box_pixels(boxd.get("face"), w, h, gt.shape[1], gt.shape[0])
        out.append((gt, face_data.load_face_doc(pose), box))
    return out


def score(rc, acc, labels, src, out, gt, face, box):
    """Face-box PSNR / SSIM and identity similarity of the frame without (src) and with (out)
    face recapture, against the ground truth, appended under each of labels (the input kind,
    and the kind per clip)."""
    x0, y0, x1, y1 = box
    ident_gt = rc.identity(gt, face) if fa.face_confident(face, 0.0) else None
    for key, img in (("without", src), ("with", out)):
        reg_out, reg_gt = img[y0:y1, x0:x1], gt[y0:y1, x0:x1]
        m = {"psnr": [metrics.psnr(reg_out, reg_gt)], "ssim": [], "identity": []}
        if min(reg_out.shape[:2]) >= 11:
            m["ssim"].append(metrics.ssim(reg_out, reg_gt))
        if ident_gt is not None:
            m["identity"].append(float(torch.dot(rc.identity(img, face), ident_gt)))
        for label in labels:
            a = acc.setdefault(label, {}).setdefault(key, {"psnr": [], "ssim": [], "identity": []})
            for k, v in m.items():
                a[k] += v


def to_u8(crop):
    return np.clip((crop.transpose(1, 2, 0) + 1) * 127.5, 0, 255)


def evaluate(rc, clip, inputs, label, acc, sheet, max_frames, log):
    """The PyTorch twin of the element on one clip; inputs[i] is the "without" frame or a
    function (gt, box) -> frame."""
    truth = clip_truth(clip)
    rimg = np.asarray(Image.open(os.path.join(clip, "reference.png")).convert("RGB"))
    rface = face_data.reference_face(clip)
    ctx = rc.reference(rimg, rface)
    smoother = Smoother(0.5)
    n = min(len(truth), max_frames or len(truth), len(inputs))
    for i in range(n):
        gt, face, box = truth[i]
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
        score(rc, acc, (label, "%s/%s" % (label, os.path.basename(clip))), src, out, gt, face,
              box)
        if crop_in is not None and sheet is not None and i % 12 == 0 and len(sheet) < 12:
            gt_tr = fa.fit_transform(face, rc.align["template"], rc.size)
            gt_crop = fa.warp_crop(gt, gt_tr, rc.size)
            sheet.append((label, to_u8(crop_in), to_u8(crop_out), gt_crop))
    log("%s %s: %d frames" % (label, os.path.basename(clip), n))


class Element:
    """The facerecapture element itself, run by tools/avatar-meta-launch: PNG frames of a
    folder (NNNNN.png) with the clip's poses.jsonl attached as the keypoint meta, as posemapper
    would attach them in a pipeline, through `facerecapture` into PNGs."""

    def __init__(self, build, model, steps, threads, tmp):
        self.tool = os.path.join(build, "tools", "avatar-meta-launch")
        if not os.access(self.tool, os.X_OK):
            raise FileNotFoundError("%s: not built (ninja -C %s)" % (self.tool, build))
        self.model, self.steps, self.tmp = os.path.abspath(model), steps, tmp
        self.env = dict(os.environ, GST_PLUGIN_PATH_1_0=os.path.join(os.path.abspath(build), "gst"),
                        GST_REGISTRY_1_0=os.path.join(tmp, "registry.bin"),
                        OMP_NUM_THREADS=str(threads), OMP_WAIT_POLICY="passive")
        self.runs, self.wall = 0, {"with": 0.0, "without": 0.0}

    def __call__(self, clip, src_dir, n, enabled):
        """The element's n output frames for src_dir's first n frames."""
        self.runs += 1
        out = os.path.join(self.tmp, "out%d" % self.runs)
        os.makedirs(out)
        cmd = [self.tool, "--poses", os.path.join(clip, "poses.jsonl"), "--",
               "multifilesrc", "location=%s/%%05d.png" % src_dir, "stop-index=%d" % (n - 1),
               "caps=image/png,framerate=25/1", "!", "pngdec", "!", "videoconvert", "!",
               "video/x-raw,format=RGB", "!", "identity", "name=meta", "!",
               "facerecapture", "model=" + self.model,
               "reference=" + os.path.join(os.path.abspath(clip), "reference.png"),
               "steps=%d" % self.steps, "enabled=%s" % ("true" if enabled else "false"), "!",
               "videoconvert", "!", "pngenc", "!", "multifilesink",
               "location=%s/%%05d.png" % out]
        t0 = time.time()
        r = subprocess.run(cmd, env=self.env, capture_output=True, text=True)
        self.wall["with" if enabled else "without"] += time.time() - t0
        files = sorted(f for f in os.listdir(out) if f.endswith(".png"))
        if r.returncode != 0 or len(files) != n:
            raise RuntimeError("facerecapture on %s: exit %d, %d of %d frames: %s"
                               % (src_dir, r.returncode, len(files), n, r.stderr.strip()[-600:]))
        return [np.asarray(Image.open(os.path.join(out, f)).convert("RGB")) for f in files]


def evaluate_element(rc, element, clip, src_dir, label, acc, sheet, max_frames, log):
    """Scores the element's output with enabled=true ("with") against enabled=false
    ("without", which must be the input itself) on src_dir's frames of one clip."""
    truth = clip_truth(clip)
    n = min(len(truth), max_frames or len(truth))
    inputs = [np.asarray(Image.open(os.path.join(src_dir, "%05d.png" % i)).convert("RGB"))
              for i in range(n)]
    without = element(clip, src_dir, n, False)
    with_ = element(clip, src_dir, n, True)
    st = acc.setdefault(label, {}).setdefault("element", {"frames": 0, "restored": 0,
                                                          "passthrough_exact": True})
    for i in range(n):
        gt, face, box = truth[i]
        st["frames"] += 1
        st["passthrough_exact"] &= bool(np.array_equal(without[i], inputs[i]))
        st["restored"] += int(not np.array_equal(with_[i], without[i]))
        if box is None:
            continue
        score(rc, acc, (label, "%s/%s" % (label, os.path.basename(clip))), without[i],
              with_[i], gt, face, box)
        if sheet is not None and i % 12 == 0 and len(sheet) < 12 and face is not None:
            tr = fa.fit_transform(face, rc.align["template"], rc.size)
            sheet.append((label, fa.warp_crop(without[i], tr, rc.size),
                          fa.warp_crop(with_[i], tr, rc.size), fa.warp_crop(gt, tr, rc.size)))
    log("%s %s (element): %d frames, %d restored" % (label, os.path.basename(clip), n,
                                                      st["restored"]))


def write_blurred(clip, out_dir, max_frames):
    """The clip's ground truth with the face box blurred, as NNNNN.png in out_dir."""
    os.makedirs(out_dir)
    truth = clip_truth(clip)
    for i, (gt, _, box) in enumerate(truth[:max_frames or len(truth)]):
        img = blur_face(gt, box) if box else gt
        Image.fromarray(img).save(os.path.join(out_dir, "%05d.png" % i))
    return out_dir


def summarize(acc):
    out = {}
    for label, d in acc.items():
        out[label] = {}
        for key, m in d.items():
            if key == "element":           # counts, not per-frame lists
                out[label][key] = dict(m)
                continue
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


def render_dirs(renders, clip):
    """The complete pipeline render folders (clip_N/<run>/, one PNG per frame) of a clip, not
    the face-recapture outputs quality.py keeps beside them."""
    base = os.path.join(renders, os.path.basename(clip))
    if not os.path.isdir(base):
        return []
    out = []
    for run in sorted(os.listdir(base)):
        d = os.path.join(base, run)
        files = sorted(f for f in os.listdir(d) if f.endswith(".png")) if os.path.isdir(d) else []
        # face-KEY/ folders are quality.py's face-recapture outputs, already restored
        if not run.endswith(".tmp") and not run.startswith("face-") and len(files) >= len(dataset.list_frames(clip)):
            out.append(d)
    return out


def run_torch(a, rc, clips, acc, sheet):
    for clip in clips:
        n = len(dataset.list_frames(clip))
        evaluate(rc, clip, [lambda gt, box: blur_face(gt, box) if box else gt] * n, "blurred",
                 acc, sheet if len(sheet) < 6 else None, a.frames, print)
    for clip in clips if a.renders else []:
        for d in render_dirs(a.renders, clip):
            imgs = [np.asarray(Image.open(os.path.join(d, f)).convert("RGB"))
                    for f in sorted(f for f in os.listdir(d) if f.endswith(".png"))]
            evaluate(rc, clip, imgs, "render", acc, sheet, a.frames, print)


def run_element(a, rc, clips, acc, sheet):
    with tempfile.TemporaryDirectory() as tmp:
        el = Element(a.element, a.model, a.steps, a.threads, tmp)
        for clip in clips:
            src = write_blurred(clip, os.path.join(tmp, "blurred_" + os.path.basename(clip)),
                                a.frames)
            evaluate_element(rc, el, clip, src, "blurred", acc, sheet if len(sheet) < 6 else None,
                             a.frames, print)
        for clip in clips if a.renders else []:
            for d in render_dirs(a.renders, clip):
                evaluate_element(rc, el, clip, d, "render", acc, sheet, a.frames, print)
        return {"element_runs": el.runs,
                "element_wall_s": {k: round(v, 1) for k, v in el.wall.items()}}


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
    ap.add_argument("--element", metavar="BUILD",
                    help="run the facerecapture element of this build folder (through "
                         "BUILD/tools/avatar-meta-launch) instead of its PyTorch twin")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    rc = Recapture(a.model, a.steps)
    acc, sheet = {}, []
    clips = dataset.list_clips(a.heldout)[:a.clips]
    res = {"steps": a.steps, "model": a.model, "clips": [os.path.basename(c) for c in clips],
           "mode": "element" if a.element else "pytorch"}
    if a.element:
        try:
            res.update(run_element(a, rc, clips, acc, sheet))
        except (FileNotFoundError, RuntimeError) as e:
            print("error: %s" % e)
            return 1
    else:
        run_torch(a, rc, clips, acc, sheet)
    res["summary"] = summarize(acc)
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1, sort_keys=True)
    # the per-clip entries ("blurred/clip_00003") are in the JSON only
    print(json.dumps({k: v for k, v in res["summary"].items() if "/" not in k}, indent=1,
                     sort_keys=True))
    if a.sheet:
        write_sheet(sheet, a.sheet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
