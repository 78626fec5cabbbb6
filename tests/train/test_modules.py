"""train/models.py: reference attention, pose guider, hand encoder, config errors."""
import os
import sys

try:
    import torch
except ImportError:
    print("SKIP: python3-torch is not installed")
    sys.exit(77)

sys.path.insert(0, os.path.join(os.environ.get("AVATAR_SOURCE_DIR", "."), "train"))
import models  # noqa: E402
import train_unet  # noqa: E402

torch.manual_seed(0)
torch.set_num_threads(2)
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


unet_cfg, pose_cfg, hand_cfg, _ = train_unet.tiny_configs()
unet, ref_unet, guider, hands = train_unet.build(unet_cfg, pose_cfg, hand_cfg)
for m in (unet, ref_unet):
    with torch.no_grad():
        for p in m.parameters():  # make zero-initialised paths non-trivial
            p.add_(0.05 * torch.randn_like(p))
    m.eval()
bank = models.ReferenceBank(ref_unet, unet)
z = torch.randn(3, 4, 8, 8)
ref = torch.randn(3, 4, 8, 8)
ctx = torch.randn(3, 42, hand_cfg["cross_attention_dim"])

with torch.no_grad():
    plain = unet(z, 500, ctx)
    bank.write(ref, ctx)
    nblocks = len(bank.den_blocks)
    check(nblocks == len(unet.transformer_blocks()) and nblocks > 0, "bank covers %d blocks" % nblocks)
    check(all(len(b.bank) == 1 and b.bank[0].shape[0] == 3 for b in bank.den_blocks),
          "one norm1 state per block written")
    bank.set_read(True)
    with_ref = unet(z, 500, ctx)
    bank.set_read(True, torch.tensor([False, False, False]))
    dropped = unet(z, 500, ctx)
    bank.set_read(True, torch.tensor([True, False, True]))
    mixed = unet(z, 500, ctx)
    bank.clear()
check((dropped - plain).abs().max().item() < 1e-5, "dropped reference == plain self-attention")
check((with_ref - plain).abs().max().item() > 1e-3, "reference attention changes the output")
check((mixed[0] - with_ref[0]).abs().max().item() < 1e-5 and (mixed[1] - plain[1]).abs().max().item() < 1e-5,
      "per-sample reference dropout")

# the read path is exactly attn1(norm1(x), [norm1(x), bank]) for one block
blk = unet.transformer_blocks()[0]
x = torch.randn(2, 16, blk.norm1.normalized_shape[0])
r = torch.randn(2, 5, blk.norm1.normalized_shape[0])
c = torch.randn(2, 7, hand_cfg["cross_attention_dim"])
with torch.no_grad():
    blk.bank, blk.ref_mode, blk.ref_keep = [r], "read", None
    y = blk(x, c)
    blk.bank, blk.ref_mode = [], None
    n = blk.norm1(x)
    h = blk.attn1(n, torch.cat([n, r], 1)) + x
    h = blk.attn2(blk.norm2(h), c) + h
    want = blk.ff(blk.norm3(h)) + h
check((y - want).abs().max().item() < 1e-6, "block read path = attn1 over [own, reference] tokens")

# one reference image for a batch of frames
with torch.no_grad():
    bank.write(ref[:1], ctx[:1])
    bank.set_read(True)
    one = unet(z, 500, ctx)
    bank.write(ref[:1].expand(3, -1, -1, -1), ctx[:1].expand(3, -1, -1))
    bank.set_read(True)
    rep = unet(z, 500, ctx)
    bank.clear()
check((one - rep).abs().max().item() < 1e-5, "a batch-1 reference serves every frame")

# all-frame attention: a batch of 2 groups x 2 frames = each group run alone with frames 2,
# reference per group, dropout per group; frames 2 differs from per-frame attention
z4, ctx4, ref2 = torch.randn(4, 4, 8, 8), torch.randn(4, 42, hand_cfg["cross_attention_dim"]), torch.randn(2, 4, 8, 8)
with torch.no_grad():
    unet.set_frames(2)
    bank.write(ref2, ctx4[::2])
    bank.set_read(True, torch.tensor([True, True, False, False]))
    both = unet(z4, 500, ctx4)
    bank.write(ref2[:1], ctx4[:1])
    bank.set_read(True)
    g0 = unet(z4[:2], 500, ctx4[:2])
    bank.write(ref2[1:], ctx4[2:3])
    bank.set_read(False)
    g1 = unet(z4[2:], 500, ctx4[2:])
    unet.set_frames(1)
    bank.write(ref2[:1], ctx4[:1])
    bank.set_read(True)
    per_frame = unet(z4[:2], 500, ctx4[:2])
    bank.clear()
check((both[:2] - g0).abs().max().item() < 1e-5 and (both[2:] - g1).abs().max().item() < 1e-5,
      "all-frame attention: groups are independent, reference and its dropout per group")
check((g0 - per_frame).abs().max().item() > 1e-4, "all-frame attention differs from per-frame attention")

# pose guider: 1/8 resolution, zero output at init (conv_out zero-initialised)
g = models.PoseGuider(pose_cfg)
out = g(torch.rand(2, 3, 64, 64))
check(tuple(out.shape) == (2, pose_cfg["conditioning_embedding_channels"], 8, 8), "pose guider shape %s" % (tuple(out.shape),))
check(out.abs().max().item() == 0.0, "pose guider conv_out zero-initialised")
keys = sorted(g.state_dict())
check(keys[0] == "blocks.0.bias" and "conv_in.weight" in keys and "conv_out.weight" in keys
      and len([k for k in keys if k.startswith("blocks.")]) == 12, "pose guider key names")

# hand encoder: missing / low-confidence points use the missing embedding
he = models.HandEncoder(hand_cfg).eval()
kp = torch.rand(1, 42, 3)
kp[0, :, 2] = 1.0
kp[0, 3, 2] = 0.0
kp[0, 4, 2] = 0.2  # below confidence_threshold 0.3
with torch.no_grad():
    tok = he(kp)
    miss = he.norm_out(he.missing_embedding + he.keypoint_embedding.weight)
check(tuple(tok.shape) == (1, 42, hand_cfg["cross_attention_dim"]), "hand tokens shape")
check((tok[0, 3] - miss[3]).abs().max().item() < 1e-6, "zero confidence -> missing embedding")
check((tok[0, 4] - miss[4]).abs().max().item() < 1e-6, "confidence below threshold -> missing embedding")
check((tok[0, 5] - miss[5]).abs().max().item() > 1e-3, "confident point -> position features")
pe = he.positional_encoding(torch.tensor([[0.5, 0.25]]))
nf = hand_cfg["num_frequencies"]
check(pe.shape[-1] == 2 + 4 * nf and abs(pe[0, 2].item() - 1.0) < 1e-6 and abs(pe[0, 2 + nf].item()) < 1e-6
      and abs(pe[0, 2 + 2 * nf].item() - 0.70710678) < 1e-6,
      "positional encoding layout [x, y, sin x.., cos x.., sin y.., cos y..]")

# unsupported config is an error naming config.json and the field
try:
    models.UNet2DConditionModel(dict(unet_cfg, down_block_types=["DownBlock2D", "SimpleCrossAttnDownBlock2D"]))
    check(False, "unsupported block type raises")
except ValueError as e:
    check("config.json" in str(e) and "SimpleCrossAttnDownBlock2D" in str(e), "unsupported block type: %s" % e)

print("FAILED: %d" % len(failures) if failures else "PASS")
sys.exit(1 if failures else 0)
