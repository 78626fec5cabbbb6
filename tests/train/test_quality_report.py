"""train/quality.py end to end on 2 held-out clips x 6 frames at 64x64, rendered by a stand-in
engine (test_quality_fake_engine.py: ground truth degraded in known ways), so the report
command cannot rot: data made by avatar-world, renders cached, verdicts that follow the
numbers both ways, the streaming ablation, the figures, and clear errors.

  test_quality_report.py AVATAR_WORLD [AVATAR_ENGINE]

The face-recapture variant runs through a stand-in build folder whose tools/avatar-meta-launch
is test_quality_fake_face.py (the face box moved halfway to the ground truth); quality.py takes
the same path as with a real build (train/face_eval.py's Element), so those checks need torch.

With AVATAR_ENGINE (the real one) and a model folder, one more run of 2 clips x 4 frames,
1 step, goes through `avatar-engine render` when the tool has that command, and through the real
facerecapture when the engine's build folder has gst/ and tools/avatar-meta-launch."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

try:
    import numpy  # noqa: F401
    from PIL import Image
except ImportError:
    print("SKIP: numpy or PIL is not installed")
    sys.exit(77)

if len(sys.argv) < 2:
    print("usage: test_quality_report.py AVATAR_WORLD [AVATAR_ENGINE]", file=sys.stderr)
    sys.exit(2)
WORLD = sys.argv[1]
ENGINE = sys.argv[2] if len(sys.argv) > 2 else None
SRC = os.environ.get("AVATAR_SOURCE_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
QUALITY = os.path.join(SRC, "train", "quality.py")
FAKE = os.path.join(SRC, "tests", "train", "test_quality_fake_engine.py")
FAKE_FACE = os.path.join(SRC, "tests", "train", "test_quality_fake_face.py")
MODEL = os.path.join(SRC, "models", "avatar-default")
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def model_copy(tmp, concat=True):
    """A copy of the model's folder whose UNet config takes the reference concat (in_channels 8)
    or not: the fake engine reads no weights, the report reads the config to choose its variants."""
    dst = os.path.join(tmp, "model-concat" if concat else "model-plain")
    shutil.copytree(MODEL, dst)
    path = os.path.join(dst, "unet", "config.json")
    cfg = json.load(open(path))
    cfg["in_channels"] = cfg["out_channels"] * (2 if concat else 1)
    json.dump(cfg, open(path, "w"))
    return dst


def quality(tmp, *extra, cache="cache", out="out", env=None, engine=FAKE, data="data", model=None):
    model = model or os.path.join(tmp, "model-concat")
    cmd = [sys.executable, QUALITY, "--engine", engine, "--world", WORLD, "--model", model,
           "--data", os.path.join(tmp, data), "--cache", os.path.join(tmp, cache),
           "--out", os.path.join(tmp, out), "--clips", "2", "--frames", "10", "--size", "64x64",
           "--window", "4", "--overlap", "1", "--steps", "1", "--nice", "0", "--threads", "1"] + list(extra)
    p = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, **(env or {})))
    return p.returncode, p.stdout + p.stderr


def have_torch():
    p = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True)
    return p.returncode == 0


def fake_face_build(tmp):
    """A build folder whose tools/avatar-meta-launch runs test_quality_fake_face.py."""
    build = os.path.join(tmp, "fake-build")
    os.makedirs(os.path.join(build, "tools"))
    os.makedirs(os.path.join(build, "gst"))
    tool = os.path.join(build, "tools", "avatar-meta-launch")
    with open(tool, "w") as f:
        f.write('#!/bin/sh\nexec "%s" "%s" "$@"\n' % (sys.executable, FAKE_FACE))
    os.chmod(tool, 0o755)
    return build


def frames_of(folder):
    return sorted(f for f in os.listdir(folder) if f.endswith(".png")) if os.path.isdir(folder) else []


def face_checks(tmp, log):
    """The face-recapture variant through the stand-in tool, on the main cache's renders."""
    build = fake_face_build(tmp)
    flog = os.path.join(tmp, "face.log")
    env = {"FAKE_QUALITY_LOG": log, "FAKE_FACE_LOG": flog}
    rc, out = quality(tmp, "--face-build", build, out="out-face", env=env)
    print(out[-1500:])
    calls = lines(flog)
    check(rc == 0 and len(calls) == 2, "face step: one call per clip (exit %d, %d calls)" % (rc, len(calls)))
    check(len(lines(log)) == 18, "face step: the model renders come from the cache (no engine call)")
    check(all("enabled=true" in c and "steps=1" in c and "/reference.png" in c and "--poses" in c
              for c in calls), "face step: the element's arguments (enabled, steps 1, reference, poses)")
    model_arg = calls[0].split("model=")[1].split()[0] if calls else ""
    check(os.path.isdir(os.path.join(model_arg, "face")) and os.path.isdir(os.path.join(model_arg, "unet")),
          "face step: model= is an avatar model folder with face/ (%s)" % model_arg)
    faces = [d for d in os.listdir(os.path.join(tmp, "cache", "renders", "clip_00000")) if d.startswith("face-")]
    check(len(faces) == 1 and len(frames_of(os.path.join(tmp, "cache", "renders", "clip_00000", faces[0]))) == 10,
          "face step: cached in renders/clip_00000/face-KEY/ with 10 frames (%s)" % faces)
    report = lines(os.path.join(tmp, "out-face", "quality.md"))
    text = "\n".join(report)
    S = json.load(open(os.path.join(tmp, "cache", "results.json")))["summary"]
    f, m = S.get("face-recapture", {}), S["model"]
    check(f.get("face_psnr", 0) > m["face_psnr"] + 1, "face PSNR up: %s vs %.2f dB" % (f.get("face_psnr"),
                                                                                      m["face_psnr"]))
    v = verdict(report, "Face recapture raises face-region PSNR")
    check("**holds**" in v and "%.2f vs %.2f dB" % (f.get("face_psnr", 0), m["face_psnr"]) in v,
          "face recapture verdict holds with the numbers: " + v)
    check("| model + face recapture | %.4f |" % f.get("ssim", 0) in text, "results table has the face row")
    v = verdict(report, "The product's chain (model + face recapture")
    check("%.2f dB, reference copy %.2f dB" % (f.get("face_psnr", 0), S["reference-copy"]["face_psnr"]) in v,
          "the chain's face verdict with its numbers: " + v)
    check(any(x.startswith("- Face recapture (row \"model + face recapture\"): ") for x in report),
          "setup line for the face step")
    check("the face recapture step (facerecapture, 1 step) on 2 of them took" in text,
          "wall time of the face step reported")
    sheet = os.path.join(tmp, "out-face", "quality-sheet.png")
    check(Image.open(sheet).size[0] == 7 * 64, "contact sheet: 7 columns with the face recapture one")
    check("model + face recapture" in text.split("*Columns:")[-1], "sheet caption names the column")

    rc, out = quality(tmp, "--face-build", build, out="out-face", env=env)
    S2 = json.load(open(os.path.join(tmp, "cache", "results.json")))["summary"]
    check(rc == 0 and len(lines(flog)) == 2 and S2 == S, "second run: the face step comes from the cache")
    rc, out = quality(tmp, "--face-build", "/nonexistent/build", "--no-render", out="out-face-nr",
                      engine="/nonexistent/engine")
    S3 = json.load(open(os.path.join(tmp, "cache", "results.json")))["summary"]
    check(rc == 0 and S3.get("face-recapture") == S["face-recapture"],
          "--no-render: the face variant from the cache, no build needed")
    rc, out = quality(tmp, "--face-build", build, "--face-steps", "2", "--variants", "model,face-recapture",
                      out="out-face", env=env)
    check(rc == 0 and len(lines(flog)) == 4 and "steps=2" in lines(flog)[-1] and len(lines(log)) == 18,
          "--face-steps 2: the face step again (2 calls), not the renders")

    # the face step making things worse: not yet
    rc, out = quality(tmp, "--face-build", build, "--variants", "model,face-recapture", cache="cache-face-bad",
                      out="out-face-bad", env={"FAKE_FACE_BAD": "1"})
    check(rc == 0 and "**not yet**" in verdict(lines(os.path.join(tmp, "out-face-bad", "quality.md")),
                                                "Face recapture raises face-region PSNR"),
          "face verdict: not yet for a face step that paints the face grey")
    # left out without MODEL/face; errors name the build or the failing step
    noface = os.path.join(tmp, "model-noface")
    shutil.copytree(os.path.join(tmp, "model-concat"), noface)
    shutil.rmtree(os.path.join(noface, "face"))
    rc, out = quality(tmp, "--face-build", build, "--variants", "model,face-recapture", cache="cache-noface",
                      out="out-noface", model=noface, env={"FAKE_FACE_LOG": flog})
    check(rc == 0 and "face-recapture left out: %s has no face/" % noface in out and len(lines(flog)) == 4
          and "model + face recapture" not in open(os.path.join(tmp, "out-noface", "quality.md")).read(),
          "a model without face/: the variant is left out with a note")
    rc, out = quality(tmp, "--face-build", os.path.join(tmp, "no-build"), cache="cache-fail", out="out-fail")
    check(rc == 1 and "no-build/tools/avatar-meta-launch: not built" in out,
          "a --face-build without the tool: an error naming it")
    rc, out = quality(tmp, "--face-build", build, "--variants", "model,face-recapture", cache="cache-face-fail",
                      out="out-fail", env={"FAKE_FACE_FAIL": "1"})
    check(rc == 1 and "face recapture on clip_00000" in out and "FAKE_FACE_FAIL" in out,
          "a failing face step: an error naming the clip and the tool's message")


def lines(path):
    return open(path).read().splitlines() if os.path.exists(path) else []


def verdict(report, start):
    return next((x for x in report if x.startswith("- " + start)), "")


tmp = tempfile.mkdtemp(prefix="test_quality_")
try:
    log = os.path.join(tmp, "engine.log")
    model_copy(tmp)
    rc, out = quality(tmp, env={"FAKE_QUALITY_LOG": log})
    print(out)
    check(rc == 0, "report command runs (exit %d)" % rc)
    check("face-recapture left out: no --face-build" in out, "no --face-build: face-recapture left out")
    check(all(os.path.exists(os.path.join(tmp, "data", "clip_%05d" % k, "frames", "00009.png")) for k in (0, 1)),
          "held-out clips made by avatar-world")
    calls = lines(log)
    # reference-copy needs no engine, temporal-attention == progressive: 9 renders x 2 clips
    check(len(calls) == 18, "18 distinct renders (temporal-attention and progressive share one), got %d"
          % len(calls))
    check(sum("--temporal-attention" in c for c in calls) == 6,
          "the streaming variants and temporal-attention run with --temporal-attention")
    check(all("--poses" in c and "--reference-pose" in c and "--frames 10" in c and "--steps 1" in c for c in calls),
          "engine called with the render arguments")
    report = lines(os.path.join(tmp, "out", "quality.md"))
    text = "\n".join(report)
    for head in ("## Verdict", "## Setup", "## Results", "## Streaming ablation", "## Contact sheet",
                 "## Definitions"):
        check(any(x.startswith(head) for x in report), "report has " + head)
    check("**holds**" in verdict(report, "The model beats the reference copy on face-region PSNR"),
          "face verdict holds for a model close to the ground truth")
    check("**holds**" in verdict(report, "The model beats the reference copy on hand-region PSNR"),
          "hand verdict holds")
    check("**holds**" in verdict(report, "The model beats the reference copy on whole-frame SSIM"),
          "SSIM verdict holds")
    check("**holds**" in verdict(report, "Reference attention shows its gain"), "reference attention shows its gain")
    check("**holds**" in verdict(report, "Hand tokens show their gain"), "hand tokens show their gain")
    check("**holds**" in verdict(report, "The reference init shows its gain"), "reference init shows its gain")
    check("**holds**" in verdict(report, "The reference concat shows its gain"), "reference concat shows its gain")
    check("**holds**" in verdict(report, "Correlated initial noise"), "correlated noise lowers flicker")
    check("**holds**" in verdict(report, "Uniform fusion adds less error at its seams")
          and "**holds**" in verdict(report, "Progressive fusion adds less error at its seams"),
          "the jump at window starts shows in overlap 0 only")
    res = json.load(open(os.path.join(tmp, "cache", "results.json")))
    S = res["summary"]
    check(S["overlap-0"]["paired_seam_excess"] > S["uniform"]["paired_seam_excess"] + 5,
          "paired seam excess: overlap 0 (%.2f) well above uniform (%.2f)"
          % (S["overlap-0"]["paired_seam_excess"], S["uniform"]["paired_seam_excess"]))
    check(S["overlap-0"]["seam_error"] > S["overlap-0"]["nonseam_error"] + 10,
          "overlap 0: seam error (%.2f) well above the other frames (%.2f)"
          % (S["overlap-0"]["seam_error"], S["overlap-0"]["nonseam_error"]))
    check(S["temporal-attention"] == {k: v for k, v in S["progressive"].items() if k != "paired_seam_excess"},
          "temporal-attention and progressive are the same render (the paired seam excess is the ablation's)")
    check(S["temporal-attention"]["flicker"] > S["model"]["flicker"]
          and "Temporal attention (`--temporal-attention`" in text,
          "temporal attention measured and reported (flicker %.2f vs %.2f)"
          % (S["temporal-attention"]["flicker"], S["model"]["flicker"]))
    check(S["reference-copy"]["mad_out"] == 0.0, "reference copy does not move")
    check(S["model"]["psnr"] > 25 and S["reference-copy"]["psnr"] < S["model"]["psnr"] - 3,
          "numbers in range: model %.1f dB, reference copy %.1f dB" % (S["model"]["psnr"], S["reference-copy"]["psnr"]))
    check("| model | %.4f |" % S["model"]["ssim"] in text, "the table shows the summary's numbers")
    sheet = os.path.join(tmp, "out", "quality-sheet.png")
    check(os.path.exists(sheet) and Image.open(sheet).size[0] == 6 * 64, "contact sheet: 6 columns of 64 px")
    check(os.path.exists(os.path.join(tmp, "out", "quality-seams.png")), "seam plot written")
    check("Wall time:" in text, "wall time reported")

    # a second run renders nothing and says the same
    rc, out = quality(tmp, env={"FAKE_QUALITY_LOG": log})
    check(rc == 0 and len(lines(log)) == 18, "second run: all renders come from the cache")
    res2 = json.load(open(os.path.join(tmp, "cache", "results.json")))
    check(res2["summary"] == S, "second run: same numbers")
    check("face-recapture" not in S and "model + face recapture" not in text, "no face variant without --face-build")
    if have_torch():
        face_checks(tmp, log)
    else:
        print("note: no torch for train/face_eval.py; face-recapture checks skipped")
    # other steps: new renders for the engine variants only
    rc, out = quality(tmp, "--steps", "2", "--variants", "reference-copy,model", env={"FAKE_QUALITY_LOG": log})
    check(rc == 0 and len(lines(log)) == 20, "changed settings render again (2 more renders)")
    log2 = os.path.join(tmp, "engine-plain.log")
    rc, out = quality(tmp, "--variants", "reference-copy,model,no-reference-concat", cache="cache-plain",
                      out="out-plain", model=model_copy(tmp, concat=False), env={"FAKE_QUALITY_LOG": log2})
    check(rc == 0 and len(lines(log2)) == 2, "a model without the concat: no-reference-concat left out")

    # a model that learnt nothing: the verdicts say "not yet"
    rc, out = quality(tmp, cache="cache-bad", out="out-bad", env={"FAKE_QUALITY_BAD": "1"})
    report = lines(os.path.join(tmp, "out-bad", "quality.md"))
    check(rc == 0 and "**not yet**" in verdict(report, "The model beats the reference copy on face-region PSNR"),
          "face verdict: not yet for a model that copies the reference")
    check("**not yet**" in verdict(report, "The model beats the reference copy on hand-region PSNR"),
          "hand verdict: not yet")

    # --no-render: only the clips with every render, no engine call
    rc, out = quality(tmp, "--no-render", cache="cache-empty", out="out-empty", engine="/nonexistent/engine")
    check(rc == 1 and "no clip has all its renders" in out, "--no-render without renders: an error")
    shutil.rmtree(os.path.join(tmp, "cache", "renders", "clip_00001"))
    rc, out = quality(tmp, "--no-render", out="out-part", engine="/nonexistent/engine")
    report = lines(os.path.join(tmp, "out-part", "quality.md"))
    part = json.load(open(os.path.join(tmp, "cache", "results.json")))["summary"]
    check(rc == 0 and any(x.startswith("**Incomplete report**") and "clip_00001" in x for x in report),
          "--no-render with one clip missing: an incomplete report naming it")
    check(part["model"]["frames"] == 10 and part["reference-copy"]["frames"] == 10,
          "--no-render: every variant measured on the complete clip only")

    # errors name what failed
    rc, out = quality(tmp, cache="cache-fail", out="out-fail", engine="/bin/false")
    check(rc == 1 and "engine failed" in out and "render" in out, "a failing engine is an error naming the command")
    rc, out = quality(tmp, "--frames", "5", cache="cache-fail", out="out-fail")
    check(rc == 1 and "frames is 10, want 5" in out, "clips made with other settings are not overwritten")
    rc, out = quality(tmp, "--variants", "model,bogus", cache="cache-fail", out="out-fail")
    check(rc == 1 and "unknown variant 'bogus'" in out, "unknown variant is an error")

    # the real engine, when it has `render` and the model is there
    if ENGINE and os.path.isdir(MODEL):
        p = subprocess.run([ENGINE], capture_output=True, text=True)
        if "render" in p.stdout + p.stderr:
            # the engine's build folder, when it has the element: the real facerecapture too
            build = os.path.dirname(os.path.dirname(os.path.abspath(ENGINE)))
            real_face = (os.access(os.path.join(build, "tools", "avatar-meta-launch"), os.X_OK)
                         and os.path.isdir(os.path.join(build, "gst")) and have_torch()
                         and os.path.isdir(os.path.join(MODEL, "face")))
            face = ["--face-build", build, "--variants", "reference-copy,model,face-recapture"] if real_face \
                else ["--variants", "reference-copy,model"]
            rc, out = quality(tmp, "--frames", "4", "--window", "4", "--overlap", "0", "--threads", "2", *face,
                              data="data-real", cache="cache-real", out="out-real", engine=ENGINE, model=MODEL)
            print(out[-2000:])
            check(rc == 0, "real engine: report command runs")
            res = json.load(open(os.path.join(tmp, "cache-real", "results.json")))
            m = res["summary"].get("model", {})
            check(m.get("frames") == 8 and m.get("psnr") is not None and m["psnr"] < 100,
                  "real engine: 8 frames measured, model PSNR %s" % m.get("psnr"))
            if real_face:
                f = res["summary"].get("face-recapture", {})
                check(f.get("frames") == 8 and f.get("face_psnr") is not None and f != m,
                      "real facerecapture: 8 frames measured, face PSNR %s (model %s)"
                      % (f.get("face_psnr"), m.get("face_psnr")))
                check(any(x.startswith("- Face recapture raises face-region PSNR")
                          for x in lines(os.path.join(tmp, "out-real", "quality.md"))),
                      "real facerecapture: the verdict line is there")
            else:
                print("note: %s has no tools/avatar-meta-launch and gst/ (or no torch): real face step skipped"
                      % build)
        else:
            print("note: %s has no render command yet; real-engine run skipped" % ENGINE)
finally:
    shutil.rmtree(tmp, ignore_errors=True)

print("FAILED: %d" % len(failures) if failures else "PASS")
sys.exit(1 if failures else 0)
