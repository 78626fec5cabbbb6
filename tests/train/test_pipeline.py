"""End to end on a tiny self-made dataset: VAE training with resume, UNet training with
resume, export to a diffusers-layout folder (f16) and read-back verification."""
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile

try:
    import torch
except ImportError:
    print("SKIP: python3-torch is not installed")
    sys.exit(77)

SRC = os.environ.get("AVATAR_SOURCE_DIR", ".")
sys.path.insert(0, os.path.join(SRC, "train"))
import common  # noqa: E402
import denoise_gap  # noqa: E402
import export  # noqa: E402
import models  # noqa: E402
import safetensors_io as st  # noqa: E402
import train_unet  # noqa: E402
import train_vae  # noqa: E402
import sample  # noqa: E402

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


with tempfile.TemporaryDirectory() as d:
    data = os.path.join(d, "data")
    subprocess.run([sys.executable, os.path.join(SRC, "train", "make_synthetic.py"), data,
                    "--clips", "2", "--frames", "4", "--size", "64"], check=True)
    vrun, urun, out = os.path.join(d, "vae"), os.path.join(d, "unet"), os.path.join(d, "model")
    common_args = ["--data", data, "--size", "64", "--tiny", "--threads", "2", "--batch", "2"]
    check(train_vae.main(common_args + ["--run", vrun, "--steps", "3", "--crop", "32"]) == 0, "train_vae 3 steps")
    check(train_vae.main(common_args + ["--run", vrun, "--steps", "5", "--resume"]) == 0, "train_vae resume to 5")
    vck = common.load_checkpoint(vrun)
    check(vck is not None and vck["step"] == 5, "vae checkpoint at step 5")
    log = open(os.path.join(vrun, "log.txt")).read()
    check("resumed from step 3" in log, "vae log records the resume")
    enc_before = {k: v.clone() for k, v in vck["vae"].items() if k.startswith(("encoder.", "quant_conv."))}
    dec_before = vck["vae"]["decoder.conv_out.weight"].clone()
    check(train_vae.main(common_args + ["--run", vrun, "--steps", "6", "--resume", "--decoder-only"]) == 0,
          "train_vae --decoder-only resume to 6")
    vck = common.load_checkpoint(vrun)
    check(all(torch.equal(vck["vae"][k], v) for k, v in enc_before.items())
          and not torch.equal(vck["vae"]["decoder.conv_out.weight"], dec_before),
          "--decoder-only keeps the encoder, trains the decoder")
    check(train_vae.main(common_args + ["--run", vrun, "--steps", "7", "--resume", "--norm-groups", "2"]) == 0,
          "train_vae --norm-groups 2 resume to 7")
    vck = common.load_checkpoint(vrun)
    check(vck["config"]["norm_num_groups"] == 2 and vck["step"] == 7, "vae checkpoint keeps the new group count")
    check(train_vae.main(common_args + ["--run", vrun, "--steps", "8", "--resume"]) == 0, "train_vae resume to 8")
    check(common.load_checkpoint(vrun)["config"]["norm_num_groups"] == 2, "a resumed vae keeps its group count")

    check(train_unet.main(common_args + ["--vae-run", vrun, "--run", urun, "--steps", "3"]) == 0,
          "train_unet 3 steps")
    check(train_unet.main(common_args + ["--vae-run", vrun, "--run", urun, "--steps", "4", "--resume"]) == 0,
          "train_unet resume to 4")
    uck = common.load_checkpoint(urun)
    check(uck is not None and uck["step"] == 4, "unet checkpoint at step 4")
    check(uck is not None and torch.isfinite(torch.tensor(uck["ema_loss"])).item(), "finite loss")
    check(uck is not None and uck["scaling_factor"] > 0, "scaling factor from the data")
    old_scale = uck["scaling_factor"]
    data2 = os.path.join(d, "data2")
    shutil.copytree(data, data2)
    args2 = [a if a != data else data2 for a in common_args] + ["--vae-run", vrun, "--run", urun, "--resume"]
    check(train_unet.main(args2 + ["--steps", "5"]) == 1,
          "a latent cache of another --data folder is an error, not silently reused")
    lat2 = os.path.join(d, "latents2.pt")
    check(train_unet.main(args2 + ["--steps", "5", "--latents", lat2, "--cache-only"]) == 0
          and os.path.exists(lat2) and common.load_checkpoint(urun)["step"] == 4,
          "--cache-only encodes the cache of a new --data folder and trains nothing")
    check(abs(torch.load(lat2)["scaling_factor"] - old_scale) < 1e-12,
          "the new cache keeps the resumed run's scaling_factor")
    check(train_vae.main(common_args + ["--run", vrun, "--steps", "9", "--resume"]) == 0, "train_vae resume to 9")
    cache_mtime = os.path.getmtime(os.path.join(urun, "latents.pt"))
    check(train_unet.main(common_args + ["--vae-run", vrun, "--run", urun, "--steps", "5", "--resume",
                                         "--norm-groups", "2", "--new-latents"]) == 0,
          "train_unet resume to 5 with --norm-groups 2 --new-latents")
    uck = common.load_checkpoint(urun)
    check(uck["configs"]["unet"]["norm_num_groups"] == 2, "unet checkpoint keeps the new group count")
    check(os.path.getmtime(os.path.join(urun, "latents.pt")) > cache_mtime, "--new-latents re-encodes the latents")
    check(uck["scaling_factor"] != old_scale, "--new-latents measures a new scaling factor (%.5f vs %.5f)"
          % (uck["scaling_factor"], old_scale))

    check(train_unet.main(common_args + ["--vae-run", vrun, "--run", urun, "--steps", "6", "--resume",
                                         "--reference-concat"]) == 0,
          "train_unet resume to 6 with --reference-concat")
    check(train_unet.main(common_args + ["--vae-run", vrun, "--run", urun, "--steps", "7", "--resume"]) == 0,
          "train_unet resume to 7 (a concat run stays one)")
    check(train_unet.main(common_args + ["--vae-run", vrun, "--run", urun, "--steps", "8", "--resume",
                                         "--frames", "2"]) == 0,
          "train_unet resume to 8 with --frames 2 (groups of 2 frames, all-frame attention)")
    try:
        rc = train_unet.main(common_args + ["--vae-run", vrun, "--run", urun, "--steps", "9", "--resume",
                                            "--frames", "3"])
    except SystemExit as e:
        rc = e.code
    check(rc == 2, "--frames that does not divide --batch is a usage error")
    before = common.load_checkpoint(urun)["hand_encoder"]["linear_1.weight"]
    check(train_unet.main(common_args + ["--vae-run", vrun, "--run", urun, "--steps", "9", "--resume",
                                         "--hand-frequencies", "2"]) == 0,
          "train_unet resume to 9 with --hand-frequencies 2")
    uck = common.load_checkpoint(urun)
    after = uck["hand_encoder"]["linear_1.weight"]
    check(uck["configs"]["hand_encoder"]["num_frequencies"] == 2 and after.shape[1] == 2 + 4 * 2
          and uck["weight_ema"]["hand_encoder"]["linear_1.weight"].shape == after.shape,
          "--hand-frequencies 2: config, weights and weight EMA take 2 frequencies (%s)" % (tuple(after.shape),))
    # one step of lr 1e-3 moves the kept columns by about lr; they came from the 4-frequency run
    check((after[:, 4:6] - before[:, 6:8]).abs().max().item() < 0.01,
          "--hand-frequencies 2 keeps the weights of the kept frequencies (cos x columns)")
    check(uck["configs"]["unet"]["in_channels"] == 8 and uck["unet"]["conv_in.weight"].shape[1] == 8
          and uck["reference_unet"]["conv_in.weight"].shape[1] == 4,
          "reference concat: unet conv_in takes 8 channels, the reference unet 4")
    ema = uck["weight_ema"]
    check(ema is not None and ema["updates"] == 9 and ema["unet"]["conv_in.weight"].shape[1] == 8,
          "weight EMA resumed through every run (9 updates, widened with the UNet)")
    check(not torch.equal(ema["unet"]["conv_in.weight"], uck["unet"]["conv_in.weight"]),
          "the weight EMA differs from the last step's weights")

    rc = export.main(["--vae-run", vrun, "--unet-run", urun, "--out", out, "--size", "64",
                      "--references", data, "--num-references", "1"])
    check(rc == 0, "export + read-back verification")
    check(json.load(open(os.path.join(out, "training.json")))["unet_weights"] == "ema", "training.json: EMA weights")
    w = st.load(os.path.join(out, "unet", "diffusion_pytorch_model.safetensors"))
    check(torch.equal(w["conv_in.weight"], ema["unet"]["conv_in.weight"].half()), "export writes the EMA weights")
    last = os.path.join(d, "export-last")
    check(export.main(["--vae-run", vrun, "--unet-run", urun, "--out", last, "--size", "64",
                       "--weights", "last"]) == 0, "export --weights last")
    w = st.load(os.path.join(last, "unet", "diffusion_pytorch_model.safetensors"))
    check(torch.equal(w["conv_in.weight"], uck["unet"]["conv_in.weight"].half()),
          "export --weights last writes the last step's weights")
    for sub in ("vae", "unet", "reference_unet", "pose_guider", "hand_encoder"):
        w = st.load(os.path.join(out, sub, "diffusion_pytorch_model.safetensors"))
        check(all(v.dtype == torch.float16 for v in w.values()), "%s weights are F16" % sub)
        cfg = json.load(open(os.path.join(out, sub, "config.json")))
        check("_class_name" in cfg, "%s config has _class_name" % sub)
    w = st.load(os.path.join(out, "unet", "diffusion_pytorch_model.safetensors"))
    check("up_blocks.0.attentions.0.transformer_blocks.0.ff.net.0.proj.weight" in w
          and "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight" in w,
          "diffusers key names in unet")
    sched = json.load(open(os.path.join(out, "scheduler_config.json")))
    check(sched["_class_name"] == "DDIMScheduler" and sched["beta_schedule"] == "scaled_linear"
          and sched["num_train_timesteps"] == 1000, "scheduler_config.json")
    vcfg = json.load(open(os.path.join(out, "vae", "config.json")))
    check(abs(vcfg["scaling_factor"] - uck["scaling_factor"]) < 1e-9, "vae scaling_factor exported")
    check(os.path.exists(os.path.join(out, "references", "identity_00.png")), "reference identity bundled")
    check(json.load(open(os.path.join(out, "unet", "config.json")))["in_channels"] == 8
          and json.load(open(os.path.join(out, "reference_unet", "config.json")))["in_channels"] == 4,
          "exported configs: unet in_channels 8 (concat), reference_unet 4")

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = denoise_gap.main(["--run", urun, "--vae-run", vrun, "--heldout", data2, "--size", "64",
                               "--samples", "3"])
    rows = [line.split("|") for line in buf.getvalue().splitlines() if line[:3] in ("| 1", "| 3", "| 5", "| 7", "| 9")]
    check(rc == 0 and len(rows) == 5 and all(float(r[2]) > 0 and float(r[3]) > 0 for r in rows),
          "denoise_gap: x0 error on training and held-out clips at 5 timesteps (%d rows)" % len(rows))
    check(all(float(r[2]) == float(r[3]) for r in rows),
          "denoise_gap: the same clips as training and held-out set give the same error")

    sheet = os.path.join(d, "sheet.png")
    rc = sample.main(["--model", out, "--clip", os.path.join(data, "clip_00000"), "--frames", "2",
                      "--stride", "1", "--steps", "3", "--out", sheet])
    check(rc == 0 and os.path.getsize(sheet) > 0, "sample.py: DDIM + CFG + reference attention contact sheet")
    ts = sample.ddim_timesteps(sched, 4)
    check(ts == [751, 501, 251, 1], "DDIM leading timesteps %s" % ts)

# a 4-channel UNet widened to take the reference concat computes exactly what it did
ucfg = train_unet.tiny_configs()[0]
narrow = models.UNet2DConditionModel(ucfg)
wide = models.UNet2DConditionModel(dict(ucfg, in_channels=8))
wide.load_state_dict(models.widen_conv_in(narrow.state_dict(), 8))
with torch.no_grad():
    z, ctx = torch.randn(2, 4, 8, 8), torch.randn(2, 3, ucfg["cross_attention_dim"])
    d = (wide(torch.cat([z, torch.randn_like(z)], 1), 500, ctx) - narrow(z, 500, ctx)).abs().max().item()
check(d == 0.0, "widen_conv_in keeps the UNet's output (max diff %g)" % d)

# a hand encoder given more frequencies (zero weights for the new ones) computes what it did
hcfg = train_unet.tiny_configs()[2]
few = models.HandEncoder(hcfg)
more = models.HandEncoder(dict(hcfg, num_frequencies=hcfg["num_frequencies"] + 3))
state = dict(few.state_dict())
state["linear_1.weight"] = models.resize_hand_frequencies(state["linear_1.weight"], hcfg["num_frequencies"],
                                                          hcfg["num_frequencies"] + 3)
more.load_state_dict(state)
with torch.no_grad():
    kp = torch.rand(2, hcfg["num_keypoints"], 3)
    d = (more(kp) - few(kp)).abs().max().item()
check(d < 1e-6, "resize_hand_frequencies keeps the hand tokens when frequencies are added (max diff %g)" % d)


class _Drop:
    def __init__(self, ref, module, pose):
        self.drop_ref, self.drop_module, self.drop_pose = ref, module, pose


# WeightEMA: decay min(d, (1 + n) / (10 + n)): 0.1 at the first update, then 2/11
lin = torch.nn.Linear(2, 1)
wema = train_unet.WeightEMA([lin], 0.999)
w0 = lin.weight.detach().clone()
with torch.no_grad():
    lin.weight.add_(1.0)
wema.update([lin])
check(torch.allclose(wema.mods[0].weight, 0.1 * w0 + 0.9 * (w0 + 1)), "weight EMA: first update, decay 0.1")
wema.update([lin])
check(torch.allclose(wema.mods[0].weight, (2 / 11) * (0.1 * w0 + 0.9 * (w0 + 1)) + (9 / 11) * (w0 + 1)),
      "weight EMA: second update, decay 2/11")
check(wema.state()["updates"] == 2 and train_unet.WeightEMA([lin], 0.5, {"unet": lin.state_dict(), "updates": 2}).n == 2,
      "weight EMA state carries the update count")

keeps = train_unet.condition_keeps(64, _Drop(0.0, 0.0, 0.0))
check(all(bool(k.all()) for k in keeps), "no dropout keeps every condition")
keeps = train_unet.condition_keeps(64, _Drop(1.0, 0.0, 0.0))
check(not any(bool(k.any()) for k in keeps[:3]) and bool(keeps[3].all()),
      "unconditional samples lose reference attention, hand tokens and concat, not the pose")
torch.manual_seed(3)
keeps = train_unet.condition_keeps(4000, _Drop(0.0, 0.5, 0.0))
check(all(0.4 < k.float().mean().item() < 0.6 for k in keeps[:3])
      and (keeps[0] != keeps[1]).any().item(), "--drop-module drops each module alone, independently")
keeps = train_unet.condition_keeps(4000, _Drop(0.3, 0.3, 0.5), frames=4)
check(all(bool((k.view(-1, 4) == k.view(-1, 4)[:, :1]).all()) and 0.3 < k.float().mean().item() < 0.7
          for k in keeps[:3]) and not bool((keeps[3].view(-1, 4) == keeps[3].view(-1, 4)[:, :1]).all()),
      "--frames 4: reference, hand tokens and concat dropped per group, the pose per frame")

print("FAILED: %d" % len(failures) if failures else "PASS")
sys.exit(1 if failures else 0)
