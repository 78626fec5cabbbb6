"""Reads `avatar-world dataset` output (see docs/training.md) into tensors.

DIR/clip_NNNNN/{frames,alpha,pose}/NNNNN.png, poses.jsonl, boxes.jsonl, reference.png,
reference.json, clip.json.  Images become float tensors: RGB frames in [-1, 1] (VAE
convention), pose-guidance images in [0, 1] (pose guider convention).
"""
import json
import os

import numpy as np
import torch
from PIL import Image

NUM_HAND_KEYPOINTS = 42  # 21 left then 21 right (OpenPose hand layout)


def list_clips(root):
    if not os.path.isdir(root):
        raise FileNotFoundError("%s: dataset folder not found" % root)
    clips = sorted(os.path.join(root, d) for d in os.listdir(root) if d.startswith("clip_"))
    if not clips:
        raise FileNotFoundError("%s: no clip_* folders" % root)
    return clips


def list_frames(clip):
    d = os.path.join(clip, "frames")
    return sorted(f for f in os.listdir(d) if f.endswith(".png"))


def load_rgb(path, size=None):
    """PNG -> float32 (3, H, W) in [0, 1]."""
    im = Image.open(path).convert("RGB")
    if size is not None and im.size != (size, size):
        im = im.resize((size, size), Image.BILINEAR)
    return torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _person(doc, where):
    people = doc.get("people") or []
    if not people:
        return None
    if not isinstance(people[0], dict):
        raise ValueError("%s: people[0] is not an object" % where)
    return people[0]


def hand_keypoints(doc, where="pose"):
    """OpenPose JSON frame -> (42, 3) float32: x/W, y/H, confidence (0 where absent)."""
    out = np.zeros((NUM_HAND_KEYPOINTS, 3), dtype=np.float32)
    p = _person(doc, where)
    if p is None:
        return torch.from_numpy(out)
    w = float(doc.get("canvas_width") or 0)
    h = float(doc.get("canvas_height") or 0)
    if w <= 0 or h <= 0:
        raise ValueError("%s: canvas_width/canvas_height missing or not positive" % where)
    for side, key in enumerate(("hand_left_keypoints_2d", "hand_right_keypoints_2d")):
        flat = p.get(key) or []
        if len(flat) not in (0, 63):
            raise ValueError("%s: %s has %d values, expected 63" % (where, key, len(flat)))
        if flat:
            a = np.asarray(flat, dtype=np.float32).reshape(21, 3)
            out[side * 21:(side + 1) * 21, 0] = a[:, 0] / w
            out[side * 21:(side + 1) * 21, 1] = a[:, 1] / h
            out[side * 21:(side + 1) * 21, 2] = a[:, 2]
    return torch.from_numpy(out)


def region_weight(boxes, width, height, size, amplify):
    """Loss weight map (1, size, size): 1 everywhere, `amplify` inside face/hand boxes
    (MimicMotion regional loss amplification).  Boxes are pixel [x0, y0, x1, y1]."""
    wmap = torch.ones(1, size, size)
    for key in ("face", "hand_left", "hand_right"):
        b = boxes.get(key)
        if not b:
            continue
        x0 = int(np.floor(b[0] / width * size))
        y0 = int(np.floor(b[1] / height * size))
        x1 = int(np.ceil(b[2] / width * size))
        y1 = int(np.ceil(b[3] / height * size))
        x0, y0 = max(0, x0), max(0, y0)
        x1, y1 = min(size, max(x1, x0 + 1)), min(size, max(y1, y0 + 1))
        wmap[:, y0:y1, x0:x1] = amplify
    return wmap


def reference_keypoints(clip):
    """Hand key points of the reference image (reference.json, OpenPose JSON); all
    missing if the file has none."""
    path = os.path.join(clip, "reference.json")
    if not os.path.exists(path):
        return torch.zeros(NUM_HAND_KEYPOINTS, 3)
    with open(path) as f:
        doc = json.load(f)
    if "people" not in doc and "pose" in doc and isinstance(doc["pose"], dict):
        doc = doc["pose"]
    if "people" not in doc:
        return torch.zeros(NUM_HAND_KEYPOINTS, 3)
    return hand_keypoints(doc, path)


class FrameDataset(torch.utils.data.Dataset):
    """All frames of all clips, for VAE training: RGB in [-1, 1]."""

    def __init__(self, root, size):
        self.size = size
        self.items = []
        for clip in list_clips(root):
            for f in list_frames(clip):
                self.items.append(os.path.join(clip, "frames", f))
            self.items.append(os.path.join(clip, "reference.png"))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return load_rgb(self.items[i], self.size) * 2.0 - 1.0


def clip_frames_meta(clip):
    """(frame file names, per-frame pose docs, per-frame boxes) of one clip."""
    frames = list_frames(clip)
    poses = read_jsonl(os.path.join(clip, "poses.jsonl"))
    boxes = read_jsonl(os.path.join(clip, "boxes.jsonl"))
    if len(poses) < len(frames) or len(boxes) < len(frames):
        raise ValueError("%s: %d frames but %d poses.jsonl / %d boxes.jsonl lines"
                         % (clip, len(frames), len(poses), len(boxes)))
    return frames, poses, boxes
