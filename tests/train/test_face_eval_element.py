"""train/face_eval.py --element: the facerecapture element itself (through
tools/avatar-meta-launch) on a 4-frame held-out world clip, blurred and as a stand-in "render"
folder, scored as the PyTorch twin is scored.  Checks that enabled=false gives the input back
byte for byte, that every frame with a confident face is restored, that the scores match the
PyTorch twin's (the face-vs-torch test bounds the element's output against it), that per-clip
entries are written, and that a build without the tool is an error naming it.

  test_face_eval_element.py AVATAR_WORLD BUILD_DIR

Exits 77 (skip) without torch, numpy or PIL, or when the build has no facerecapture or
avatar-meta-launch."""
import json
import os
import subprocess
import sys
import tempfile

try:
    import numpy  # noqa: F401  (the train modules need it)
    import torch
    from PIL import Image
except ImportError as e:
    print("SKIP: %s" % e)
    sys.exit(77)

if len(sys.argv) < 3:
    print("usage: test_face_eval_element.py AVATAR_WORLD BUILD_DIR", file=sys.stderr)
    sys.exit(2)
WORLD, BUILD = sys.argv[1], os.path.abspath(sys.argv[2])
SRC = os.environ.get("AVATAR_SOURCE_DIR",
                     os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
MODEL = os.path.join(SRC, "models", "avatar-default")
sys.path.insert(0, os.path.join(SRC, "train"))
import dataset  # noqa: E402
import face_align as fa  # noqa: E402
import face_data  # noqa: E402
import face_eval  # noqa: E402

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def have_element():
    tool = os.path.join(BUILD, "tools", "avatar-meta-launch")
    env = dict(os.environ, GST_PLUGIN_PATH_1_0=os.path.join(BUILD, "gst"))
    r = subprocess.run(["gst-inspect-1.0", "facerecapture"], env=env, capture_output=True)
    return os.access(tool, os.X_OK) and r.returncode == 0


def stand_in_render(clip, out):
    """A "render" folder: the ground truth with the face box painted flat grey."""
    os.makedirs(out)
    for i, (gt, _, box) in enumerate(face_eval.clip_truth(clip)):
        img = gt.copy()
        if box:
            x0, y0, x1, y1 = box
            img[y0:y1, x0:x1] = 128
        Image.fromarray(img).save(os.path.join(out, "%05d.png" % i))


def main():
    if not have_element():
        print("SKIP: no facerecapture / avatar-meta-launch in %s" % BUILD)
        return 77
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        held = os.path.join(tmp, "heldout")
        r = subprocess.run([WORLD, "dataset", "--split", "heldout", "--clips", "1",
                            "--frames", "4", "--size", "256x256", "--out", held, "--jobs", "1"],
                           capture_output=True, text=True)
        check(r.returncode == 0, "avatar-world dataset (%s)" % r.stderr.strip()[-200:])
        if r.returncode != 0:
            return 1
        clip = dataset.list_clips(held)[0]
        stand_in_render(clip, os.path.join(tmp, "renders", os.path.basename(clip), "run"))
        _, poses, _ = dataset.clip_frames_meta(clip)
        confident = sum(fa.face_confident(face_data.load_face_doc(p), 0.3) for p in poses)
        check(confident >= 3, "%d of 4 frames with a confident face" % confident)

        common = ["--model", MODEL, "--heldout", held, "--renders", os.path.join(tmp, "renders"),
                  "--clips", "1", "--threads", "1"]
        e_out, t_out = os.path.join(tmp, "element.json"), os.path.join(tmp, "torch.json")
        check(face_eval.main(common + ["--element", BUILD, "--out", e_out]) == 0,
              "face_eval.py --element runs")
        check(face_eval.main(common + ["--out", t_out]) == 0, "face_eval.py (PyTorch) runs")
        with open(e_out) as f:
            e = json.load(f)
        with open(t_out) as f:
            t = json.load(f)["summary"]
        s = e["summary"]
        check(e["mode"] == "element" and e["element_runs"] == 4,
              "element mode: 2 inputs x enabled false/true")
        for label in ("blurred", "render"):
            st = s[label]["element"]
            check(st["passthrough_exact"], "%s: enabled=false gives the input back" % label)
            check(st["frames"] == 4 and st["restored"] == confident,
                  "%s: %d of 4 frames restored (confident: %d)"
                  % (label, st["restored"], confident))
            check("%s/%s" % (label, os.path.basename(clip)) in s, "%s: per-clip entry" % label)
            for key in ("without", "with"):
                a, b = s[label][key], t[label][key]
                close = (abs(a["psnr"] - b["psnr"]) < 0.05 and abs(a["ssim"] - b["ssim"]) < 5e-3
                         and abs(a["identity"] - b["identity"]) < 1e-2)
                check(close, "%s %s: element %.3f dB / %.4f / %.4f, PyTorch %.3f dB / %.4f / %.4f"
                      % (label, key, a["psnr"], a["ssim"], a["identity"], b["psnr"], b["ssim"],
                         b["identity"]))
            check(s[label]["with"]["psnr"] != s[label]["without"]["psnr"],
                  "%s: the restored faces score differently" % label)

        nobuild = os.path.join(tmp, "no-build")
        rc = face_eval.main(common + ["--element", nobuild, "--out", os.path.join(tmp, "n.json")])
        check(rc == 1 and not os.path.exists(os.path.join(tmp, "n.json")),
              "a build without avatar-meta-launch: error, no results")
    print("%d failure(s)" % len(failures) if failures
          else "all face element evaluation checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
