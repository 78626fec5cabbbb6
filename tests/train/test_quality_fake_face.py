#!/usr/bin/python3
"""Stand-in for BUILD/tools/avatar-meta-launch running facerecapture, used by
test_quality_report.py to drive train/quality.py's face-recapture variant without the element.
train/face_eval.py's Element calls it as it calls the real tool:

  avatar-meta-launch --poses CLIP/poses.jsonl -- multifilesrc location=SRC/%05d.png
      stop-index=N-1 ... ! facerecapture model=MODEL reference=REF steps=S enabled=true|false
      ! ... ! multifilesink location=OUT/%05d.png

It writes OUT/NNNNN.png = the input frame with its face box (boxes.jsonl beside --poses, scaled
from the clip's canvas to the frame) moved halfway to the ground truth (CLIP/frames/), so the
face PSNR goes up and nothing outside the box changes; enabled=false copies the input.  Like the
element, a model folder without face/face_config.json or a missing reference is an error.

Environment: FAKE_FACE_LOG (each call appends its arguments), FAKE_FACE_BAD=1 (the face box is
painted grey instead: a face step that makes things worse), FAKE_FACE_FAIL=1 (exit 1)."""
import json
import os
import sys

import numpy as np
from PIL import Image


def parse(argv):
    """(poses path, {property: value} of the pipeline's key=value tokens, [source, sink])."""
    if len(argv) < 3 or argv[0] != "--poses" or argv[2] != "--":
        raise ValueError("usage: avatar-meta-launch --poses FILE -- PIPELINE")
    props, locations = {}, []
    for tok in argv[3:]:
        if "=" in tok:
            k, v = tok.split("=", 1)
            if k == "location":
                locations.append(v)
            else:
                props[k] = v
    if len(locations) != 2:
        raise ValueError("want a multifilesrc and a multifilesink location, got %r" % locations)
    return argv[1], props, locations


def face_box(boxes, canvas, i, w, h):
    b = boxes[i].get("face")
    if not b:
        return None
    sx, sy = w / canvas["width"], h / canvas["height"]
    x0, y0 = max(0, int(b[0] * sx)), max(0, int(b[1] * sy))
    x1, y1 = min(w, int(np.ceil(b[2] * sx))), min(h, int(np.ceil(b[3] * sy)))
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def main(argv):
    if os.environ.get("FAKE_FACE_LOG"):
        with open(os.environ["FAKE_FACE_LOG"], "a") as f:
            f.write(" ".join(argv) + "\n")
    try:
        poses, props, (src, sink) = parse(argv)
    except ValueError as e:
        print("fake avatar-meta-launch: %s" % e, file=sys.stderr)
        return 2
    if os.environ.get("FAKE_FACE_FAIL") == "1":
        print("fake avatar-meta-launch: failing as asked (FAKE_FACE_FAIL)", file=sys.stderr)
        return 1
    if not os.path.exists(os.path.join(props.get("model", ""), "face", "face_config.json")):
        print("ERROR: Cannot load the face model '%s/face'" % props.get("model"), file=sys.stderr)
        return 1
    if not os.path.exists(props.get("reference", "")):
        print("ERROR: Cannot read the reference '%s'" % props.get("reference"), file=sys.stderr)
        return 1
    clip = os.path.dirname(poses)
    boxes = [json.loads(line) for line in open(os.path.join(clip, "boxes.jsonl")) if line.strip()]
    canvas = json.load(open(os.path.join(clip, "clip.json")))
    enabled = props.get("enabled", "true") == "true"
    bad = os.environ.get("FAKE_FACE_BAD") == "1"
    os.makedirs(os.path.dirname(sink), exist_ok=True)
    n = int(props["stop-index"]) + 1
    for i in range(n):
        img = Image.open(src % i).convert("RGB")
        x = np.asarray(img, np.float64).copy()
        box = face_box(boxes, canvas, i, img.size[0], img.size[1])
        if enabled and box:
            x0, y0, x1, y1 = box
            gt = Image.open(os.path.join(clip, "frames", "%05d.png" % i)).convert("RGB").resize(img.size)
            g = np.asarray(gt, np.float64)
            x[y0:y1, x0:x1] = 128.0 if bad else 0.5 * (x[y0:y1, x0:x1] + g[y0:y1, x0:x1])
        Image.fromarray(np.clip(np.round(x), 0, 255).astype(np.uint8)).save(sink % i)
    print("fake facerecapture: %d frames, steps %s" % (n, props.get("steps")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
