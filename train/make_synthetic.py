"""Writes a small synthetic dataset in the `avatar-world dataset` layout.

Used by the tests (tests/train/) and for development before the world renderer exists:
a stick figure with a round head and two hands, driven by a few sine-wave motions,
identity = colours.  Not the training data of the default model (that is avatar-world).
  make_synthetic.py OUT_DIR [--clips N] [--frames F] [--size S] [--seed K]
"""
import argparse
import json
import math
import os
import random

from PIL import Image, ImageDraw


def figure(t, s, phase):
    """Key points (pixels) of the figure at time t: neck, head, shoulders, elbows, wrists."""
    cx = s * 0.5 + s * 0.03 * math.sin(0.7 * t + phase)
    neck = (cx, s * 0.42)
    head = (cx + s * 0.02 * math.sin(1.3 * t), s * 0.25)
    pts = {"neck": neck, "head": head}
    for side, sgn in (("l", -1), ("r", 1)):
        sh = (cx + sgn * s * 0.14, s * 0.45)
        a = 0.9 + 0.6 * math.sin(1.1 * t + phase + (0 if sgn < 0 else 1.7))
        el = (sh[0] + sgn * s * 0.12 * math.cos(a), sh[1] + s * 0.12 * math.sin(a))
        b = a - 1.2 - 0.5 * math.sin(0.9 * t + sgn)
        wr = (el[0] + sgn * s * 0.11 * math.cos(b), el[1] + s * 0.11 * math.sin(b))
        pts["sh" + side], pts["el" + side], pts["wr" + side] = sh, el, wr
    return pts


def hand(wrist, s, angle):
    """21 OpenPose hand points fanned out from the wrist."""
    pts = [wrist]
    for finger in range(5):
        fa = angle + (finger - 2) * 0.35
        for j in range(1, 5):
            r = s * 0.012 * j
            pts.append((wrist[0] + r * math.cos(fa), wrist[1] + r * math.sin(fa)))
    return pts


def box(points, pad):
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return [min(xs) - pad, min(ys) - pad, max(xs) + pad, max(ys) + pad]


def render(pts, hands, s, ident, guidance=False):
    bg = (0, 0, 0) if guidance else ident["bg"]
    im = Image.new("RGB", (s, s), bg)
    d = ImageDraw.Draw(im)
    w = max(1, s // 40)
    limbs = [("neck", "shl"), ("neck", "shr"), ("shl", "ell"), ("ell", "wrl"),
             ("shr", "elr"), ("elr", "wrr"), ("neck", "head")]
    colours = [(255, 0, 0), (255, 128, 0), (255, 255, 0), (0, 255, 0), (0, 255, 255),
               (0, 0, 255), (255, 0, 255)]
    if not guidance:
        x0, y0 = pts["neck"][0] - s * 0.14, pts["neck"][1]
        d.rectangle([x0, y0, x0 + s * 0.28, s], fill=ident["shirt"])
    for (a, b), c in zip(limbs, colours):
        d.line([pts[a], pts[b]], fill=c if guidance else ident["skin"], width=w * (1 if guidance else 3))
    hr = s * 0.09
    hx, hy = pts["head"]
    if not guidance:
        d.ellipse([hx - hr, hy - hr, hx + hr, hy + hr], fill=ident["skin"])
        d.ellipse([hx - hr, hy - hr, hx + hr, hy - hr * 0.2], fill=ident["hair"])
        for ex in (-0.35, 0.35):
            d.ellipse([hx + ex * hr - 2, hy - 2, hx + ex * hr + 2, hy + 2], fill=(20, 20, 20))
    for hp in hands:
        for p in hp[1:]:
            d.line([hp[0], p], fill=(255, 255, 255) if guidance else ident["skin"], width=max(1, w // 2))
    return im


def openpose(pts, hands, s):
    def flat(points):
        out = []
        for x, y in points:
            out += [round(x, 2), round(y, 2), 1.0]
        return out
    body = [pts["head"], pts["neck"], pts["shr"], pts["elr"], pts["wrr"], pts["shl"], pts["ell"], pts["wrl"]]
    body_flat = flat(body) + [0.0] * (18 * 3 - 3 * len(body))
    hx, hy = pts["head"]
    face = [(hx + s * 0.06 * math.cos(2 * math.pi * i / 70), hy + s * 0.07 * math.sin(2 * math.pi * i / 70))
            for i in range(70)]
    return {"version": 1.3, "canvas_width": s, "canvas_height": s,
            "people": [{"pose_keypoints_2d": body_flat, "face_keypoints_2d": flat(face),
                        "hand_left_keypoints_2d": flat(hands[0]), "hand_right_keypoints_2d": flat(hands[1])}]}


def write_clip(out, idx, frames, s, rng):
    clip = os.path.join(out, "clip_%05d" % idx)
    for sub in ("frames", "alpha", "pose"):
        os.makedirs(os.path.join(clip, sub), exist_ok=True)
    ident = {k: tuple(rng.randrange(256) for _ in range(3)) for k in ("bg", "shirt", "skin", "hair")}
    phase = rng.uniform(0, 6.28)
    t0 = rng.uniform(0, 100)
    poses, boxes = [], []

    def state(t):
        pts = figure(t, s, phase)
        hands = [hand(pts["wrl"], s, math.pi / 2 + 0.5 * math.sin(t)),
                 hand(pts["wrr"], s, math.pi / 2 - 0.5 * math.sin(t))]
        return pts, hands

    for f in range(frames):
        pts, hands = state(t0 + 0.15 * f)
        render(pts, hands, s, ident).save(os.path.join(clip, "frames", "%05d.png" % f))
        render(pts, hands, s, ident, guidance=True).save(os.path.join(clip, "pose", "%05d.png" % f))
        Image.new("L", (s, s), 255).save(os.path.join(clip, "alpha", "%05d.png" % f))
        doc = openpose(pts, hands, s)
        poses.append(doc)
        hx, hy = pts["head"]
        boxes.append({"face": [hx - s * 0.1, hy - s * 0.1, hx + s * 0.1, hy + s * 0.1],
                      "hand_left": box(hands[0], s * 0.02), "hand_right": box(hands[1], s * 0.02)})
    with open(os.path.join(clip, "poses.jsonl"), "w") as fp:
        fp.writelines(json.dumps(p) + "\n" for p in poses)
    with open(os.path.join(clip, "boxes.jsonl"), "w") as fp:
        fp.writelines(json.dumps(b) + "\n" for b in boxes)
    pts, hands = state(t0 - 3.0)
    render(pts, hands, s, ident).save(os.path.join(clip, "reference.png"))
    with open(os.path.join(clip, "reference.json"), "w") as fp:
        json.dump(openpose(pts, hands, s), fp)
    with open(os.path.join(clip, "clip.json"), "w") as fp:
        json.dump({"generator": "train/make_synthetic.py", "frames": frames, "width": s, "height": s}, fp)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    for i in range(a.clips):
        write_clip(a.out, i, a.frames, a.size, rng)


if __name__ == "__main__":
    main()
