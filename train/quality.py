#!/usr/bin/python3
"""Quality report of the embedded model (docs/quality.md), run through the C engine.

  /usr/bin/python3 train/quality.py --engine BUILD/engine/avatar-engine \\
      --world BUILD/world/avatar-world --model models/avatar-default --out docs/

On the held-out clips of the avatar world (held-out identity and motion seeds, never trained
on), every variant is rendered by `avatar-engine render` and measured against the renderer's
ground truth with train/metrics.py: SSIM, PSNR, face- and hand-region PSNR, temporal flicker,
and the seam error at window boundaries.  Variants (--variants, comma-separated):

  reference-copy          reference.png copied to every frame (no engine)
  model                   the model with the given settings
  no-reference-attention  the model with --no-reference-attention
  no-hand-tokens          the model with --no-hand-tokens
  temporal-attention      the model with --temporal-attention: all-frame attention over each
                          window, training-free for a model trained frame by frame
  no-reference-init       the model with --no-reference-init (pure-noise start)
  no-reference-concat     the model with --no-reference-concat (zeros instead of the reference
                          latent at the UNet input); left out for a model without the concat
  independent-noise       --noise-correlation 0: every frame starts from its own noise
  overlap-0               windows without overlap (the streaming ablation)
  uniform                 --fusion uniform (Make-Your-Anchor averaging)
  progressive             --fusion progressive (MimicMotion triangle weights)
                          (the three streaming variants run with --temporal-attention: without
                          it the frames of a window are independent and fusion changes nothing)
  face-recapture          the "model" variant's frames through the facerecapture element (the
                          product's chain avatardiffuse -> latentfuse -> facerecapture); needs
                          --face-build and MODEL/face, else left out

Variants with the same engine settings share one render ("temporal-attention" and "progressive"
under the default --fusion progressive).  Renders are cached under --cache, one folder per (clip, engine
settings, model files, clip files): a second run renders only what is missing, and --no-render
writes a report from the renders that exist.  The model is copied to CACHE/models/ first, so a
re-export during a long run does not mix weights.  The engine binary is not part of the key: pass
--rerender after an engine change that alters its output.  The face-recapture variant runs
`facerecapture` (through BUILD/tools/avatar-meta-launch, train/face_eval.py's Element) on the
model render of each clip, with the clip's poses as the keypoint meta and its reference.png; its
output is cached like a render (CACHE/renders/CLIP/face-KEY/, KEY = the model render's key, the
face settings and the MODEL/face files).  Writes OUT/quality.md,
OUT/quality-sheet.png (contact sheet), OUT/quality-seams.png (frame-difference error per frame
of the streaming ablation) and CACHE/results.json.  The held-out clips are made with
`avatar-world dataset --split heldout` when --data lacks them.
"""
import argparse
import concurrent.futures
import datetime
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import metrics  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name -> (label, engine settings overrides, extra engine flags); reference-copy has no engine.
VARIANTS = {
    "reference-copy": ("reference copy", None, []),
    "model": ("model", {}, []),
    "no-reference-attention": ("model, no reference attention", {}, ["--no-reference-attention"]),
    "no-hand-tokens": ("model, no hand tokens", {}, ["--no-hand-tokens"]),
    "temporal-attention": ("model, temporal attention", {}, ["--temporal-attention"]),
    "no-reference-init": ("model, no reference init", {"strength": 1.0}, ["--no-reference-init"]),
    "no-reference-concat": ("model, no reference concat", {}, ["--no-reference-concat"]),
    "independent-noise": ("model, independent noise per frame", {"noise_correlation": 0.0}, []),
    "overlap-0": ("overlap 0 (no fusion)", {"overlap": 0}, ["--temporal-attention"]),
    "uniform": ("uniform fusion", {"fusion": "uniform"}, ["--temporal-attention"]),
    "progressive": ("progressive fusion", {"fusion": "progressive"}, ["--temporal-attention"]),
    # the model render of the same settings through facerecapture (FaceRender)
    "face-recapture": ("model + face recapture", {}, []),
}
DEFAULT_VARIANTS = ("reference-copy,model,no-reference-attention,no-hand-tokens,no-reference-init,"
                    "no-reference-concat,independent-noise,temporal-attention,overlap-0,uniform,progressive,"
                    "face-recapture")
FACE_VARIANT = "face-recapture"
FUSION_VARIANTS = ("overlap-0", "uniform", "progressive")
MIN_REGION_GAIN_DB = 3.0   # model vs reference copy, face and hand PSNR
MIN_MODULE_GAIN_DB = 0.1   # model vs model without a module; face recapture vs model, face PSNR


class QualityError(Exception):
    pass


def rel(path):
    """path relative to the repository when it lies inside it (for the report)."""
    p = os.path.abspath(path)
    return os.path.relpath(p, REPO) if p.startswith(REPO + os.sep) else path


def log(msg):
    print("[%s] %s" % (datetime.datetime.now().strftime("%H:%M:%S"), msg), flush=True)


def sha256_files(paths):
    h = hashlib.sha256()
    for p in paths:
        h.update(os.path.basename(p).encode() + b"\0")
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


# top-level entries of a model folder that `avatar-engine render` does not read: left out of the
# render key and of the snapshot (facerecapture's weights)
MODEL_UNUSED = ("face",)


def folder_fingerprint(folder, skip=()):
    """sha256 over the relative names and contents of every file under folder, leaving out the
    top-level entries named in skip."""
    files = []
    for root, dirs, names in os.walk(folder):
        if root == folder:
            dirs[:] = [d for d in dirs if d not in skip]
            names = [n for n in names if n not in skip]
        dirs.sort()
        files.extend(os.path.join(root, n) for n in sorted(names))
    if not files:
        raise QualityError("%s: model folder is empty or missing" % folder)
    h = hashlib.sha256()
    for p in files:
        h.update(os.path.relpath(p, folder).encode() + b"\0")
        h.update(sha256_files([p]).encode())
    return h.hexdigest()


def model_fingerprint(model):
    return folder_fingerprint(model, MODEL_UNUSED)


def snapshot_model(model, cache):
    """Copies the model folder into CACHE/models/FINGERPRINT/ and returns (path, fingerprint):
    every render of a run uses the same weights even when the model is re-exported meanwhile."""
    tmp = os.path.join(cache, "models", "incoming-%d" % os.getpid())
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        shutil.copytree(model, tmp, ignore=lambda d, names: [n for n in names if d == model and n in MODEL_UNUSED])
    except (OSError, shutil.Error) as e:
        raise QualityError("%s: cannot copy the model folder: %s" % (model, e))
    fp = model_fingerprint(tmp)
    dest = os.path.join(cache, "models", fp[:16])
    if os.path.isdir(dest):
        shutil.rmtree(tmp)
    else:
        os.rename(tmp, dest)
    return dest, fp


def snapshot_face(model, model_run):
    """The model folder facerecapture is given, CACHE/models/FP+face-FACEFP/: links to the
    render snapshot model_run's entries (the element reads the VAE and the UNet config from
    there) and a copy of MODEL/face, so a re-export during a run does not mix weights either.
    Returns (path, fingerprint of the face folder)."""
    face = os.path.join(model, "face")
    tmp = model_run + "+face-incoming-%d" % os.getpid()
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        shutil.copytree(face, os.path.join(tmp, "face"))
    except (OSError, shutil.Error) as e:
        raise QualityError("%s: cannot copy the face model folder: %s" % (face, e))
    fp = folder_fingerprint(os.path.join(tmp, "face"))
    dest = model_run + "+face-" + fp[:16]
    if os.path.isdir(dest):
        shutil.rmtree(tmp)
        return dest, fp
    for name in os.listdir(model_run):
        os.symlink(os.path.join("..", os.path.basename(model_run), name), os.path.join(tmp, name))
    os.rename(tmp, dest)
    return dest, fp


def parse_size(s):
    try:
        w, h = (int(v) for v in s.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError("size must be WxH, got %r" % s)
    if w < 16 or h < 16:
        raise argparse.ArgumentTypeError("size must be at least 16x16, got %r" % s)
    return (w, h)


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise QualityError("%s: %s" % (path, e))


def read_jsonl(path):
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError) as e:
        raise QualityError("%s: %s" % (path, e))


def load_rgb(path, size=None):
    try:
        im = Image.open(path).convert("RGB")
    except OSError as e:
        raise QualityError("%s: %s" % (path, e))
    if size is not None and im.size != tuple(size):
        im = im.resize(tuple(size), Image.BILINEAR)
    return np.asarray(im, dtype=np.uint8)


# ---------------------------------------------------------------------------------------------
# held-out data


def clip_dir(data, k):
    return os.path.join(data, "clip_%05d" % k)


def clip_ok(path, k, frames, size):
    """None when clip k at path is complete with these settings, else why not."""
    meta_path = os.path.join(path, "clip.json")
    if not os.path.exists(meta_path):
        return "missing"
    meta = read_json(meta_path)
    want = {"identity": 1000000 + k, "motion": 2000000 + k, "frames": frames,
            "width": size[0], "height": size[1]}
    for key, v in want.items():
        if meta.get(key) != v:
            return "%s is %r, want %r" % (key, meta.get(key), v)
    for f in ("poses.jsonl", "boxes.jsonl", "reference.png", "reference.json"):
        if not os.path.exists(os.path.join(path, f)):
            return f + " missing"
    for i in range(frames):
        if not os.path.exists(os.path.join(path, "frames", "%05d.png" % i)):
            return "frames/%05d.png missing" % i
    return None


def ensure_data(a):
    """Use the held-out clips in --data, making the missing ones with avatar-world.  A clip
    made with other settings is an error (never overwritten: others may use it)."""
    missing = []
    for k in range(a.clips):
        why = clip_ok(clip_dir(a.data, k), k, a.frames, a.size)
        if why == "missing":
            missing.append(k)
        elif why is not None:
            raise QualityError("%s: %s; pass another --data folder for --frames %d --size %dx%d"
                               % (clip_dir(a.data, k), why, a.frames, a.size[0], a.size[1]))
    if not missing:
        return
    if not a.world:
        raise QualityError("%s lacks held-out clips %s: pass --world BUILD/world/avatar-world"
                           % (a.data, ",".join(str(k) for k in missing)))
    os.makedirs(a.data, exist_ok=True)
    for k in missing:
        cmd = [a.world, "dataset", "--split", "heldout", "--clips", "1", "--first-clip", str(k),
               "--frames", str(a.frames), "--size", "%dx%d" % a.size, "--out", a.data]
        log("data: " + " ".join(shlex.quote(c) for c in cmd))
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            raise QualityError("avatar-world failed (exit %d): %s" % (p.returncode, p.stderr.strip()))
        why = clip_ok(clip_dir(a.data, k), k, a.frames, a.size)
        if why is not None:
            raise QualityError("%s after avatar-world: %s" % (clip_dir(a.data, k), why))


class Clip:
    def __init__(self, path, k, frames):
        self.path = path
        self.k = k
        self.meta = read_json(os.path.join(path, "clip.json"))
        self.frames = frames
        self.boxes = read_jsonl(os.path.join(path, "boxes.jsonl"))
        poses = read_jsonl(os.path.join(path, "poses.jsonl"))
        if len(self.boxes) < frames or len(poses) < frames:
            raise QualityError("%s: %d frames but %d boxes.jsonl / %d poses.jsonl lines"
                               % (path, frames, len(self.boxes), len(poses)))
        self.canvas = []
        for i in range(frames):
            cw = poses[i].get("canvas_width") or self.meta["width"]
            ch = poses[i].get("canvas_height") or self.meta["height"]
            self.canvas.append((float(cw), float(ch)))
        names = ["clip.json", "poses.jsonl", "boxes.jsonl", "reference.png", "reference.json"]
        names += [os.path.join("frames", "%05d.png" % i) for i in range(frames)]
        self.fingerprint = sha256_files([os.path.join(path, n) for n in names])

    @property
    def name(self):
        return os.path.basename(self.path)

    def gt_path(self, i):
        return os.path.join(self.path, "frames", "%05d.png" % i)

    def masks(self, i, w, h):
        """(face mask, hand mask) of frame i on a w x h image; None where absent."""
        cw, ch = self.canvas[i]
        b = self.boxes[i]
        face = metrics.region_mask([metrics.box_pixels(b.get("face"), cw, ch, w, h)], w, h)
        hands = metrics.region_mask([metrics.box_pixels(b.get(k), cw, ch, w, h)
                                     for k in ("hand_left", "hand_right")], w, h)
        return face, hands

    def hand_area(self, i):
        cw, ch = self.canvas[i]
        area = 0
        for key in ("hand_left", "hand_right"):
            p = metrics.box_pixels(self.boxes[i].get(key), cw, ch, int(cw), int(ch))
            if p is not None:
                area += (p[2] - p[0]) * (p[3] - p[1])
        return area


# ---------------------------------------------------------------------------------------------
# rendering


def variant_settings(a, name):
    label, over, flags = VARIANTS[name]
    if over is None:
        return None
    s = {"steps": a.steps, "scheduler": a.scheduler, "guidance": a.guidance, "window": a.window,
         "overlap": a.overlap, "fusion": a.fusion, "lookahead": a.lookahead, "seed": a.seed,
         "noise_correlation": a.noise_correlation, "strength": a.strength, "size": "%dx%d" % a.render_size,
         "flags": list(flags)}
    s.update(over)
    return s


def settings_key(settings, model_fp, clip_fp):
    blob = json.dumps({"settings": settings, "model": model_fp, "clip": clip_fp}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def engine_command(a, clip, settings, out_dir):
    eng = shlex.split(a.engine)
    if eng[0].endswith(".py"):
        eng = [sys.executable] + eng
    cmd = eng + ["render", "--model", a.model_run,
                 "--reference", os.path.join(clip.path, "reference.png"),
                 "--reference-pose", os.path.join(clip.path, "reference.json"),
                 "--poses", os.path.join(clip.path, "poses.jsonl"), "--out", out_dir,
                 "--frames", str(a.frames), "--size", settings["size"],
                 "--steps", str(settings["steps"]), "--scheduler", settings["scheduler"],
                 "--guidance", repr(settings["guidance"]), "--window", str(settings["window"]),
                 "--overlap", str(settings["overlap"]), "--fusion", settings["fusion"],
                 "--lookahead", str(settings["lookahead"]), "--seed", str(settings["seed"]),
                 "--noise-correlation", repr(settings["noise_correlation"]),
                 "--strength", repr(settings["strength"]),
                 "--threads", str(a.threads)]
    return cmd + settings["flags"]


class Render:
    """One (clip, engine settings) render folder in the cache."""

    def __init__(self, a, clip, settings, model_fp):
        self.clip = clip
        self.settings = settings
        self.key = settings_key(settings, model_fp, clip.fingerprint)
        self.dir = os.path.join(a.cache, "renders", clip.name, self.key)
        self.info = None

    def cached(self):
        p = os.path.join(self.dir, "render.json")
        if os.path.exists(p):
            self.info = read_json(p)
            return True
        return False

    def frame_path(self, i):
        return os.path.join(self.dir, "%05d.png" % i)

    def run(self, a):
        tmp = self.dir + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        cmd = engine_command(a, self.clip, self.settings, tmp)
        niceness = a.nice
        t0 = time.time()
        with open(os.path.join(tmp, "engine.log"), "w") as logf:
            p = subprocess.run(cmd, stdout=logf, stderr=subprocess.STDOUT,
                               preexec_fn=(lambda: os.nice(niceness)) if niceness else None)
        wall = time.time() - t0
        if p.returncode != 0:
            with open(os.path.join(tmp, "engine.log")) as f:
                tail = f.read()[-2000:]
            raise QualityError("engine failed (exit %d) on %s:\n  %s\n%s"
                               % (p.returncode, self.clip.name, " ".join(shlex.quote(c) for c in cmd), tail))
        for i in range(a.frames):
            if not os.path.exists(os.path.join(tmp, "%05d.png" % i)):
                raise QualityError("engine wrote no %s/%05d.png (%d frames asked): %s"
                                   % (tmp, i, a.frames, " ".join(shlex.quote(c) for c in cmd)))
        self.info = {"settings": self.settings, "clip": self.clip.name, "wall_s": round(wall, 2),
                     "threads": a.threads, "nice": niceness,
                     "date": datetime.datetime.now().isoformat(timespec="seconds"),
                     "engine_sha256": sha256_files([shlex.split(a.engine)[0]]),
                     "command": " ".join(shlex.quote(c) for c in cmd)}
        with open(os.path.join(tmp, "render.json"), "w") as f:
            json.dump(self.info, f, indent=1)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.rename(tmp, self.dir)
        return wall


def face_settings(a):
    """What the face step's output depends on besides its input frames and the face model."""
    return {"element": "facerecapture", "steps": a.face_steps,
            "defaults": "strength 1, smoothing 0.5, seed 0, crop-size and min-confidence the model's"}


class FaceRender(Render):
    """A clip's model render (src) through facerecapture, cached in its own folder beside the
    renders: CACHE/renders/CLIP/face-KEY/, KEY = the model render's key, the face settings and
    the face model files (the build is not part of it, as the engine binary is not)."""

    def __init__(self, a, src, face_fp):
        self.clip = src.clip
        self.src = src
        self.settings = face_settings(a)
        blob = json.dumps({"render": src.key, "face": self.settings, "face_model": face_fp},
                          sort_keys=True)
        self.key = hashlib.sha256(blob.encode()).hexdigest()[:16]
        self.dir = os.path.join(a.cache, "renders", self.clip.name, "face-" + self.key)
        self.info = None

    def run(self, a):
        import face_eval   # here, not at the top: it pulls in torch, which only this step needs
        tmp = self.dir + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        work = os.path.join(tmp, "element")
        os.makedirs(work)
        try:
            el = face_eval.Element(a.face_build, a.face_model, a.face_steps, a.threads, work)
            frames = el(self.clip.path, self.src.dir, a.frames, True)
        except (OSError, RuntimeError) as e:
            raise QualityError("face recapture on %s (%s): %s" % (self.clip.name, self.src.dir, e))
        wall = el.wall["with"]
        shutil.rmtree(work)
        for i, img in enumerate(frames):
            Image.fromarray(img).save(os.path.join(tmp, "%05d.png" % i))
        self.info = {"settings": self.settings, "clip": self.clip.name, "source": self.src.key,
                     "wall_s": round(wall, 2), "threads": a.threads, "nice": a.nice,
                     "build": os.path.abspath(a.face_build), "model": a.face_model,
                     "date": datetime.datetime.now().isoformat(timespec="seconds")}
        with open(os.path.join(tmp, "render.json"), "w") as f:
            json.dump(self.info, f, indent=1)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.rename(tmp, self.dir)
        return wall


# ---------------------------------------------------------------------------------------------
# measuring


def measure(clip, frame_paths, cache_path, metrics_fp):
    """Metrics of one clip's output frames (cached in cache_path, keyed by the metrics code and
    the clip files)."""
    key = hashlib.sha256((metrics_fp + clip.fingerprint).encode()).hexdigest()
    if cache_path and os.path.exists(cache_path):
        r = read_json(cache_path)
        if r.get("key") == key:
            return metrics.ClipAccumulator.from_dict(r["metrics"])
    acc = metrics.ClipAccumulator()
    for i in range(clip.frames):
        gt = load_rgb(clip.gt_path(i))
        h, w = gt.shape[:2]
        out = load_rgb(frame_paths(i), (w, h))
        face, hands = clip.masks(i, w, h)
        acc.add(out, gt, face, hands)
    if cache_path:
        os.makedirs(os.path.dirname(cache_path), exist_ok=True)
        with open(cache_path, "w") as f:
            json.dump({"key": key, "metrics": acc.to_dict()}, f)
    return acc


# ---------------------------------------------------------------------------------------------
# figures


def _font():
    return ImageFont.load_default()


def contact_sheet(path, clips, columns, size):
    """columns: [(title, fn(clip, i) -> image path)]; one row per clip at the frame with the
    largest visible hand area (the middle frame when no hand shows)."""
    w, h = size
    head = 14
    sheet = Image.new("RGB", (len(columns) * w, head + len(clips) * (h + head)), (255, 255, 255))
    d = ImageDraw.Draw(sheet)
    for c, (title, _) in enumerate(columns):
        d.text((c * w + 3, 2), title, fill=(0, 0, 0), font=_font())
    for r, clip in enumerate(clips):
        areas = [clip.hand_area(i) for i in range(clip.frames)]
        i = int(np.argmax(areas)) if max(areas) > 0 else clip.frames // 2
        y = head + r * (h + head)
        d.text((3, y + 1), "%s frame %d (identity %d, motion %d)"
               % (clip.name, i, clip.meta["identity"], clip.meta["motion"]), fill=(0, 0, 0), font=_font())
        for c, (_, fn) in enumerate(columns):
            p = fn(clip, i)
            if p:
                im = Image.open(p).convert("RGB").resize((w, h), Image.BILINEAR)
            else:
                im = Image.new("RGB", (w, h), (128, 128, 128))
            sheet.paste(im, (c * w, y + head))
    sheet.save(path)


def seam_plot(path, curves, frames):
    """curves: [(label, colour, mean d_t per frame t = 1..frames-1, seam frames)]."""
    W, H, ml, mr, mt, mb = 720, 300, 48, 12, 26, 40
    img = Image.new("RGB", (W, H), (255, 255, 255))
    d = ImageDraw.Draw(img)
    ymax = max([max(c[2]) for c in curves if c[2]] + [1e-6]) * 1.1
    pw, ph = W - ml - mr, H - mt - mb

    def xy(t, v):
        return (ml + (t - 1) * pw / max(1, frames - 2), mt + ph - v / ymax * ph)
    d.rectangle([ml, mt, ml + pw, mt + ph], outline=(0, 0, 0))
    for k in range(5):
        v = ymax * k / 4
        d.text((2, xy(1, v)[1] - 5), "%.1f" % v, fill=(0, 0, 0), font=_font())
    for t in range(1, frames, max(1, frames // 12)):
        d.text((xy(t, 0)[0] - 4, mt + ph + 2), str(t), fill=(0, 0, 0), font=_font())
    d.text((ml, H - 14), "x: frame t   y: d_t = mean |(out_t - out_t-1) - (gt_t - gt_t-1)| over clips   "
           "ticks: seam frames", fill=(0, 0, 0), font=_font())
    for n, (label, col, ys, seams) in enumerate(curves):
        pts = [xy(t, v) for t, v in enumerate(ys, start=1)]
        if len(pts) > 1:
            d.line(pts, fill=col, width=2)
        for b in seams:
            x = xy(b, 0)[0]
            d.line([(x, mt + ph - 4 - 5 * n), (x, mt + ph - 10 - 5 * n)], fill=col, width=3)
        d.text((ml + 6 + n * 160, 6), label, fill=col, font=_font())
    img.save(path)


# ---------------------------------------------------------------------------------------------
# the report


def fmt(v, unit="", nd=2):
    if v is None:
        return "n/a"
    return ("%." + str(nd) + "f%s") % (v, unit)


def whole_frame_gain(title, on, m, off, extra=""):
    """(text, holds) of a module's verdict: whole-frame PSNR up by MIN_MODULE_GAIN_DB and SSIM up
    with the module on (m) than off."""
    gp, gs = m["psnr"] - off["psnr"], m["ssim"] - off["ssim"]
    ok = gp >= MIN_MODULE_GAIN_DB and gs > 0
    return ("%s (whole-frame PSNR up by at least %.1f dB and SSIM up when %s on): **%s** (PSNR %.2f "
            "vs %.2f dB without, %+.2f dB; SSIM %.4f vs %.4f, %+.4f%s)."
            % (title, MIN_MODULE_GAIN_DB, on, "holds" if ok else "not yet", m["psnr"], off["psnr"], gp,
               m["ssim"], off["ssim"], gs, extra), ok)


def region_gain(title, region, rule, on, off, extra=""):
    """(text, holds) of a module's verdict on one region's PSNR: up by MIN_MODULE_GAIN_DB with
    the module on (on) than off."""
    key = region + "_psnr"
    if on[key] is None or off[key] is None:
        return ("%s: cannot tell (no %s in the frames)." % (title, region), None)
    g = on[key] - off[key]
    ok = g >= MIN_MODULE_GAIN_DB
    return ("%s (%s): **%s** (%.2f vs %.2f dB without, %+.2f dB%s)."
            % (title, rule, "holds" if ok else "not yet", on[key], off[key], g, extra), ok)


def beats_reference(who, label, s, ref, key, what):
    """(text, holds) of "`who` beats the reference copy on `what` by MIN_REGION_GAIN_DB"."""
    title = "%s beats the reference copy on %s by at least %.0f dB" % (who, what, MIN_REGION_GAIN_DB)
    if s[key] is None or ref[key] is None:
        return ("%s: cannot tell (no such region in the frames)." % title, None)
    gain = s[key] - ref[key]
    ok = gain >= MIN_REGION_GAIN_DB
    return ("%s: **%s** (%s %.2f dB, reference copy %.2f dB, %+.2f dB)."
            % (title, "holds" if ok else "not yet", label, s[key], ref[key], gain), ok)


def verdicts(S):
    """Plain statements (text, holds: True/False/None) of the issue's requirements."""
    out = []
    ref, m = S.get("reference-copy"), S.get("model")
    if ref and m:
        for key, what in (("face_psnr", "face-region PSNR"), ("hand_psnr", "hand-region PSNR")):
            out.append(beats_reference("The model", "model", m, ref, key, what))
        fr = S.get(FACE_VARIANT)
        if fr:
            out.append(beats_reference("The product's chain (model + face recapture, DESIGN.md section 1)",
                                       "model + face recapture", fr, ref, "face_psnr", "face-region PSNR"))
        ok = m["ssim"] > ref["ssim"]
        out.append(("The model beats the reference copy on whole-frame SSIM: **%s** (model %.4f, "
                    "reference copy %.4f)." % ("holds" if ok else "not yet", m["ssim"], ref["ssim"]), ok))
    nr = S.get("no-reference-attention")
    if m and nr:
        out.append(whole_frame_gain("Reference attention shows its gain", "it is", m, nr,
                                    "; face PSNR %s vs %s" % (fmt(m["face_psnr"], " dB"),
                                                              fmt(nr["face_psnr"], " dB"))))
    nh = S.get("no-hand-tokens")
    if m and nh:
        out.append(region_gain("Hand tokens show their gain", "hand", "hand-region PSNR up by at least %.1f dB "
                               "when they are on" % MIN_MODULE_GAIN_DB, m, nh))
    ni = S.get("no-reference-init")
    if m and ni:
        out.append(whole_frame_gain("The reference init shows its gain", "it is", m, ni))
    nc = S.get("no-reference-concat")
    if m and nc:
        out.append(whole_frame_gain("The reference concat shows its gain", "it is", m, nc))
    fr = S.get(FACE_VARIANT)
    if m and fr:
        out.append(region_gain("Face recapture raises face-region PSNR", "face", "by at least %.1f dB over the "
                               "model's frames it starts from" % MIN_MODULE_GAIN_DB, fr, m,
                               "; whole-frame SSIM %.4f vs %.4f" % (fr["ssim"], m["ssim"])))
    ta = S.get("temporal-attention")
    if m and ta:
        out.append(("Temporal attention (`--temporal-attention`, all-frame attention over each window, off "
                    "by default) with this model: PSNR %.2f vs %.2f dB without, SSIM %.4f vs %.4f, flicker "
                    "%.3f vs %.3f; a model trained frame by frame meets it only at inference."
                    % (ta["psnr"], m["psnr"], ta["ssim"], m["ssim"], ta["flicker"], m["flicker"]), None))
    ind = S.get("independent-noise")
    if m and ind:
        ok = m["flicker"] < ind["flicker"]
        out.append(("Correlated initial noise (`--noise-correlation`, Setup) lowers flicker: **%s** (%.3f vs "
                    "%.3f with independent noise per frame)." % ("holds" if ok else "not yet", m["flicker"],
                                                                 ind["flicker"]), ok))
    fus = [(v, S[v]) for v in FUSION_VARIANTS if v in S]
    if len(fus) >= 2 and all(s.get("seam_error") is not None and s.get("nonseam_error") is not None for _, s in fus):
        ex = {v: s["seam_error"] - s["nonseam_error"] for v, s in fus}
        best = min(ex, key=ex.get)
        out.append(("Streaming: the smallest seam excess (seam error minus the error at the other frames) "
                    "is %s's: %s." % (best, ", ".join("%s %+.3f" % (v, ex[v]) for v, _ in fus)), None))
        pe = {v: s.get("paired_seam_excess") for v, s in fus}
        if "overlap-0" in ex and pe.get("overlap-0") is not None:
            for v in ("uniform", "progressive"):
                if pe.get(v) is not None:
                    ok = pe[v] < pe["overlap-0"]
                    out.append(("%s fusion adds less error at its seams than no overlap (paired seam excess): "
                                "**%s** (%+.3f vs %+.3f)." % (v.capitalize(), "holds" if ok else "not yet",
                                                                pe[v], pe["overlap-0"]), ok))
        flk = {v: s["flicker"] for v, s in fus}
        out.append(("Streaming: the lowest flicker is %s's: %s." % (
            min(flk, key=flk.get), ", ".join("%s %.3f" % (v, flk[v]) for v, _ in fus)), None))
    return out


def write_report(a, path, ctx):
    S, per_clip, clips = ctx["summary"], ctx["per_clip"], ctx["clips"]
    L = []
    L.append("# Quality of the embedded model")
    L.append("")
    L.append("Generated by `train/quality.py` on %s; do not edit by hand. Regenerate with" % ctx["date"])
    L.append("")
    L.append("```")
    L.append(ctx["command"])
    L.append("```")
    L.append("")
    if ctx["incomplete"]:
        L.append("**Incomplete report** (`--no-render`): %d of the %d clips asked for lack renders and are "
                 "left out (%s); every number below is over the other %s. The same command without "
                 "`--no-render` renders the rest (cached renders are reused) and writes the full report."
                 % (len(ctx["incomplete"]), len(clips) + len(ctx["incomplete"]), ", ".join(ctx["incomplete"]),
                    "clip" if len(clips) == 1 else "%d clips" % len(clips)))
        L.append("")
    L.append("## Verdict")
    L.append("")
    vs = verdicts(S)
    for text, _ in vs:
        L.append("- " + text)
    if not vs:
        L.append("- Nothing to compare: this report measured only %s." % ", ".join(S) if S else
                 "- Nothing measured yet.")
    L.append("")
    L.append("## Setup")
    L.append("")
    ids = ", ".join("%d/%d" % (c.meta["identity"], c.meta["motion"]) for c in clips)
    L.append("- Data: %d held-out clip%s (`avatar-world dataset --split heldout`, identity/motion seeds %s), "
             "%d frames each at %d fps, %dx%d; %s."
             % (len(clips), "" if len(clips) == 1 else "s", ids, a.frames, clips[0].meta.get("fps", 25),
                a.size[0], a.size[1], rel(a.data)))
    L.append("- Model: `%s` (files sha256 %s...)%s." % (rel(a.model), ctx["model_fp"][:12], ctx["training"]))
    L.append("- Engine: `avatar-engine render`, %d %s steps, guidance %g, window %d, overlap %d, %s fusion, "
             "lookahead %d, seed %d, noise correlation %g, output %dx%d%s, %d threads, nice %d."
             % (a.steps, a.scheduler.upper() if a.scheduler != "lcm" else "LCM", a.guidance, a.window,
                a.overlap, a.fusion, a.lookahead, a.seed, a.noise_correlation, a.render_size[0], a.render_size[1],
                " (resized to the ground truth's size to measure)" if a.render_size != a.size else "",
                a.threads, a.nice))
    if FACE_VARIANT in S:
        L.append("- Face recapture (row \"%s\"): the model variant's frames through `facerecapture` of `%s` "
                 "(`tools/avatar-meta-launch` attaches the clip's poses.jsonl as the keypoint meta, reference = "
                 "the clip's reference.png/.json), face model `%s/face` (files sha256 %s...), %d step%s, the "
                 "element's defaults otherwise (strength 1, smoothing 0.5, seed 0)."
                 % (VARIANTS[FACE_VARIANT][0], rel(a.face_build), rel(a.model), ctx["face_fp"][:12],
                    a.face_steps, "" if a.face_steps == 1 else "s"))
    L.append("- Machine: %s. Wall time: %s." % (ctx["machine"], ctx["walltime"]))
    L.append("")
    L.append("## Results")
    L.append("")
    L.append("Means over all frames of all clips (region PSNR over the frames that show the region). "
             "Higher is better for SSIM and PSNR, lower for flicker; MAD = mean |x_t - x_t-1| of the "
             "output (the ground truth's in the last column).")
    L.append("")
    L.append("| variant | SSIM | PSNR dB | face PSNR dB | hand PSNR dB | flicker | MAD out | MAD gt |")
    L.append("|---|---|---|---|---|---|---|---|")
    for v in ctx["variants"]:
        if v not in S:
            continue
        s = S[v]
        L.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            VARIANTS[v][0], fmt(s["ssim"], nd=4), fmt(s["psnr"]), fmt(s["face_psnr"]), fmt(s["hand_psnr"]),
            fmt(s["flicker"], nd=3), fmt(s["mad_out"], nd=3), fmt(s["mad_gt"], nd=3)))
    L.append("")
    any_s = next(iter(S.values()))
    L.append("Face region in %d frames, hand region in %d frames (of %d)."
             % (any_s["face_frames"], any_s["hand_frames"], any_s["frames"]))
    L.append("")
    if "model" in per_clip and "reference-copy" in per_clip:
        L.append("Per clip, model / reference copy:")
        L.append("")
        L.append("| clip | identity | motion | SSIM | PSNR dB | face PSNR dB | hand PSNR dB |")
        L.append("|---|---|---|---|---|---|---|")
        for c in clips:
            if c.name not in per_clip["model"] or c.name not in per_clip["reference-copy"]:
                continue
            m, r = per_clip["model"][c.name], per_clip["reference-copy"][c.name]
            L.append("| %s | %d | %d | %s / %s | %s / %s | %s / %s | %s / %s |" % (
                c.name, c.meta["identity"], c.meta["motion"], fmt(m["ssim"], nd=3), fmt(r["ssim"], nd=3),
                fmt(m["psnr"]), fmt(r["psnr"]), fmt(m["face_psnr"]), fmt(r["face_psnr"]),
                fmt(m["hand_psnr"]), fmt(r["hand_psnr"])))
        L.append("")
    fus = [v for v in FUSION_VARIANTS if v in S]
    if fus:
        L.append("## Streaming ablation (issue 7)")
        L.append("")
        L.append("Same clips and settings; only the overlap or the fusion weights change. Seam frames are "
                 "the frames from a window's start to the first frame after the previous window stopped "
                 "(window %d: overlap 0 gives %s; overlap %d gives %s). Seam error = mean d_b over them, "
                 "compared with the mean d_t at the other frames (seam excess). That comparison also picks "
                 "up how fast the clips move at those frames; the paired seam excess does not: it compares "
                 "each seam frame with the same frame of the same clip in the renders that have no seam "
                 "there (Definitions)."
                 % (a.window, metrics.seam_frames(a.frames, a.window, 0), a.overlap,
                    metrics.seam_frames(a.frames, a.window, a.overlap) if a.overlap else "the same"))
        L.append("")
        L.append("| variant | overlap | fusion | flicker | seam error | other frames | seam excess | paired seam excess "
                 "| PSNR dB | SSIM |")
        L.append("|---|---|---|---|---|---|---|---|---|---|")
        for v in fus:
            s, st = S[v], ctx["settings"][v]
            ex = (s["seam_error"] - s["nonseam_error"]) if s.get("seam_error") is not None and \
                s.get("nonseam_error") is not None else None
            L.append("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                v, st["overlap"], st["fusion"] if st["overlap"] else "none", fmt(s["flicker"], nd=3),
                fmt(s.get("seam_error"), nd=3), fmt(s.get("nonseam_error"), nd=3), fmt(ex, nd=3),
                fmt(s.get("paired_seam_excess"), nd=3),
                fmt(s["psnr"]), fmt(s["ssim"], nd=4)))
        L.append("")
        L.append("![per-frame error of the streaming ablation](quality-seams.png)")
        L.append("")
    L.append("## Contact sheet")
    L.append("")
    L.append("![contact sheet](quality-sheet.png)")
    L.append("")
    L.append("*Columns: %s. One row per clip, at the frame where the hands show most.*"
             % ", ".join(ctx["sheet_columns"]))
    L.append("")
    L.append("## Definitions")
    L.append("")
    L.append("Frames are 8-bit RGB, compared on the 0..255 scale at the ground truth's size (`train/metrics.py`).")
    L.append("")
    L.append("- **PSNR** = 10 log10(255² / MSE) over all pixels and channels of a frame, capped at %g dB; "
             "the table gives the mean over frames." % metrics.PSNR_CAP)
    L.append("- **SSIM**: Wang et al. (2004), 11x11 Gaussian window (σ = 1.5), K1 = 0.01, K2 = 0.03, per RGB "
             "channel over the positions where the window lies inside the frame, averaged; mean over frames.")
    L.append("- **Face / hand PSNR**: the PSNR over the pixels inside the frame's face box (hands: the union "
             "of both hand boxes) from `boxes.jsonl` (the renderer's exact boxes: face = jaw and skull, hair "
             "excluded; hand = all 21 points plus the finger width), scaled from the canvas to the frame; "
             "frames where the region is out of view are skipped.")
    L.append("- **Temporal flicker** = mean over t ≥ 1 of d_t = mean |(out_t − out_t−1) − (gt_t − gt_t−1)| "
             "over pixels and channels: how much the output's frame-to-frame change differs from the ground "
             "truth's. 0 for any output that changes exactly as the ground truth does; copying the reference "
             "scores the ground truth's own mean frame difference (MAD gt).")
    L.append("- **Seam error**: with window W and overlap O (S = W − O, window k holds frames [kS, kS + W), "
             "the last one shortened to the clip), the seam frames are b = kS, ..., kS + O for every k ≥ 1: "
             "from the first frame window k holds to the first frame after window k − 1 stopped, where "
             "every change of the fusion weights lies (b = kS alone without overlap); seam error = mean of d_b "
             "over them, *other frames* = mean d_t "
             "over the rest, *seam excess* = the difference (0 = no visible seam).")
    L.append("- **Paired seam excess** of a render: the mean over clips and over its seam frames b that another "
             "render of the ablation has no seam at, of d_b minus the mean d_b of those other renders (same "
             "clip, same frame): the error its window transitions add over a layout without a transition "
             "there. Uniform and progressive share one layout, so their seam frames are compared with "
             "overlap 0's and overlap 0's with theirs (a frame that is a seam in every layout is left out).")
    L.append("")
    L.append("## Running it")
    L.append("")
    L.append("Renders are cached in `%s/renders/CLIP/KEY/` (KEY = hash of the engine settings, the model "
             "files and the clip files), so a re-run renders only what changed; `--no-render` writes a report "
             "from what exists, `--rerender` renders again (after an engine change). Variants with equal "
             "settings share one render. Options: `--clips`, `--frames`, `--size`, `--steps`, `--scheduler`, "
             "`--guidance`, `--window`, `--overlap`, `--fusion`, `--lookahead`, `--seed`, `--variants`, "
             "`--threads`, `--jobs`, `--nice`, `--face-build`, `--face-steps` (`--help`); the face recapture "
             "output is cached in `renders/CLIP/face-KEY/` (KEY = the model render's key, the face settings "
             "and the face model files). Long runs belong in the background: "
             "`nohup nice -n 10 /usr/bin/python3 train/quality.py ... > quality.log 2>&1 &`." % rel(a.cache))
    L.append("")
    with open(path, "w") as f:
        f.write("\n".join(L))


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def machine_line():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return "%d x %s, load average %.1f at the start" % (os.cpu_count() or 1, model, load)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    ap.add_argument("--engine", required=True, help="avatar-engine binary (a .py stand-in is run with python3)")
    ap.add_argument("--world", help="avatar-world binary, to make missing held-out clips")
    ap.add_argument("--model", default=os.path.join(REPO, "models", "avatar-default"), help="model folder")
    ap.add_argument("--out", required=True, help="folder for quality.md and the figures (docs/)")
    ap.add_argument("--data", default=os.path.join(REPO, "train", "data", "heldout"),
                    help="held-out clips (avatar-world dataset --split heldout layout)")
    ap.add_argument("--cache", default=os.path.join(REPO, "train", "runs", "quality"),
                    help="renders, model snapshots, results.json")
    ap.add_argument("--clips", type=int, default=8, help="held-out clips 0..N-1")
    ap.add_argument("--frames", type=int, default=48, help="frames per clip")
    ap.add_argument("--size", type=parse_size, default=(256, 256), help="ground-truth size WxH")
    ap.add_argument("--render-size", type=parse_size, help="engine output size (default --size)")
    ap.add_argument("--steps", type=int, default=10, help="denoising steps")
    ap.add_argument("--scheduler", choices=("ddim", "euler", "lcm"), default="ddim", help="sampler")
    ap.add_argument("--guidance", type=float, default=2.5, help="classifier-free guidance scale")
    ap.add_argument("--window", type=int, default=16, help="frames per window")
    ap.add_argument("--overlap", type=int, default=4, help="frames shared by neighbouring windows")
    ap.add_argument("--fusion", choices=("progressive", "uniform"), default="progressive",
                    help="fusion weights of the model variant")
    ap.add_argument("--lookahead", type=int, default=1, help="windows denoised in lockstep")
    ap.add_argument("--seed", type=int, default=0, help="noise seed")
    ap.add_argument("--noise-correlation", type=float, default=1.0,
                    help="share of the initial noise common to all frames (the engine's option)")
    ap.add_argument("--strength", type=float, default=1.0,
                    help="img2img strength from the reference (the engine's option; the no-reference-init "
                         "variant runs at 1)")
    ap.add_argument("--variants", default=DEFAULT_VARIANTS, help="comma-separated, see above")
    ap.add_argument("--threads", type=int, default=2, help="engine threads per render")
    ap.add_argument("--jobs", type=int, default=1, help="renders at a time")
    ap.add_argument("--nice", type=int, default=10, help="niceness added to the engine processes and the face step")
    ap.add_argument("--sheet-clips", type=int, default=4, help="rows of the contact sheet")
    ap.add_argument("--face-build", metavar="BUILD",
                    help="meson build folder with gst/ and tools/avatar-meta-launch: adds the face-recapture "
                         "variant (the model's frames through facerecapture) when MODEL/face exists")
    ap.add_argument("--face-steps", type=int, default=1,
                    help="facerecapture steps (the element's default, docs/face-model.md)")
    ap.add_argument("--no-render", action="store_true", help="report from cached renders only")
    ap.add_argument("--rerender", action="store_true", help="render again even when cached")
    a = ap.parse_args(argv)
    a.render_size = a.render_size or a.size
    a.argv = list(sys.argv[1:] if argv is None else argv)
    a.machine = machine_line()
    try:
        return run(a)
    except QualityError as e:
        print("quality.py: error: %s" % e, file=sys.stderr)
        return 1


def model_has_concat(model):
    """Whether the model's UNet takes the reference latent concatenated to its input."""
    try:
        with open(os.path.join(model, "unet", "config.json")) as f:
            cfg = json.load(f)
        return cfg["in_channels"] != cfg["out_channels"]
    except (OSError, ValueError, KeyError) as e:
        raise QualityError("%s/unet/config.json: %s" % (model, e))


def face_missing(a):
    """Why the face-recapture variant cannot be made (None when it can)."""
    if not a.face_build:
        return "no --face-build"
    if not os.path.isdir(os.path.join(a.model, "face")):
        return "%s has no face/ folder (the face model)" % a.model
    return None


def check_face_build(build):
    for sub, what in (("tools/avatar-meta-launch", "the tool"), ("gst", "the plugin folder")):
        p = os.path.join(build, sub)
        if not (os.access(p, os.X_OK) if what == "the tool" else os.path.isdir(p)):
            raise QualityError("%s: not built (%s of --face-build; ninja -C %s)" % (p, what, build))


def run_face(a, todo):
    """The face step on the model renders (done by then); returns its wall time."""
    log("%d face recapture folders to do, facerecapture steps=%d, %s"
        % (len(todo), a.face_steps, rel(a.face_build)))
    if a.nice:
        # face_eval.Element starts the element without a niceness: lower this process's (the
        # tool inherits it); the engine renders are done by now
        os.nice(a.nice)
    wall = 0.0
    for k, f in enumerate(todo):
        w = f.run(a)
        wall += w
        log("face recapture %s %s (%d/%d): %.1f s, %.3f s per frame"
            % (f.clip.name, f.key, k + 1, len(todo), w, w / a.frames))
    return wall


def run(a):
    t_start = time.time()
    variants = [v.strip() for v in a.variants.split(",") if v.strip()]
    for v in variants:
        if v not in VARIANTS:
            raise QualityError("unknown variant %r (known: %s)" % (v, ", ".join(VARIANTS)))
    if a.clips < 1 or a.frames < 2:
        raise QualityError("need --clips >= 1 and --frames >= 2")
    if a.window < 1 or not 0 <= a.overlap < a.window:
        raise QualityError("need --window >= 1 and 0 <= --overlap < --window")
    if not os.path.isdir(a.model):
        raise QualityError("%s: model folder not found" % a.model)
    if "no-reference-concat" in variants and not model_has_concat(a.model):
        variants.remove("no-reference-concat")   # the engine would ignore the flag
    if a.face_steps < 1:
        raise QualityError("need --face-steps >= 1")
    if FACE_VARIANT in variants and face_missing(a):
        log("%s left out: %s" % (FACE_VARIANT, face_missing(a)))
        variants.remove(FACE_VARIANT)
    face = FACE_VARIANT in variants
    if face and not a.no_render:
        check_face_build(a.face_build)
    engine_bin = shlex.split(a.engine)[0]
    if not a.no_render and not os.path.exists(engine_bin):
        raise QualityError("%s: engine not found" % engine_bin)
    ensure_data(a)
    clips = [Clip(clip_dir(a.data, k), k, a.frames) for k in range(a.clips)]
    a.model_run, model_fp = snapshot_model(a.model, a.cache)
    if face:
        a.face_model, face_fp = snapshot_face(a.model, a.model_run)
    metrics_fp = sha256_files([os.path.abspath(metrics.__file__)])
    settings = {v: variant_settings(a, v) for v in variants}

    # render what is missing (each distinct (clip, settings) once), clip by clip: an
    # interrupted run leaves whole clips, which --no-render can report on
    renders, of = {}, {}   # render folder -> Render; (variant, clip name) -> Render
    for c in clips:
        for v in variants:
            if settings[v] is not None:
                r = Render(a, c, settings[v], model_fp)
                of[(v, c.name)] = renders.setdefault(r.dir, r)
        if face:   # the face variant's settings are the model's: of[] holds that render so far
            of[(FACE_VARIANT, c.name)] = FaceRender(a, of[(FACE_VARIANT, c.name)], face_fp)
    todo = [r for r in renders.values() if a.rerender or not r.cached()]
    faces = [of[(FACE_VARIANT, c.name)] for c in clips] if face else []
    face_todo = [f for f in faces if a.rerender or not f.cached()]
    incomplete = []
    rendered_wall = face_wall = 0.0
    if a.no_render:
        incomplete = [c.name for c in clips if any(r.clip is c for r in todo + face_todo)]
        clips = [c for c in clips if c.name not in incomplete]
        if not clips:
            raise QualityError("--no-render: no clip has all its renders in %s yet" % a.cache)
    elif todo:
        log("%d renders to do (%d cached), %d at a time, %d threads each"
            % (len(todo), len(renders) - len(todo), a.jobs, a.threads))
        done = [0]

        def one(r):
            w = r.run(a)
            done[0] += 1
            elapsed = time.time() - t_start
            log("rendered %s %s (%d/%d): %.1f s; about %.0f min to go"
                % (r.clip.name, r.key, done[0], len(todo), w, elapsed / done[0] * (len(todo) - done[0]) / 60))
            return w
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, a.jobs)) as ex:
            for w in ex.map(one, todo):
                rendered_wall += w
    if face_todo and not a.no_render:
        face_wall = run_face(a, face_todo)

    # measure
    per_clip, accs = {}, {}
    for v in variants:
        per_clip[v], accs[v] = {}, []
        for c in clips:
            if settings[v] is None:
                fp = lambda i, c=c: os.path.join(c.path, "reference.png")  # noqa: E731
                cache = os.path.join(a.cache, "renders", c.name, "reference-copy", "metrics.json")
            else:
                r = of[(v, c.name)]
                fp = r.frame_path
                cache = os.path.join(r.dir, "metrics.json")
            acc = measure(c, fp, cache, metrics_fp)
            accs[v].append(acc)
            per_clip[v][c.name] = metrics.summarize([acc])
        log("measured %s" % v)
    summary = {}
    for v in variants:
        if not accs[v]:
            continue
        st = settings[v]
        summary[v] = metrics.summarize(accs[v], st["window"], st["overlap"]) if st else metrics.summarize(accs[v])
    fus = [v for v in FUSION_VARIANTS if v in summary]
    if len(fus) >= 2:
        paired = metrics.paired_seam_excess({v: [acc.d for acc in accs[v]] for v in fus},
                                            {v: (settings[v]["window"], settings[v]["overlap"]) for v in fus})
        for v in fus:
            summary[v]["paired_seam_excess"] = paired[v]

    # wall time of the renders this report uses
    used = [r for r in renders.values() if r.info and r.clip in clips]
    all_wall = sum(r.info["wall_s"] for r in used)
    per_variant_wall = {v: sum(of[(v, c.name)].info["wall_s"] for c in clips if of[(v, c.name)].info)
                        for v in variants if settings[v] and v != FACE_VARIANT}
    n_done = len(used)
    face_used = [f for f in faces if f.info and f.clip in clips]
    face_all = sum(f.info["wall_s"] for f in face_used)
    face_line = ("; the face recapture step (facerecapture, %d step%s) on %d of them took %.0f s of wall "
                 "time, %.3f s per frame (element start-up and model load included)"
                 % (a.face_steps, "" if a.face_steps == 1 else "s", len(face_used), face_all,
                    face_all / max(1, len(face_used) * a.frames)) if face_used else "")
    walltime = ("%d distinct renders of %d frames took %.0f s of engine wall time in all, %.2f s per frame "
                "(%s)%s; this run rendered %d of them in %.0f s%s and took %.0f s in all"
                % (n_done, a.frames, all_wall, all_wall / max(1, n_done * a.frames),
                   ", ".join("%s %.0f s" % (v, w) for v, w in per_variant_wall.items()), face_line,
                   0 if a.no_render else len(todo), rendered_wall,
                   ", ran the face step on %d in %.0f s" % (len(face_todo), face_wall)
                   if face_todo and not a.no_render else "", time.time() - t_start))

    os.makedirs(a.out, exist_ok=True)
    # figures
    cols = [("reference", lambda c, i: os.path.join(c.path, "reference.png")),
            ("pose", lambda c, i: os.path.join(c.path, "pose", "%05d.png" % i)
             if os.path.exists(os.path.join(c.path, "pose", "%05d.png" % i)) else None),
            ("ground truth", lambda c, i: c.gt_path(i))]
    for v in ("model", FACE_VARIANT, "no-reference-attention", "no-hand-tokens"):
        if v in variants and settings[v] and v in summary:
            def fn(c, i, v=v):
                r = of[(v, c.name)]
                return r.frame_path(i) if r.info else None
            cols.append((VARIANTS[v][0].replace("model, ", ""), fn))
    sheet_clips = clips[:max(1, a.sheet_clips)]
    contact_sheet(os.path.join(a.out, "quality-sheet.png"), sheet_clips, cols, a.size)
    colours = {"overlap-0": (200, 30, 30), "uniform": (30, 60, 200), "progressive": (20, 150, 40)}
    curves = []
    for v in FUSION_VARIANTS:
        if v in summary:
            ds = np.array([acc.d for acc in accs[v]])
            curves.append((v, colours[v], list(ds.mean(axis=0)),
                           metrics.seam_frames(a.frames, settings[v]["window"], settings[v]["overlap"])))
    if curves:
        seam_plot(os.path.join(a.out, "quality-seams.png"), curves, a.frames)

    training = ""
    tj = os.path.join(a.model, "training.json")
    if os.path.exists(tj):
        t = read_json(tj)
        training = "; trained %s UNet steps, %s VAE steps" % (t.get("unet_steps", "?"), t.get("vae_steps", "?"))
    ctx = {"summary": summary, "per_clip": per_clip, "clips": clips, "variants": variants,
           "settings": settings, "model_fp": model_fp, "training": training,
           "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
           "command": "/usr/bin/python3 " + " ".join(shlex.quote(x) for x in ["train/quality.py"] + a.argv),
           "machine": a.machine, "walltime": walltime, "incomplete": incomplete,
           "sheet_columns": [c[0] for c in cols], "face_fp": face_fp if face else None}
    write_report(a, os.path.join(a.out, "quality.md"), ctx)
    os.makedirs(a.cache, exist_ok=True)
    with open(os.path.join(a.cache, "results.json"), "w") as f:
        json.dump({"summary": summary, "per_clip": per_clip, "settings": settings,
                   "verdicts": [{"text": t, "holds": h} for t, h in verdicts(summary)],
                   "face": {"settings": face_settings(a), "build": os.path.abspath(a.face_build),
                            "face_model_sha256": face_fp, "wall_s": round(face_all, 2)} if face else None,
                   "walltime": walltime, "incomplete": incomplete}, f, indent=1)
    log("wrote %s (%s)" % (os.path.join(a.out, "quality.md"), walltime))
    return 0


if __name__ == "__main__":
    sys.exit(main())
