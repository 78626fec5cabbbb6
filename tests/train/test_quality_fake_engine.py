#!/usr/bin/python3
"""Stand-in for `avatar-engine render`, used by test_quality_report.py to drive train/quality.py
without the model.  It reads the ground truth beside --poses (CLIP/frames/) and writes
OUT/NNNNN.png = ground truth degraded in known ways, so that the report's verdicts are known:

- every frame: Gaussian noise (sigma 4, seeded by --seed and the frame index);
- window k adds a constant +10 (k even) or -10 (k odd) to its frames; frames held by two
  windows get the fusion-weighted mean (uniform or triangle weights), so --overlap 0 shows a
  jump at every window start and the fused variants a smaller one;
- --no-reference-attention pulls the frame 40 % towards grey;
- --no-hand-tokens adds noise (sigma 40) inside the hand boxes of boxes.jsonl;
- --temporal-attention adds a random brightness offset per frame (flicker);
- --no-reference-init shifts every frame's colour by (+25, -15, +20) (a wrong background tint);
- --no-reference-concat adds noise (sigma 12) to every pixel;
- --noise-correlation R (default 1): a random brightness offset per frame, sigma 12 sqrt(1 - R)
  (independent noise per frame flickers);
- FAKE_QUALITY_BAD=1 in the environment: every frame is reference.png plus noise (a model
  that learnt nothing).

Each call appends its arguments to $FAKE_QUALITY_LOG when set (the test counts renders)."""
import json
import os
import sys

import numpy as np
from PIL import Image


def window_weights(n, frames, window, overlap, fusion):
    """{window k: normalised weight} of frame n (schedule of docs/temporal-fusion.md)."""
    s = window - overlap
    count = 1 if frames <= window else 1 + (frames - window + s - 1) // s
    ws = {}
    for k in range(count):
        j = n - k * s
        if 0 <= j < window and n < frames:
            t = (j + 0.5) * 2.0 / window
            ws[k] = 1.0 if fusion == "uniform" else min(t, 2.0 - t)
    tot = sum(ws.values())
    return {k: w / tot for k, w in ws.items()}


def main(argv):
    if not argv or argv[0] != "render":
        print("usage: test_quality_fake_engine.py render --poses FILE --out DIR ...", file=sys.stderr)
        return 2
    def switch(a):
        return a.startswith("--no-") or a == "--temporal-attention"
    flags = {a for a in argv[1:] if switch(a)}
    rest = [a for a in argv[1:] if not switch(a)]
    opts = dict(zip(rest[0::2], rest[1::2]))
    if os.environ.get("FAKE_QUALITY_LOG"):
        with open(os.environ["FAKE_QUALITY_LOG"], "a") as f:
            f.write(" ".join(argv) + "\n")
    clip = os.path.dirname(opts["--poses"])
    out = opts["--out"]
    frames = int(opts["--frames"])
    window, overlap = int(opts["--window"]), int(opts["--overlap"])
    w, h = (int(v) for v in opts["--size"].split("x"))
    seed = int(opts["--seed"])
    boxes = [json.loads(line) for line in open(os.path.join(clip, "boxes.jsonl")) if line.strip()]
    canvas = json.load(open(os.path.join(clip, "clip.json")))
    bad = os.environ.get("FAKE_QUALITY_BAD") == "1"
    ref = np.asarray(Image.open(os.path.join(clip, "reference.png")).convert("RGB").resize((w, h)), np.float64)
    os.makedirs(out, exist_ok=True)
    for n in range(frames):
        rng = np.random.default_rng([seed, n])
        gt = Image.open(os.path.join(clip, "frames", "%05d.png" % n)).convert("RGB").resize((w, h))
        x = ref.copy() if bad else np.asarray(gt, np.float64)
        x += rng.normal(0.0, 4.0, x.shape)
        ws = window_weights(n, frames, window, overlap, opts["--fusion"])
        x += sum(wk * (10.0 if k % 2 == 0 else -10.0) for k, wk in ws.items())
        if "--no-reference-attention" in flags:
            x = 0.6 * x + 0.4 * 128.0
        if "--no-hand-tokens" in flags:
            for key in ("hand_left", "hand_right"):
                b = boxes[n].get(key)
                if b:
                    sx, sy = w / canvas["width"], h / canvas["height"]
                    x0, y0 = int(b[0] * sx), int(b[1] * sy)
                    x1, y1 = int(np.ceil(b[2] * sx)), int(np.ceil(b[3] * sy))
                    x[y0:y1, x0:x1] += rng.normal(0.0, 40.0, x[y0:y1, x0:x1].shape)
        if "--temporal-attention" in flags:
            x += rng.normal(0.0, 12.0)
        if "--no-reference-init" in flags:
            x += np.array([25.0, -15.0, 20.0])
        x += rng.normal(0.0, 12.0 * np.sqrt(1.0 - float(opts.get("--noise-correlation", 1.0))))
        if "--no-reference-concat" in flags:
            x += rng.normal(0.0, 12.0, x.shape)
        Image.fromarray(np.clip(np.round(x), 0, 255).astype(np.uint8)).save(os.path.join(out, "%05d.png" % n))
    print("fake render: %d frames" % frames)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
