"""The avatar-default model in PyTorch, with diffusers' module trees and key names.

Written from the diffusers config semantics (v0.31) so that the state_dicts load into
diffusers' UNet2DConditionModel / AutoencoderKL unchanged and into the C engine
(engine/).  Only the SD1.5 block types are implemented.  Extra modules: PoseGuider
(AnimateAnyone), HandEncoder (ShowMaker key-point hand tokens; math in
docs/model-format.md) and ReferenceBank (reference attention, DESIGN.md section 2).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


# ---------------------------------------------------------------- building blocks

def timestep_embedding(t, dim, flip_sin_to_cos=True, freq_shift=0.0, max_period=10000):
    """Sinusoidal embedding as diffusers' get_timestep_embedding (scale 1)."""
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device)
    exponent = exponent / (half - freq_shift)
    arg = t.float()[:, None] * torch.exp(exponent)[None, :]
    emb = torch.cat([torch.sin(arg), torch.cos(arg)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1))
    return emb


class TimestepEmbedding(nn.Module):
    """keys: linear_1, linear_2 (SiLU between)."""

    def __init__(self, in_dim, dim):
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x):
        return self.linear_2(F.silu(self.linear_1(x)))


class ResnetBlock2D(nn.Module):
    """keys: norm1, conv1, time_emb_proj (if temb), norm2, conv2, conv_shortcut (if in != out)."""

    def __init__(self, cin, cout, temb_dim, groups, eps):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb_dim, cout) if temb_dim else None
        self.norm2 = nn.GroupNorm(groups, cout, eps=eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb=None):
        h = self.conv1(F.silu(self.norm1(x)))
        if self.time_emb_proj is not None and temb is not None:
            h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return x + h


class Downsample2D(nn.Module):
    """key: conv.  padding 0 = AutoencoderKL style (pad right/bottom by 1, then stride 2)."""

    def __init__(self, ch, padding):
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=padding)

    def forward(self, x):
        if self.padding == 0:
            x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


class Upsample2D(nn.Module):
    """key: conv.  Nearest 2x then 3x3 conv."""

    def __init__(self, ch):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Attention(nn.Module):
    """keys: to_q, to_k, to_v (bias per `bias`), to_out.0 (bias).

    softmax(q k^T / sqrt(head_dim)) v per head.  `ctx` defaults to x (self-attention).
    """

    def __init__(self, query_dim, heads, head_dim, ctx_dim=None, bias=False):
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.head_dim = head_dim
        self.to_q = nn.Linear(query_dim, inner, bias=bias)
        self.to_k = nn.Linear(ctx_dim or query_dim, inner, bias=bias)
        self.to_v = nn.Linear(ctx_dim or query_dim, inner, bias=bias)
        self.to_out = nn.ModuleList([nn.Linear(inner, query_dim), nn.Dropout(0.0)])

    def forward(self, x, ctx=None, key_bias=None):
        ctx = x if ctx is None else ctx
        b, n, _ = x.shape
        q = self.to_q(x).view(b, n, self.heads, self.head_dim).transpose(1, 2)
        k = self.to_k(ctx).view(b, ctx.shape[1], self.heads, self.head_dim).transpose(1, 2)
        v = self.to_v(ctx).view(b, ctx.shape[1], self.heads, self.head_dim).transpose(1, 2)
        w = torch.matmul(q, k.transpose(-1, -2)) * (self.head_dim ** -0.5)
        if key_bias is not None:
            w = w + key_bias
        o = torch.matmul(w.softmax(dim=-1), v)
        o = o.transpose(1, 2).reshape(b, n, self.heads * self.head_dim)
        return self.to_out[0](o)


class GEGLU(nn.Module):
    """key: proj (dim -> 2*hidden; output = hidden_half * gelu(gate_half), exact erf GELU)."""

    def __init__(self, dim, hidden):
        super().__init__()
        self.proj = nn.Linear(dim, hidden * 2)

    def forward(self, x):
        h, gate = self.proj(x).chunk(2, dim=-1)
        return h * F.gelu(gate)


class FeedForward(nn.Module):
    """keys: net.0.proj, net.2 (net.1 is dropout)."""

    def __init__(self, dim):
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim, dim * 4), nn.Dropout(0.0), nn.Linear(dim * 4, dim)])

    def forward(self, x):
        return self.net[2](self.net[0](x))


class BasicTransformerBlock(nn.Module):
    """keys: norm1, attn1, norm2, attn2, norm3, ff.

    Reference attention: in mode "write" the norm1 output is appended to `bank`;
    in mode "read" the banked states are concatenated after this block's own tokens
    as the keys/values of attn1 (DESIGN.md section 2).  Mode None = plain.
    All-frame (temporal) attention, `frames` F > 1: the batch is B / F groups of F frames
    and attn1 of every frame attends over the tokens of all F frames of its group, then the
    group's reference tokens (the engine's AeUNetHooks.temporal: one group per UNet call).
    """

    def __init__(self, dim, heads, head_dim, ctx_dim):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads, head_dim)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, heads, head_dim, ctx_dim=ctx_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)
        self.ref_mode = None
        self.bank = []
        self.ref_keep = None
        self.frames = 1

    def forward(self, x, ctx):
        b, n_tok, c = x.shape
        if b % self.frames:
            raise ValueError("temporal attention: batch %d is not a multiple of %d frames" % (b, self.frames))
        n = self.norm1(x)
        if self.ref_mode == "write":
            self.bank.append(n)
        # attn1 over groups of `frames` frames (1: every frame alone)
        g = b // self.frames
        n = n.reshape(g, self.frames * n_tok, c)
        if self.ref_mode == "read" and self.bank:
            ref = self.bank[0]
            if ref.shape[0] != g:
                # one reference serves every frame (group) of the batch
                ref = ref.repeat_interleave(g // ref.shape[0], 0)
            bias = None
            if self.ref_keep is not None:
                # samples with ref_keep False (condition dropout) see plain self-attention:
                # their reference keys get -inf, i.e. exactly zero softmax weight; one choice
                # per group (its first frame's), as the engine's batch mask
                keep = self.ref_keep[::self.frames]
                bias = torch.zeros(g, 1, 1, n.shape[1] + ref.shape[1], device=n.device)
                bias[~keep, :, :, n.shape[1]:] = float("-inf")
            a = self.attn1(n, torch.cat([n, ref], dim=1), bias)
        else:
            a = self.attn1(n)
        x = a.reshape(b, n_tok, c) + x
        x = self.attn2(self.norm2(x), ctx) + x
        return self.ff(self.norm3(x)) + x


class Transformer2DModel(nn.Module):
    """keys: norm (GroupNorm eps 1e-6), proj_in, transformer_blocks.N, proj_out."""

    def __init__(self, heads, head_dim, cin, ctx_dim, groups, layers=1, linear_proj=False):
        super().__init__()
        inner = heads * head_dim
        self.linear_proj = linear_proj
        self.norm = nn.GroupNorm(groups, cin, eps=1e-6)
        self.proj_in = nn.Linear(cin, inner) if linear_proj else nn.Conv2d(cin, inner, 1)
        self.transformer_blocks = nn.ModuleList(
            [BasicTransformerBlock(inner, heads, head_dim, ctx_dim) for _ in range(layers)])
        self.proj_out = nn.Linear(inner, cin) if linear_proj else nn.Conv2d(inner, cin, 1)

    def forward(self, x, ctx):
        b, c, h, w = x.shape
        res = x
        x = self.norm(x)
        if self.linear_proj:
            x = self.proj_in(x.permute(0, 2, 3, 1).reshape(b, h * w, c))
        else:
            x = self.proj_in(x)
            x = x.permute(0, 2, 3, 1).reshape(b, h * w, x.shape[1])
        for blk in self.transformer_blocks:
            x = blk(x, ctx)
        if self.linear_proj:
            x = self.proj_out(x).reshape(b, h, w, c).permute(0, 3, 1, 2)
        else:
            x = self.proj_out(x.reshape(b, h, w, -1).permute(0, 3, 1, 2).contiguous())
        return x + res


# ---------------------------------------------------------------- UNet2DConditionModel

UNET_DEFAULTS = {
    "_class_name": "UNet2DConditionModel",
    "_diffusers_version": "0.31.0",
    "act_fn": "silu",
    "addition_embed_type": None,
    "addition_embed_type_num_heads": 64,
    "addition_time_embed_dim": None,
    "attention_head_dim": 8,
    "attention_type": "default",
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "class_embed_type": None,
    "class_embeddings_concat": False,
    "conv_in_kernel": 3,
    "conv_out_kernel": 3,
    "cross_attention_dim": 768,
    "cross_attention_norm": None,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                         "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1,
    "dropout": 0.0,
    "dual_cross_attention": False,
    "encoder_hid_dim": None,
    "encoder_hid_dim_type": None,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_only_cross_attention": None,
    "mid_block_scale_factor": 1,
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "num_attention_heads": None,
    "num_class_embeds": None,
    "only_cross_attention": False,
    "out_channels": 4,
    "projection_class_embeddings_input_dim": None,
    "resnet_out_scale_factor": 1.0,
    "resnet_skip_time_act": False,
    "resnet_time_scale_shift": "default",
    "reverse_transformer_layers_per_block": None,
    "sample_size": 64,
    "time_cond_proj_dim": None,
    "time_embedding_act_fn": None,
    "time_embedding_dim": None,
    "time_embedding_type": "positional",
    "timestep_post_act": None,
    "transformer_layers_per_block": 1,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                       "CrossAttnUpBlock2D"],
    "upcast_attention": False,
    "use_linear_projection": False,
}


def unet_config(**overrides):
    cfg = dict(UNET_DEFAULTS)
    cfg.update(overrides)
    return cfg


def reference_unet_config(unet_cfg):
    """The Reference UNet sees the clean reference latent alone, also when the Denoising UNet
    takes the reference latent concatenated to its input (in_channels = 2 x out_channels)."""
    return dict(unet_cfg, in_channels=unet_cfg["out_channels"])


def reference_concat(unet_cfg):
    """True when the Denoising UNet's input is [z_t, reference latent] along channels
    (Stable Video Diffusion's image conditioning, which MimicMotion builds on)."""
    if unet_cfg["in_channels"] == unet_cfg["out_channels"]:
        return False
    if unet_cfg["in_channels"] == 2 * unet_cfg["out_channels"]:
        return True
    raise ValueError("unet in_channels %d: want out_channels (%d) or twice that (reference concat)"
                     % (unet_cfg["in_channels"], unet_cfg["out_channels"]))


def widen_conv_in(state, in_channels):
    """Zero-pads unet conv_in.weight of a state dict to in_channels inputs: a 4-channel UNet
    resumed as a reference-concat one starts out computing exactly what it did."""
    w = state["conv_in.weight"]
    if w.shape[1] < in_channels:
        pad = torch.zeros(w.shape[0], in_channels - w.shape[1], *w.shape[2:], dtype=w.dtype)
        state = dict(state, **{"conv_in.weight": torch.cat([w, pad], 1)})
    return state


def resize_hand_frequencies(w, f_old, f_new):
    """linear_1.weight (or an AdamW moment of it) of a HandEncoder whose positional encoding
    had f_old frequencies, for one with f_new: the columns of the frequencies both have are kept
    (input layout [x, y, sin x, cos x, sin y, cos y], F columns per group); new ones start at 0."""
    out = torch.zeros(w.shape[0], 2 + 4 * f_new, dtype=w.dtype)
    out[:, :2] = w[:, :2]
    keep = min(f_old, f_new)
    for g in range(4):
        out[:, 2 + g * f_new:2 + g * f_new + keep] = w[:, 2 + g * f_old:2 + g * f_old + keep]
    return out


class _Block(nn.Module):
    """A down or up block: resnets, attentions (cross-attn types), down/upsamplers."""

    def __init__(self):
        super().__init__()
        self.resnets = nn.ModuleList()
        self.attentions = None


class UNetMidBlock2DCrossAttn(nn.Module):
    def __init__(self, ch, temb, groups, eps, heads, ctx_dim, layers, linear_proj):
        super().__init__()
        self.attentions = nn.ModuleList(
            [Transformer2DModel(heads, ch // heads, ch, ctx_dim, groups, layers, linear_proj)])
        self.resnets = nn.ModuleList([ResnetBlock2D(ch, ch, temb, groups, eps),
                                      ResnetBlock2D(ch, ch, temb, groups, eps)])

    def forward(self, x, temb, ctx):
        x = self.resnets[0](x, temb)
        x = self.attentions[0](x, ctx)
        return self.resnets[1](x, temb)


class UNet2DConditionModel(nn.Module):
    """diffusers' UNet2DConditionModel restricted to SD1.5 block types.

    forward(sample, timestep, encoder_hidden_states, pose_features=None):
    `pose_features` (pose guider output, shape of conv_in's output) is added to conv_in's
    output (AnimateAnyone).
    """

    def __init__(self, config):
        super().__init__()
        cfg = unet_config(**config)
        self.config = cfg
        boc = list(cfg["block_out_channels"])
        nlev = len(boc)
        lpb = cfg["layers_per_block"]
        groups = cfg["norm_num_groups"]
        eps = cfg["norm_eps"]
        ctx_dim = cfg["cross_attention_dim"]
        heads = cfg["num_attention_heads"] or cfg["attention_head_dim"]
        if isinstance(heads, int):
            heads = [heads] * nlev
        tl = cfg["transformer_layers_per_block"]
        tl = [tl] * nlev if isinstance(tl, int) else list(tl)
        lin = cfg["use_linear_projection"]
        for key, want in (("act_fn", "silu"), ("time_embedding_type", "positional"),
                          ("mid_block_type", "UNetMidBlock2DCrossAttn"),
                          ("resnet_time_scale_shift", "default")):
            if cfg[key] != want:
                raise ValueError("config.json: %s=%r is not supported (want %r)"
                                 % (key, cfg[key], want))
        temb = boc[0] * 4
        self.conv_in = nn.Conv2d(cfg["in_channels"], boc[0], 3, padding=1)
        self.time_embedding = TimestepEmbedding(boc[0], temb)

        self.down_blocks = nn.ModuleList()
        cout = boc[0]
        for i, btype in enumerate(cfg["down_block_types"]):
            cin, cout = cout, boc[i]
            blk = _Block()
            cross = btype == "CrossAttnDownBlock2D"
            if not cross and btype != "DownBlock2D":
                raise ValueError("config.json: unsupported down block type %s" % btype)
            if cross:
                blk.attentions = nn.ModuleList()
            for j in range(lpb):
                blk.resnets.append(ResnetBlock2D(cin if j == 0 else cout, cout, temb, groups, eps))
                if cross:
                    blk.attentions.append(Transformer2DModel(
                        heads[i], cout // heads[i], cout, ctx_dim, groups, tl[i], lin))
            if i < nlev - 1:
                blk.downsamplers = nn.ModuleList([Downsample2D(cout, cfg["downsample_padding"])])
            self.down_blocks.append(blk)

        self.mid_block = UNetMidBlock2DCrossAttn(boc[-1], temb, groups, eps, heads[-1],
                                                 ctx_dim, tl[-1], lin)

        self.up_blocks = nn.ModuleList()
        rboc = boc[::-1]
        rheads = heads[::-1]
        rtl = tl[::-1]
        cout = rboc[0]
        for i, btype in enumerate(cfg["up_block_types"]):
            prev, cout = cout, rboc[i]
            cin = rboc[min(i + 1, nlev - 1)]
            blk = _Block()
            cross = btype == "CrossAttnUpBlock2D"
            if not cross and btype != "UpBlock2D":
                raise ValueError("config.json: unsupported up block type %s" % btype)
            if cross:
                blk.attentions = nn.ModuleList()
            for j in range(lpb + 1):
                skip = cin if j == lpb else cout
                rin = prev if j == 0 else cout
                blk.resnets.append(ResnetBlock2D(rin + skip, cout, temb, groups, eps))
                if cross:
                    blk.attentions.append(Transformer2DModel(
                        rheads[i], cout // rheads[i], cout, ctx_dim, groups, rtl[i], lin))
            if i < nlev - 1:
                blk.upsamplers = nn.ModuleList([Upsample2D(cout)])
            self.up_blocks.append(blk)

        self.conv_norm_out = nn.GroupNorm(groups, boc[0], eps=eps)
        self.conv_out = nn.Conv2d(boc[0], cfg["out_channels"], 3, padding=1)

    def transformer_blocks(self):
        """Every BasicTransformerBlock in forward order (down, mid, up)."""
        return [m for m in self.modules() if isinstance(m, BasicTransformerBlock)]

    def set_frames(self, frames):
        """All-frame attention over groups of `frames` consecutive batch entries (1 = off)."""
        for blk in self.transformer_blocks():
            blk.frames = frames

    def forward(self, sample, timestep, encoder_hidden_states, pose_features=None):
        cfg = self.config
        b = sample.shape[0]
        t = torch.as_tensor(timestep, device=sample.device)
        if t.dim() == 0:
            t = t[None]
        t = t.expand(b) if t.shape[0] == 1 else t
        temb = timestep_embedding(t, cfg["block_out_channels"][0], cfg["flip_sin_to_cos"],
                                  cfg["freq_shift"]).to(sample.dtype)
        temb = self.time_embedding(temb)
        ctx = encoder_hidden_states

        x = self.conv_in(sample)
        if pose_features is not None:
            x = x + pose_features
        skips = [x]
        for blk in self.down_blocks:
            for j, res in enumerate(blk.resnets):
                x = res(x, temb)
                if blk.attentions is not None:
                    x = blk.attentions[j](x, ctx)
                skips.append(x)
            if hasattr(blk, "downsamplers"):
                x = blk.downsamplers[0](x)
                skips.append(x)
        x = self.mid_block(x, temb, ctx)
        for blk in self.up_blocks:
            for j, res in enumerate(blk.resnets):
                x = res(torch.cat([x, skips.pop()], dim=1), temb)
                if blk.attentions is not None:
                    x = blk.attentions[j](x, ctx)
            if hasattr(blk, "upsamplers"):
                x = blk.upsamplers[0](x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class ReferenceBank:
    """Couples a Reference UNet to a Denoising UNet (reference attention).

    write(): run the reference UNet (t = 0) with every BasicTransformerBlock storing
    its norm1 output; read mode then makes the denoising UNet's i-th block (same
    forward order, same position) attend to [own tokens, reference tokens].
    """

    def __init__(self, reference_unet, denoising_unet):
        self.ref_blocks = reference_unet.transformer_blocks()
        self.den_blocks = denoising_unet.transformer_blocks()
        if len(self.ref_blocks) != len(self.den_blocks):
            raise ValueError("reference and denoising UNets have different block layouts")
        self.reference_unet = reference_unet

    def write(self, ref_latent, ref_ctx):
        for blk in self.ref_blocks:
            blk.bank = []
            blk.ref_mode = "write"
        t = torch.zeros(ref_latent.shape[0], dtype=torch.long, device=ref_latent.device)
        self.reference_unet(ref_latent, t, ref_ctx)
        for rb, db in zip(self.ref_blocks, self.den_blocks):
            rb.ref_mode = None
            db.bank = list(rb.bank)
            rb.bank = []

    def set_read(self, on, keep=None):
        """on: use the bank; keep: optional (B,) bool, False = drop the reference."""
        for db in self.den_blocks:
            db.ref_mode = "read" if on else None
            db.ref_keep = keep

    def clear(self):
        for db in self.den_blocks:
            db.bank = []
            db.ref_mode = None


# ---------------------------------------------------------------- AutoencoderKL

VAE_DEFAULTS = {
    "_class_name": "AutoencoderKL",
    "_diffusers_version": "0.31.0",
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "force_upcast": True,
    "in_channels": 3,
    "latent_channels": 4,
    "latents_mean": None,
    "latents_std": None,
    "layers_per_block": 2,
    "mid_block_add_attention": True,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 512,
    "scaling_factor": 0.18215,
    "shift_factor": None,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "use_post_quant_conv": True,
    "use_quant_conv": True,
}


class VAEAttention(nn.Module):
    """AutoencoderKL mid-block attention: keys group_norm, to_q/k/v (bias), to_out.0.

    One head over all channels, residual connection.
    """

    def __init__(self, ch, groups):
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, ch, eps=1e-6)
        self.to_q = nn.Linear(ch, ch)
        self.to_k = nn.Linear(ch, ch)
        self.to_v = nn.Linear(ch, ch)
        self.to_out = nn.ModuleList([nn.Linear(ch, ch), nn.Dropout(0.0)])

    def forward(self, x):
        b, c, h, w = x.shape
        t = self.group_norm(x).view(b, c, h * w).transpose(1, 2)
        q, k, v = self.to_q(t), self.to_k(t), self.to_v(t)
        a = torch.matmul(q, k.transpose(1, 2)) * (c ** -0.5)
        o = self.to_out[0](torch.matmul(a.softmax(dim=-1), v))
        return o.transpose(1, 2).reshape(b, c, h, w) + x


class VAEMidBlock(nn.Module):
    def __init__(self, ch, groups):
        super().__init__()
        self.attentions = nn.ModuleList([VAEAttention(ch, groups)])
        self.resnets = nn.ModuleList([ResnetBlock2D(ch, ch, None, groups, 1e-6),
                                      ResnetBlock2D(ch, ch, None, groups, 1e-6)])

    def forward(self, x):
        return self.resnets[1](self.attentions[0](self.resnets[0](x)))


class VAEEncoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        boc, groups, lpb = cfg["block_out_channels"], cfg["norm_num_groups"], cfg["layers_per_block"]
        self.conv_in = nn.Conv2d(cfg["in_channels"], boc[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        cout = boc[0]
        for i in range(len(boc)):
            cin, cout = cout, boc[i]
            blk = _Block()
            for j in range(lpb):
                blk.resnets.append(ResnetBlock2D(cin if j == 0 else cout, cout, None, groups, 1e-6))
            if i < len(boc) - 1:
                blk.downsamplers = nn.ModuleList([Downsample2D(cout, 0)])
            self.down_blocks.append(blk)
        self.mid_block = VAEMidBlock(boc[-1], groups)
        self.conv_norm_out = nn.GroupNorm(groups, boc[-1], eps=1e-6)
        self.conv_out = nn.Conv2d(boc[-1], 2 * cfg["latent_channels"], 3, padding=1)

    def forward(self, x):
        x = self.conv_in(x)
        for blk in self.down_blocks:
            for res in blk.resnets:
                x = res(x)
            if hasattr(blk, "downsamplers"):
                x = blk.downsamplers[0](x)
        x = self.mid_block(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class VAEDecoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        boc, groups, lpb = cfg["block_out_channels"], cfg["norm_num_groups"], cfg["layers_per_block"]
        rboc = boc[::-1]
        self.conv_in = nn.Conv2d(cfg["latent_channels"], boc[-1], 3, padding=1)
        self.mid_block = VAEMidBlock(boc[-1], groups)
        self.up_blocks = nn.ModuleList()
        cout = rboc[0]
        for i in range(len(boc)):
            cin, cout = cout, rboc[i]
            blk = _Block()
            for j in range(lpb + 1):
                blk.resnets.append(ResnetBlock2D(cin if j == 0 else cout, cout, None, groups, 1e-6))
            if i < len(boc) - 1:
                blk.upsamplers = nn.ModuleList([Upsample2D(cout)])
            self.up_blocks.append(blk)
        self.conv_norm_out = nn.GroupNorm(groups, boc[0], eps=1e-6)
        self.conv_out = nn.Conv2d(boc[0], cfg["out_channels"], 3, padding=1)

    def forward(self, z):
        x = self.mid_block(self.conv_in(z))
        for blk in self.up_blocks:
            for res in blk.resnets:
                x = res(x)
            if hasattr(blk, "upsamplers"):
                x = blk.upsamplers[0](x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class AutoencoderKL(nn.Module):
    """keys: encoder.*, decoder.*, quant_conv, post_quant_conv.  Images in [-1, 1]."""

    def __init__(self, config):
        super().__init__()
        cfg = dict(VAE_DEFAULTS)
        cfg.update(config)
        self.config = cfg
        lc = cfg["latent_channels"]
        self.encoder = VAEEncoder(cfg)
        self.decoder = VAEDecoder(cfg)
        self.quant_conv = nn.Conv2d(2 * lc, 2 * lc, 1)
        self.post_quant_conv = nn.Conv2d(lc, lc, 1)

    def encode(self, x):
        """Returns (mean, logvar), logvar clamped to [-30, 20] as diffusers does."""
        mean, logvar = self.quant_conv(self.encoder(x)).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z):
        """z is the unscaled latent (divide by scaling_factor before calling)."""
        return self.decoder(self.post_quant_conv(z))


# ---------------------------------------------------------------- pose guider

class PoseGuider(nn.Module):
    """AnimateAnyone-style pose guider; keys conv_in, blocks.N, conv_out.

    conv_in 3x3 -> SiLU -> per level i: [3x3 conv c_i->c_i -> SiLU -> 3x3 stride-2
    conv c_i->c_{i+1} -> SiLU] -> conv_out 3x3 (zero-initialised) to the UNet width.
    Input: guidance image, RGB in [0, 1], NCHW, at image resolution.
    """

    def __init__(self, config):
        super().__init__()
        self.config = dict(config)
        boc = config["block_out_channels"]
        self.conv_in = nn.Conv2d(config["conditioning_channels"], boc[0], 3, padding=1)
        blocks = []
        for i in range(len(boc) - 1):
            blocks.append(nn.Conv2d(boc[i], boc[i], 3, padding=1))
            blocks.append(nn.Conv2d(boc[i], boc[i + 1], 3, padding=1, stride=2))
        self.blocks = nn.ModuleList(blocks)
        self.conv_out = nn.Conv2d(boc[-1], config["conditioning_embedding_channels"], 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x):
        x = F.silu(self.conv_in(x))
        for conv in self.blocks:
            x = F.silu(conv(x))
        return self.conv_out(x)


# ---------------------------------------------------------------- hand encoder

class HandEncoder(nn.Module):
    """Key-point hand tokens (ShowMaker); exact math in docs/model-format.md.

    keypoints (B, K, 3): x, y in [0, 1] of the canvas, confidence c.
      pe_k   = [x, y, sin(2^f pi x), cos(2^f pi x), sin(2^f pi y), cos(2^f pi y) for f < F]
      h_k    = linear_2(silu(linear_1(pe_k)))
      g_k    = c_k if c_k >= confidence_threshold else 0   (c clamped to [0, 1])
      tok_k  = norm_out(g_k * h_k + (1 - g_k) * missing_embedding + keypoint_embedding[k])
    keys: linear_1, linear_2, keypoint_embedding.weight (K, D), missing_embedding (D),
    norm_out (LayerNorm eps 1e-5).
    """

    def __init__(self, config):
        super().__init__()
        self.config = dict(config)
        k = config["num_keypoints"]
        f = config["num_frequencies"]
        d = config["cross_attention_dim"]
        hid = config["hidden_dim"]
        self.linear_1 = nn.Linear(2 + 4 * f, hid)
        self.linear_2 = nn.Linear(hid, d)
        self.keypoint_embedding = nn.Embedding(k, d)
        self.missing_embedding = nn.Parameter(torch.zeros(d))
        self.norm_out = nn.LayerNorm(d)
        nn.init.normal_(self.keypoint_embedding.weight, std=0.02)
        nn.init.normal_(self.missing_embedding, std=0.02)

    def positional_encoding(self, xy):
        f = self.config["num_frequencies"]
        freqs = (2.0 ** torch.arange(f, dtype=xy.dtype, device=xy.device)) * math.pi
        x = xy[..., 0:1] * freqs
        y = xy[..., 1:2] * freqs
        return torch.cat([xy, torch.sin(x), torch.cos(x), torch.sin(y), torch.cos(y)], dim=-1)

    def forward(self, keypoints):
        xy = keypoints[..., 0:2]
        c = keypoints[..., 2:3].clamp(0.0, 1.0)
        g = torch.where(c >= self.config["confidence_threshold"], c, torch.zeros_like(c))
        h = self.linear_2(F.silu(self.linear_1(self.positional_encoding(xy))))
        tok = g * h + (1.0 - g) * self.missing_embedding + self.keypoint_embedding.weight
        return self.norm_out(tok)
