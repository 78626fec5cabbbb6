"""Configurations of the avatar-default model (diffusers config.json fields)."""
import models

IMAGE_SIZE = 256
LATENT_SIZE = IMAGE_SIZE // 8

# 8x down (4 levels); narrow at full resolution, where the convolutions cost most on a CPU
# 4 GroupNorm groups: with 16 groups the 16-channel first level was a per-channel instance
# norm, which removes the absolute colour of flat regions (the world's backgrounds).
VAE = dict(models.VAE_DEFAULTS, block_out_channels=[16, 32, 64, 128], layers_per_block=1,
           norm_num_groups=4, sample_size=IMAGE_SIZE)

UNET = models.unet_config(
    block_out_channels=[32, 96, 192], layers_per_block=1, attention_head_dim=8,
    # 8 groups (4 channels each at the first level; 32 made it a per-channel instance norm)
    cross_attention_dim=128, norm_num_groups=8, sample_size=LATENT_SIZE,
    # no attention at 32x32 (1024 tokens, 2048 with the reference): 8x cheaper to train
    down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"])

POSE_GUIDER = {"_class_name": "PoseGuider", "conditioning_channels": 3,
               "block_out_channels": [16, 32, 64, 128],
               "conditioning_embedding_channels": UNET["block_out_channels"][0]}

HAND_ENCODER = {"_class_name": "HandEncoder", "num_keypoints": 42, "num_frequencies": 8,
                "hidden_dim": 128, "cross_attention_dim": UNET["cross_attention_dim"],
                "confidence_threshold": 0.3}

# DDIMScheduler config (diffusers fields), SD1.5 training schedule
SCHEDULER = {
    "_class_name": "DDIMScheduler",
    "_diffusers_version": "0.31.0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "clip_sample_range": 1.0,
    "dynamic_thresholding_ratio": 0.995,
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "rescale_betas_zero_snr": False,
    "sample_max_value": 1.0,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "thresholding": False,
    "timestep_spacing": "leading",
    "trained_betas": None,
}


def alphas_cumprod():
    """SD1.5 'scaled_linear' betas: linspace(sqrt(0.00085), sqrt(0.012), 1000)^2."""
    import torch
    betas = torch.linspace(SCHEDULER["beta_start"] ** 0.5, SCHEDULER["beta_end"] ** 0.5,
                           SCHEDULER["num_train_timesteps"], dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0).float()
