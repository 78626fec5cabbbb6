#!/usr/bin/python3
"""Run a model folder through `avatar-engine run` and through train/models.py on the same
inputs; compare (max abs error, relative L2) within a stated tolerance.

  check_engine.py [--engine PATH] [--model models/avatar-default]

Components: unet (hand tokens as encoder_hidden_states, no pose/reference: the engine's
plain UNet path), vae-encode, vae-decode.  Without --model a small random model in the
avatar-default layout is exported to a temporary folder.  Exit 77 when no avatar-engine
binary is found (looked up in --engine, $AVATAR_ENGINE, build*/engine/).
Tolerance (f32 both sides, same f16 weights): max_abs 2e-3, rel_l2 2e-4.
"""
import argparse
import glob
import os
import subprocess
import sys
import tempfile

try:
    import torch
except ImportError:
    print("SKIP: python3-torch is not installed")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import export  # noqa: E402
import models  # noqa: E402
import safetensors_io as st  # noqa: E402
import train_unet  # noqa: E402

TOL = {"max_abs": 2e-3, "rel_l2": 2e-4}


def find_engine(arg):
    cands = [arg, os.environ.get("AVATAR_ENGINE")]
    cands += sorted(glob.glob(os.path.join(os.getcwd(), "engine", "avatar-engine")))
    cands += sorted(glob.glob(os.path.join(os.path.dirname(HERE), "build*", "engine", "avatar-engine")))
    for c in cands:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


def random_model(out):
    unet_cfg, pose_cfg, hand_cfg, vae_cfg = train_unet.tiny_configs()
    torch.manual_seed(0)
    uck = {"configs": {"unet": unet_cfg, "pose_guider": pose_cfg, "hand_encoder": hand_cfg},
           "scaling_factor": 0.5}
    for key, m in zip(("unet", "reference_unet", "pose_guider", "hand_encoder"),
                      train_unet.build(unet_cfg, pose_cfg, hand_cfg)):
        with torch.no_grad():
            for p in m.parameters():
                p.add_(0.05 * torch.randn_like(p))
        uck[key] = m.state_dict()
    vae = models.AutoencoderKL(vae_cfg)
    export.export({"config": vae_cfg, "vae": vae.state_dict()}, uck, out, log=lambda s: None)


def compare(name, got, ref):
    d = got.double() - ref.double()
    max_abs = d.abs().max().item()
    rel = (d.norm() / ref.double().norm().clamp_min(1e-30)).item()
    ok = max_abs <= TOL["max_abs"] and rel <= TOL["rel_l2"]
    print("%s %s: max_abs %.3g rel_l2 %.3g" % ("ok  " if ok else "FAIL", name, max_abs, rel))
    return ok


def run(engine, comp, mdir, inputs, work):
    inp, out = os.path.join(work, comp + ".in.safetensors"), os.path.join(work, comp + ".out.safetensors")
    st.save(inputs, inp)
    p = subprocess.run([engine, "run", comp, "--model", mdir, "--in", inp, "--out", out],
                       capture_output=True, text=True)
    if p.returncode != 0:
        print("FAIL %s: avatar-engine exited %d: %s" % (comp, p.returncode, p.stderr.strip()[-500:]))
        return None
    return st.load(out, to_float32=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine")
    ap.add_argument("--model")
    a = ap.parse_args()
    engine = find_engine(a.engine)
    if engine is None:
        print("SKIP: avatar-engine not built (pass --engine or set AVATAR_ENGINE)")
        return 77
    torch.set_num_threads(2)
    torch.manual_seed(1)
    with tempfile.TemporaryDirectory() as work:
        mdir = a.model
        if mdir is None:
            mdir = os.path.join(work, "model")
            random_model(mdir)
        unet = export.load_folder(models.UNet2DConditionModel, os.path.join(mdir, "unet"))
        vae = export.load_folder(models.AutoencoderKL, os.path.join(mdir, "vae"))
        hands = export.load_folder(models.HandEncoder, os.path.join(mdir, "hand_encoder"))
        lat = unet.config["sample_size"]
        size = lat * 8
        ok = True
        with torch.no_grad():
            z = torch.randn(2, 4, lat, lat)
            ctx = hands(torch.rand(2, 42, 3))
            t = torch.tensor([500.0])
            ref = unet(z, t.long(), ctx)
            got = run(engine, "unet", os.path.join(mdir, "unet"),
                      {"sample": z, "timestep": t, "encoder_hidden_states": ctx}, work)
            ok &= got is not None and compare("unet", got["sample"], ref)
            img = torch.rand(1, 3, size, size) * 2 - 1
            mean, logvar = vae.encode(img)
            got = run(engine, "vae-encode", os.path.join(mdir, "vae"), {"sample": img}, work)
            ok &= got is not None and compare("vae-encode mean", got["mean"], mean)
            ok &= got is not None and compare("vae-encode logvar", got["logvar"], logvar)
            dec = vae.decode(mean)
            got = run(engine, "vae-decode", os.path.join(mdir, "vae"), {"latent": mean}, work)
            ok &= got is not None and compare("vae-decode", got["sample"], dec)
    print("PASS" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
