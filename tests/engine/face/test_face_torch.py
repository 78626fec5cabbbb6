#!/usr/bin/python3
"""engine/face-align.c + engine/face-model.c (through tests/engine/face/face-run) against
train/face_align.py + train/face_models.py on a small random face model.

  test_face_torch.py FACE_RUN_EXE

Checks, on the bundled reference identity_00 (a world frame with its face key points) and on
the same face moved half out of the frame: the crop transform, aligned crop, hard and soft
masks, heatmap, identity vector, conditioning tokens, the generated crop after 1 and 3 DDIM
steps, and the blended frame; and that a face with a missing point is left alone.  Exits 77
(skip) without torch.
"""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "train"))

try:
    import numpy as np
    import torch
    from PIL import Image
except ImportError as e:  # pragma: no cover
    print("skip: %s" % e)
    sys.exit(77)

import check_engine  # noqa: E402  (noise_fill: the engine's noise in numpy)
import face_align as fa  # noqa: E402
import face_export  # noqa: E402
import face_models as fm  # noqa: E402
import models  # noqa: E402
import safetensors_io as st  # noqa: E402

FAILS = []


def check(name, got, want, tol):
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    if got.shape != want.shape:
        FAILS.append("%s: shape %s != %s" % (name, got.shape, want.shape))
        print("FAIL", FAILS[-1])
        return
    err = float(np.abs(got - want).max()) if got.size else 0.0
    ok = err <= tol
    print("%s %s: max_abs %.3g (tol %g)" % ("ok  " if ok else "FAIL", name, err, tol))
    if not ok:
        FAILS.append(name)


def tiny_model(seed):
    torch.manual_seed(seed)
    unet_cfg = models.unet_config(
        in_channels=10, out_channels=3, block_out_channels=[8, 16], layers_per_block=1,
        attention_head_dim=2, cross_attention_dim=16, norm_num_groups=4, sample_size=16,
        down_block_types=["DownBlock2D", "CrossAttnDownBlock2D"],
        up_block_types=["CrossAttnUpBlock2D", "UpBlock2D"])
    cond_cfg = dict(fm.CONDITIONER, texture_tokens=16, identity_dim=8, identity_tokens=2,
                    cross_attention_dim=16)
    id_cfg = dict(fm.IDENTITY, image_size=16, block_out_channels=[4, 8], norm_num_groups=2,
                  embedding_dim=8)
    unet = models.UNet2DConditionModel(unet_cfg)
    cond = fm.FaceConditioner(cond_cfg)
    ident = fm.FaceIdentityEncoder(id_cfg)
    # random weights everywhere (zero-initialised biases would hide key mix-ups)
    with torch.no_grad():
        for m in (unet, cond, ident):
            for p in m.parameters():
                p.add_(torch.randn_like(p) * 0.05)
    return unet.eval(), cond.eval(), ident.eval()


def run_case(exe, folder, mods, img, face, steps, strength, tmp, tag):
    unet, cond, ident = mods
    size = unet.config["sample_size"]
    texture = torch.randn(1, 4, 4, 4)
    id_in = torch.randn(1, 3, 16, 16).clamp(-1, 1)
    inp = os.path.join(tmp, "in_%s.safetensors" % tag)
    out = os.path.join(tmp, "out_%s.safetensors" % tag)
    st.save({"frame": torch.from_numpy(img.astype(np.float32)),
             "face": torch.from_numpy(face.astype(np.float32)),
             "texture": texture[0], "id_input": id_in,
             "params": torch.tensor([steps, 7, strength, 0], dtype=torch.float32)}, inp)
    r = subprocess.run([exe, folder, inp, out], capture_output=True, text=True)
    if r.returncode != 0:
        FAILS.append("%s: face-run failed: %s" % (tag, r.stderr.strip()))
        print("FAIL", FAILS[-1])
        return None
    got = st.load(out)
    al = fm.ALIGN
    confident = fa.face_confident(face, al["min_confidence"])
    check(tag + " confident", got["confident"].numpy(), [1.0 if confident else 0.0], 0)
    with torch.no_grad():
        e = ident(id_in)
        ctx = cond(texture, e)
    check(tag + " identity", got["identity"].numpy(), e[0].numpy(), 1e-5)
    check(tag + " context", got["context"].numpy(), ctx[0].numpy(), 1e-5)
    if not confident:
        check(tag + " frame untouched", got["blended"].numpy(), img, 0)
        return got
    tr = fa.fit_transform(face, al["template"], size)
    check(tag + " transform", got["transform"].numpy(), tr, 1e-4 * max(1.0, np.abs(tr).max()))
    crop, masked, hard, soft, heat = fa.prepare(img, face, tr, size, al)
    check(tag + " crop", got["crop"].numpy(), crop, 1e-4)
    check(tag + " hard mask", got["hard"].numpy(), hard, 0)
    check(tag + " soft mask", got["soft"].numpy(), soft, 1e-5)
    check(tag + " heatmap", got["heat"].numpy(), heat, 1e-5)
    noise = check_engine.noise_fill(7, 0, 0, 3 * size * size).reshape(1, 3, size, size)
    with torch.no_grad():
        gen = fm.ddim_sample(unet, torch.from_numpy(masked)[None], torch.from_numpy(hard)[None],
                             torch.from_numpy(heat)[None], ctx, steps,
                             torch.from_numpy(noise.astype(np.float32)))
    check(tag + " generated (%d steps)" % steps, got["generated"].numpy(), gen[0].numpy(), 2e-4)
    want = fa.blend(img, ((gen[0].numpy().transpose(1, 2, 0) + 1) * 127.5), soft[0], tr, strength)
    diff = np.abs(got["blended"].numpy() - want.astype(np.float64))
    # rounding of values that land on .5 may differ by one level
    check(tag + " blended", got["blended"].numpy(), want, 1)
    frac = float((diff > 0).mean())
    print("     blended: %.4f of the values differ by one level" % frac)
    if frac > 0.01:
        FAILS.append(tag + " blended: too many off-by-one values")
    outside = np.array_equal(got["blended"].numpy()[-2:, -2:], img[-2:, -2:])
    if not outside:
        FAILS.append(tag + " blended: a far corner changed")
    return got


def main():
    if len(sys.argv) != 2:
        print("usage: test_face_torch.py FACE_RUN_EXE")
        return 2
    exe = sys.argv[1]
    refdir = os.path.join(ROOT, "models", "avatar-default", "references")
    img = np.asarray(Image.open(os.path.join(refdir, "identity_00.png")).convert("RGB"))
    with open(os.path.join(refdir, "identity_00.json")) as f:
        doc = json.load(f)
    face = fa.face_array(doc["people"][0]["face_keypoints_2d"])
    torch.set_num_threads(1)
    mods = tiny_model(3)
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "face")
        face_export.write(folder, *mods, crop_size=16, texture_size=32, dtype_half=False)
        run_case(exe, folder, mods, img, face, 1, 1.0, tmp, "centre")
        run_case(exe, folder, mods, img, face, 3, 0.7, tmp, "centre-3steps")
        # the face half out of the frame on the left (crop partly outside)
        moved = face.copy()
        moved[:, 0] -= float(face[:68, 0].mean())
        run_case(exe, folder, mods, img, moved, 1, 1.0, tmp, "border")
        # a missing point: not a confident face, frame untouched
        broken = face.copy()
        broken[10, 2] = 0.0
        run_case(exe, folder, mods, img, broken, 1, 1.0, tmp, "missing-point")
    if FAILS:
        print("%d failure(s): %s" % (len(FAILS), ", ".join(FAILS)))
        return 1
    print("all face checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
