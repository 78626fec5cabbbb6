"""The face recapture model (facerecapture, issue 8) in PyTorch; spec in docs/face-model.md.

Three parts, each a diffusers-style folder under MODEL/face/ that engine/face-model.c loads:
  unet/              UNet2DConditionModel (train/models.py) in pixel space on the aligned crop:
                     input [x_t (3), masked crop (3), mask (1), landmark heatmap (3)],
                     prediction_type "sample" (x0), DDIM trailing spacing (scheduler_config.json)
  conditioner/       FaceConditioner: reference texture tokens (VAE latent of the aligned reference
                     face, one token per latent pixel) + identity tokens (identity vector) ->
                     encoder_hidden_states of the UNet's cross-attention
  identity_encoder/  FaceIdentityEncoder: a small CNN, masked aligned face -> unit vector (stands in
                     for ArcFace; the conditioner takes any encoder's vector of identity_dim)
The alignment (crop transform, heatmap, masks) is in face_align.py, mirrored by
engine/face-align.c.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import models

CROP_SIZE = 64
TEXTURE_SIZE = 128          # the reference face is aligned at this size, then VAE-encoded (8x down)
IDENTITY_DIM = 64
CROSS_DIM = 64

UNET = models.unet_config(
    in_channels=10, out_channels=3, block_out_channels=[32, 48, 96], layers_per_block=1,
    attention_head_dim=4, cross_attention_dim=CROSS_DIM, norm_num_groups=8,
    sample_size=CROP_SIZE,
    # cross-attention at 16x16 and in the mid block only: at 32x32 a training step was 18x slower
    down_block_types=["DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"],
    up_block_types=["CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"])

CONDITIONER = {"_class_name": "FaceConditioner", "latent_channels": 4,
               "texture_tokens": (TEXTURE_SIZE // 8) ** 2, "identity_dim": IDENTITY_DIM,
               "identity_tokens": 4, "cross_attention_dim": CROSS_DIM}

IDENTITY = {"_class_name": "FaceIdentityEncoder", "image_size": CROP_SIZE,
            "block_out_channels": [16, 32, 64, 128], "norm_num_groups": 8,
            "embedding_dim": IDENTITY_DIM}

# DDIM, x0 ("sample") prediction, trailing spacing so that 1 step starts at t = 999;
# set_alpha_to_one: the last step returns the (clipped) x0 itself, no leftover noise
SCHEDULER = {
    "_class_name": "DDIMScheduler", "_diffusers_version": "0.31.0",
    "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
    "clip_sample": True, "clip_sample_range": 1.0, "num_train_timesteps": 1000,
    "prediction_type": "sample", "rescale_betas_zero_snr": False, "set_alpha_to_one": True,
    "steps_offset": 0, "thresholding": False, "timestep_spacing": "trailing",
    "trained_betas": None,
}

# alignment, heatmap and mask parameters (docs/face-model.md); stored in conditioner/config.json
ALIGN = {
    # five-point template in crop units (0..1): left eye, right eye, nose tip, mouth corners
    "template": [[0.353, 0.397], [0.647, 0.397], [0.5, 0.553], [0.362, 0.700], [0.638, 0.700]],
    "heatmap_sigma": 1.0 / 64.0,     # in crop units (1 px at 64)
    # the mask's upper edge: brows raised by this (crop units); 0.25 takes in the forehead and
    # hair, which the face box of the quality report holds (docs/face-model.md, "Mask")
    "brow_lift": 0.25,
    "feather": 3.0 / 64.0,           # box-blur radius of the blend mask (crop units), 2 passes
    "min_confidence": 0.3,
}


class FaceConditioner(nn.Module):
    """tokens = norm_out([texture_proj(z_k) + texture_pos[k] for k < L_t] ++
                         id_proj(e).view(n_id, D))
    z: VAE latent of the aligned reference face (B, C, h, w), h*w = texture_tokens, as the
    avatar model's VAE gives it (mean * scaling_factor); e: identity vector (B, identity_dim).
    keys: texture_proj, texture_pos (L_t, D), id_proj, norm_out (LayerNorm 1e-5)."""

    def __init__(self, config):
        super().__init__()
        self.config = dict(config)
        d = config["cross_attention_dim"]
        self.texture_proj = nn.Linear(config["latent_channels"], d)
        self.texture_pos = nn.Parameter(torch.randn(config["texture_tokens"], d) * 0.02)
        self.id_proj = nn.Linear(config["identity_dim"], config["identity_tokens"] * d)
        self.norm_out = nn.LayerNorm(d)

    def forward(self, z, e):
        b, c, h, w = z.shape
        tex = self.texture_proj(z.permute(0, 2, 3, 1).reshape(b, h * w, c)) + self.texture_pos
        ident = self.id_proj(e).view(b, self.config["identity_tokens"], -1)
        return self.norm_out(torch.cat([tex, ident], dim=1))


class FaceIdentityEncoder(nn.Module):
    """x (B, 3, S, S) in [-1, 1], the aligned crop times the face mask ->
    unit vector (B, E).
      h = silu(conv_in(x)); per level i >= 1: h = silu(down.{i-1}.norm(down.{i-1}.conv(h)))
      (3x3 stride 2); e = proj_out(mean_hw(h)); e / max(|e|, 1e-6)
    keys: conv_in, down.N.conv, down.N.norm, proj_out."""

    def __init__(self, config):
        super().__init__()
        self.config = dict(config)
        boc = config["block_out_channels"]
        g = config["norm_num_groups"]
        self.conv_in = nn.Conv2d(3, boc[0], 3, padding=1)
        self.down = nn.ModuleList()
        for i in range(1, len(boc)):
            blk = nn.Module()
            blk.conv = nn.Conv2d(boc[i - 1], boc[i], 3, stride=2, padding=1)
            blk.norm = nn.GroupNorm(g, boc[i], eps=1e-5)
            self.down.append(blk)
        self.proj_out = nn.Linear(boc[-1], config["embedding_dim"])

    def forward(self, x):
        h = F.silu(self.conv_in(x))
        for blk in self.down:
            h = F.silu(blk.norm(blk.conv(h)))
        e = self.proj_out(h.mean(dim=(2, 3)))
        return e / e.norm(dim=1, keepdim=True).clamp_min(1e-6)


class CosFaceHead(nn.Module):
    """Training-only classifier: s * (cos(e, w_k) - m [k = label])."""

    def __init__(self, dim, n_classes, s=16.0, m=0.2):
        super().__init__()
        self.w = nn.Parameter(torch.randn(n_classes, dim) * 0.1)
        self.s, self.m = s, m

    def forward(self, e, labels):
        cos = e @ F.normalize(self.w, dim=1).t()
        onehot = F.one_hot(labels, cos.shape[1]).float()
        return self.s * (cos - self.m * onehot)


def unet_input(x_t, masked, mask, heat):
    return torch.cat([x_t, masked, mask, heat], dim=1)


def alphas_cumprod():
    """float32 throughout, as diffusers (and the engine's scheduler) compute it."""
    betas = torch.linspace(SCHEDULER["beta_start"] ** 0.5, SCHEDULER["beta_end"] ** 0.5,
                           SCHEDULER["num_train_timesteps"], dtype=torch.float32) ** 2
    return torch.cumprod(1.0 - betas, dim=0)


@torch.no_grad()
def ddim_sample(unet, masked, mask, heat, ctx, steps, noise):
    """DDIM (eta 0) with x0 prediction, trailing spacing, clip to [-1, 1]: what diffusers'
    DDIMScheduler and the engine's scheduler do with SCHEDULER (eps comes from the unclipped
    x0, the step uses the clipped one).  noise: (B, 3, S, S) standard normal."""
    abar = alphas_cumprod()
    n = SCHEDULER["num_train_timesteps"]
    ts = [int(round(n - i * n / steps)) - 1 for i in range(steps)]
    x = noise.clone()
    for i, t in enumerate(ts):
        x0 = unet(unet_input(x, masked, mask, heat), t, ctx)
        prev = t - n // steps
        ab = abar[t]
        ab_prev = abar[prev] if prev >= 0 else torch.tensor(1.0)   # set_alpha_to_one
        eps = (x - ab ** 0.5 * x0) / (1 - ab) ** 0.5
        x = ab_prev ** 0.5 * x0.clamp(-1, 1) + (1 - ab_prev) ** 0.5 * eps
    return x


def param_count(m):
    return sum(p.numel() for p in m.parameters())


if __name__ == "__main__":
    u = models.UNet2DConditionModel(UNET)
    print("unet", param_count(u), "cond", param_count(FaceConditioner(CONDITIONER)),
          "id", param_count(FaceIdentityEncoder(IDENTITY)))
    print(math.pi)
