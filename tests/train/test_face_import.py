"""train/face_import.py: a tiny random face model exported by face_export.py, imported into
run folders, resumed by face_train.py and exported again (docs/face-model.md, "Resuming from
the committed weights").  Checks that the state dicts, configs, steps and wall times round-trip,
that --resume starts from the imported weights (a learning rate of 0 keeps them: the new
checkpoint equals the import), that the missing CosFace head starts from the references'
identity vectors, and that export after import gives the same weight files byte for byte.
Synthetic crops (no avatar-world needed); a few seconds on one thread.

Exits 77 (skip) without torch or numpy."""
import json
import os
import sys
import tempfile

try:
    import numpy  # noqa: F401  (the train modules need it)
    import torch
except ImportError as e:
    print("SKIP: %s" % e)
    sys.exit(77)

SRC = os.environ.get("AVATAR_SOURCE_DIR",
                     os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "train"))
import common  # noqa: E402
import export  # noqa: E402
import face_export  # noqa: E402
import face_import  # noqa: E402
import face_models as fm  # noqa: E402
import face_train  # noqa: E402
import models  # noqa: E402

SIZE = 16
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k].float(), b[k].float()) for k in a)


def tiny_model():
    unet_cfg, cond_cfg, ident_cfg = face_train.tiny_configs()
    ident_cfg = dict(ident_cfg, image_size=SIZE)
    cond_cfg = dict(cond_cfg, identity_dim=ident_cfg["embedding_dim"],
                    texture_tokens=(fm.TEXTURE_SIZE // 8) ** 2)
    torch.manual_seed(1)
    return (models.UNet2DConditionModel(dict(unet_cfg, sample_size=SIZE)),
            fm.FaceConditioner(cond_cfg), fm.FaceIdentityEncoder(ident_cfg))


def synthetic_data(path, n_clips=3, per_clip=4):
    """What face_data.build writes, filled with random crops (training only reads these)."""
    g = torch.Generator().manual_seed(2)
    n = n_clips * per_clip
    hard = (torch.rand(n, 1, SIZE, SIZE, generator=g) > 0.5).to(torch.uint8)
    data = {"crop": torch.randint(0, 256, (n, 3, SIZE, SIZE), generator=g, dtype=torch.uint8),
            "hard": hard, "soft": hard.half(),
            "heat": torch.rand(n, 3, SIZE, SIZE, generator=g).half(),
            "clip": torch.arange(n_clips).repeat_interleave(per_clip),
            "clips": [{"name": "clip_%d" % i, "identity": i, "frames": per_clip,
                       "texture": torch.randn(4, 16, 16, generator=g).half(),
                       "ref_id_input": (torch.rand(3, SIZE, SIZE, generator=g) * 2 - 1).half()}
                      for i in range(n_clips)],
            "size": SIZE, "align": dict(fm.ALIGN)}
    torch.save(data, path)
    return data


def last_log_lines(run, n=4):
    with open(os.path.join(run, "log.txt")) as f:
        return "".join(f.readlines()[-n:])


def main():
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        face = os.path.join(tmp, "model", "face")
        unet, cond, ident = face_export.write(face, *tiny_model(), SIZE, fm.TEXTURE_SIZE,
                                              log=lambda *_: None)
        training = {"identity_steps": 1500, "identity_wall_s": 2042, "face_steps": 2011,
                    "face_wall_s": 4138, "face_ema_loss": 0.0875}
        common.write_json(os.path.join(face, "training.json"), training)

        id_run, face_run = os.path.join(tmp, "identity"), os.path.join(tmp, "unet")
        args = ["--face", face, "--identity-run", id_run, "--face-run", face_run]
        check(face_import.main(args) == 0, "face_import.py seeds both runs")
        ick, fck = common.load_checkpoint(id_run), common.load_checkpoint(face_run)
        check(same_state(ick["identity_encoder"], ident.state_dict()),
              "identity encoder state dict round-trips (f16 weights)")
        check(same_state(fck["unet"], unet.state_dict()), "face UNet state dict round-trips")
        check(same_state(fck["conditioner"], cond.state_dict()),
              "conditioner state dict round-trips")
        check(fck["configs"]["unet"] == unet.config and fck["configs"]["conditioner"] == cond.config
              and ick["configs"]["identity_encoder"] == ident.config, "configs round-trip")
        check((ick["step"], ick["wall"], fck["step"], fck["wall"], fck["identity_step"])
              == (1500, 2042, 2011, 4138, 1500), "steps and wall times from training.json")
        check("opt" not in ick and "opt" not in fck and "head" not in ick,
              "no optimizer state and no CosFace head (not exported)")
        check(face_import.main(args) == 1, "an existing checkpoint is kept without --force")
        check(face_import.main(args + ["--force"]) == 0, "--force overwrites")

        bad = os.path.join(tmp, "bad")
        face_export.write(bad, unet, cond, ident, SIZE, fm.TEXTURE_SIZE, log=lambda *_: None)
        common.write_json(os.path.join(bad, "training.json"), {"face_steps": 3})
        rc = face_import.main(["--face", bad, "--identity-run", os.path.join(tmp, "b1"),
                               "--face-run", os.path.join(tmp, "b2")])
        check(rc == 1 and not os.path.exists(os.path.join(tmp, "b1", "checkpoint.pt")),
              "training.json without the identity steps: error, nothing written")

        # resume both stages from the import; lr 0 keeps the weights, so the checkpoints
        # face_train.py writes hold exactly what it loaded
        data_path = os.path.join(tmp, "data.pt")
        data = synthetic_data(data_path)
        common_args = ["--data", data_path, "--threads", "1", "--batch", "4", "--lr", "0",
                       "--resume"]
        rc = face_train.main(["--stage", "identity", "--run", id_run, "--steps", "1502"]
                             + common_args)
        ick2 = common.load_checkpoint(id_run)
        log = last_log_lines(id_run, 6)
        check(rc == 0 and ick2["step"] == 1502 and "resumed from step 1500" in log,
              "identity stage resumes at the imported step (%s)" % ick2["step"])
        check(same_state(ick2["identity_encoder"], ident.state_dict()),
              "identity stage started from the imported encoder")
        refs = torch.stack([c["ref_id_input"].float() for c in data["clips"]])
        with torch.no_grad():
            e = ident(refs)
            w = ick2["head"]["w"]
            logits = e @ torch.nn.functional.normalize(w, dim=1).t()
        check("no CosFace head" in log and torch.allclose(w, e, atol=1e-6)
              and torch.equal(logits.argmax(1), torch.arange(len(data["clips"]))),
              "the CosFace head starts at the references' identity vectors")
        rc = face_train.main(["--stage", "face", "--run", face_run, "--identity-run", id_run,
                              "--steps", "2012"] + common_args)
        fck2 = common.load_checkpoint(face_run)
        check(rc == 0 and fck2["step"] == 2012
              and "resumed from step 2011" in last_log_lines(face_run, 6),
              "face stage resumes at the imported step (%s)" % fck2["step"])
        check(same_state(fck2["unet"], unet.state_dict())
              and same_state(fck2["conditioner"], cond.state_dict()),
              "face stage started from the imported UNet and conditioner")

        # export the resumed runs: the same weight files as the folder they came from
        again = os.path.join(tmp, "again")
        check(face_export.main(["--identity-run", id_run, "--face-run", face_run,
                                "--out", again]) == 0, "export of the resumed runs verified")
        for part in ("unet", "conditioner", "identity_encoder"):
            f = os.path.join(part, export.WEIGHTS)
            with open(os.path.join(face, f), "rb") as x, open(os.path.join(again, f), "rb") as y:
                check(x.read() == y.read(), "%s: export -> import -> export is byte-identical" % f)
        with open(os.path.join(again, "training.json")) as f:
            tj = json.load(f)
        check(tj["identity_steps"] == 1502 and tj["face_steps"] == 2012,
              "training.json counts on from the imported steps")

        # a checkpoint that does not fit the data is an error naming the file, not a crash
        small = dict(data, size=8)
        torch.save(small, os.path.join(tmp, "small.pt"))
        rc = face_train.main(["--stage", "identity", "--run", id_run, "--steps", "1503",
                              "--data", os.path.join(tmp, "small.pt"), "--threads", "1",
                              "--resume"])
        check(rc == 2 and "image_size" in last_log_lines(id_run, 1),
              "identity encoder of another crop size: error naming image_size")
    print("%d failure(s)" % len(failures) if failures else "all face import checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
