/* Streaming avatar diffusion over overlapping windows, and the final
 * latent blender (avatar-stream.h, docs/avatar-pipeline.md). */
#include <math.h>
#include <string.h>

#include <glib.h>

#include "avatar-stream.h"
#include "sampler.h"
#include "threads.h"

#define AE_AVATAR_MAX_LOOKAHEAD 1024
#define AE_AVATAR_MAX_WINDOW 1024
#define AE_AVATAR_MAX_STEPS 1000

struct AeAvatarStream
{
  AeAvatarModel *model;
  AeAvatarReference *ref;       /* NULL without reference attention */
  AeAvatarParams p;
  AeFusionLayout layout;
  AeScheduler *sched;
  AeUNet *unet;
  AeAvatarDevice *dev;          /* the model's, for the Denoising UNet */
  AePoseGuider *guider;

  int C, h, w;                  /* latent of one frame */
  size_t fs;                    /* C h w: latent floats of a frame */
  /* Reference concat (unet in_channels = 2 C): the UNet input of a frame
   * is [z_t, c], c = concat_ref in the cond pass, zeros in the uncond one
   * and in both when concat_ref is NULL (reference_concat off). */
  bool concat;
  const float *concat_ref;      /* z_ref (fs floats) or NULL */
  int cin;                      /* UNet input channels: C or 2 C */
  size_t xfs;                   /* cin h w: UNet input floats of a frame */
  int c0;                       /* pose feature channels */
  size_t pfs;                   /* pose feature floats of a frame */
  int D;                        /* cross_attention_dim */
  size_t tfs;                   /* token floats of a frame: 42 D */
  int L;                        /* lookahead, 0 = all */
  /* reference init: x_T = init_ref z_ref + init_eps noise (both 0/1 when
   * off), before ae_sample multiplies by init_noise_sigma */
  float init_ref, init_eps;
  /* Noise correlation (PYoCo's mixed noise prior): frame f starts from
   * noise_a shared + noise_b own_f, noise_a = sqrt(rho), noise_b =
   * sqrt(1 - rho). shared depends on the seed alone (index -1, never a
   * frame), so it is drawn once here; the seed is fixed for the stream's
   * life. step_shared: LCM's shared field of the running step. */
  float noise_a, noise_b;
  float *noise_shared;          /* fs floats: (seed, INIT, -1) */
  float *step_shared;           /* fs floats: (seed, STEP (step), -1) */

  /* Frame store, a ring of `cap` frames addressed by frame % cap: every
   * frame of the next group and those after it pushed so far. */
  int64_t cap;
  float *pose_feat;             /* cap x pfs */
  float *tokens;                /* cap x tfs */
  int64_t n_pushed;
  bool finished;

  /* The group being (or last) denoised: windows g_first .. g_first+g_n-1. */
  int group_cap;                /* windows the group buffers hold */
  float *lat;                   /* group latents, windows back to back */
  float *scratch;               /* ae_sample_scratch_floats */
  float **win_ptrs, **eps_u_ptrs, **eps_c_ptrs;
  size_t *win_off;              /* float offset of window i in lat */
  int *win_len;
  int64_t g_first;
  int g_n;
  int64_t g_nframes;            /* N at EOS, else AE_FUSION_N_UNKNOWN */
  size_t g_floats;
  int64_t next_window;          /* first window of the next group */
  float g_guidance, g_pose_scale;       /* values of the running group */

  /* One UNet call: up to 2 W frames (CFG batch [uncond, cond]). */
  float *x_batch, *out_batch, *res_batch, *ctx_batch;
  bool *mask;
  float *zero_tokens;           /* tfs zeros (uncond context) */
  AeArena arena;
  AeFusionCarry *carry;

  /* Output: windows [pop_next, ready_end) wait in the group buffer. */
  int64_t pop_next, ready_end, last_window;
};

void
ae_avatar_params_init (AeAvatarParams * p)
{
  memset (p, 0, sizeof *p);
  p->width = 0;
  p->height = 0;
  p->steps = 20;
  p->scheduler = AE_SCHEDULER_DDIM;
  p->guidance_scale = 2.5f;
  p->pose_scale = 1.0f;
  p->window = 16;
  p->overlap = 4;
  p->fusion = AE_FUSION_PROGRESSIVE;
  p->lookahead = 1;
  p->seed = 0;
  p->threads = 0;
  p->reference_attention = true;
  p->hand_tokens = true;
  p->temporal_attention = false;
  p->reference_init = true;
  p->reference_concat = true;
  p->noise_correlation = 1.0f;
  p->strength = 1.0f;
  p->device = AE_DEVICE_CPU;
}

bool
ae_avatar_params_need_reference (const AeAvatarParams * p,
    const AeAvatarModel * model)
{
  return p->reference_attention || p->reference_init ||
      (p->reference_concat && ae_avatar_model_reference_concat (model));
}

/* Coefficients of the reference init for the first timestep. SD1.5's
 * schedule does not reach zero SNR: a training sample at the first step
 * still holds sqrt(abar_t0) of its clean latent (0.07 at t = 999), and the
 * model learnt to read the background and colours from that leak. Pure
 * noise leaves it nothing to read; the reference's latent is the best
 * stand-in (same identity, clothes and background), so x_t0 =
 * sqrt(abar) z_ref + sqrt(1 - abar) eps, in Euler's variance-exploding
 * form z_ref + sigma eps. Both are divided by init_noise_sigma, which
 * ae_sample multiplies back. */
static void
reference_init_coefs (const AeScheduler * sched, float *c_ref, float *c_eps)
{
  float s0 = ae_scheduler_init_noise_sigma (sched);

  if (ae_scheduler_type (sched) == AE_SCHEDULER_EULER) {
    *c_ref = 1.0f / s0;
    *c_eps = ae_scheduler_sigma (sched, 0) / s0;
  } else {
    int t = (int) ae_scheduler_timestep (sched, 0);
    float abar = ae_scheduler_alphas_cumprod (sched)[t];
    *c_ref = sqrtf (abar);
    *c_eps = sqrtf (1.0f - abar);
  }
}

/* out = a shared + b own, own = ae_noise_fill (seed, stream, index): the
 * mixed noise of one frame, in float. The ends are exact: b = 0 is the
 * shared field itself, a = 0 the frame's own noise untouched (rho 0 draws
 * what the stream drew before noise correlation existed). */
static void
mixed_noise (const AeAvatarStream * s, uint64_t stream, int64_t index,
    const float *shared, float *out)
{
  float a = s->noise_a, b = s->noise_b;

  if (b == 0.0f) {
    memcpy (out, shared, s->fs * sizeof (float));
    return;
  }
  ae_noise_fill (s->p.seed, stream, index, out, s->fs);
  if (a == 0.0f)
    return;
  for (size_t e = 0; e < s->fs; e++)
    out[e] = a * shared[e] + b * out[e];
}

static inline int64_t
slot_of (const AeAvatarStream * s, int64_t frame)
{
  return frame % s->cap;
}

/* Sizes the group buffers for n_windows windows of W frames. */
static int
group_alloc (AeAvatarStream * s, int n_windows, AeError * err)
{
  size_t n;

  if (n_windows <= s->group_cap)
    return 0;
  n = (size_t) n_windows * s->layout.window * s->fs;
  g_free (s->lat);
  g_free (s->scratch);
  s->lat = g_try_new (float, n);
  s->scratch = g_try_new (float, ae_sample_scratch_floats (n));
  if (s->lat == NULL || s->scratch == NULL)
    return ae_error (err, "%s: out of memory for %d windows of latents",
        ae_avatar_model_path (s->model), n_windows);
  s->win_ptrs = g_renew (float *, s->win_ptrs, n_windows);
  s->eps_u_ptrs = g_renew (float *, s->eps_u_ptrs, n_windows);
  s->eps_c_ptrs = g_renew (float *, s->eps_c_ptrs, n_windows);
  s->win_off = g_renew (size_t, s->win_off, n_windows);
  s->win_len = g_renew (int, s->win_len, n_windows);
  s->group_cap = n_windows;
  return 0;
}

/* Grows the frame ring (lookahead all only) keeping frames [0, n_pushed). */
static int
ring_grow (AeAvatarStream * s, int64_t cap, AeError * err)
{
  float *pf = g_try_new (float, (size_t) cap * s->pfs);
  float *tk = g_try_new (float, (size_t) cap * s->tfs);

  if (pf == NULL || tk == NULL) {
    g_free (pf);
    g_free (tk);
    return ae_error (err, "%s: out of memory holding %lld pose frames",
        ae_avatar_model_path (s->model), (long long) cap);
  }
  for (int64_t f = 0; f < s->n_pushed && s->cap > 0; f++) {
    memcpy (pf + (size_t) (f % cap) * s->pfs,
        s->pose_feat + (size_t) slot_of (s, f) * s->pfs,
        s->pfs * sizeof (float));
    memcpy (tk + (size_t) (f % cap) * s->tfs,
        s->tokens + (size_t) slot_of (s, f) * s->tfs,
        s->tfs * sizeof (float));
  }
  g_free (s->pose_feat);
  g_free (s->tokens);
  s->pose_feat = pf;
  s->tokens = tk;
  s->cap = cap;
  return 0;
}

int
ae_avatar_stream_new (AeAvatarStream ** out, AeAvatarModel * model,
    AeAvatarReference * reference, const AeAvatarParams * params,
    AeError * err)
{
  AeAvatarStream *s;
  AeAvatarParams p = *params;
  const char *path = ae_avatar_model_path (model);
  int mult = ae_avatar_model_size_multiple (model);
  int f = ae_avatar_model_downscale (model);
  int64_t gh, gw;
  int W;

  *out = NULL;
  if (p.width == 0 && p.height == 0)
    p.width = p.height = ae_avatar_model_native_size (model);
  if (p.width <= 0 || p.height <= 0 || p.width % mult || p.height % mult ||
      p.width > 16384 || p.height > 16384)
    return ae_error (err, "%s: frame size %dx%d is not a positive multiple "
        "of %d", path, p.width, p.height, mult);
  if (p.steps < 1 || p.steps > AE_AVATAR_MAX_STEPS)
    return ae_error (err, "steps %d: must be 1..%d", p.steps,
        AE_AVATAR_MAX_STEPS);
  if (!isfinite (p.guidance_scale) || !isfinite (p.pose_scale))
    return ae_error (err, "guidance_scale / pose_scale must be finite");
  /* written so that NaN fails too */
  if (!(p.noise_correlation >= 0.0f && p.noise_correlation <= 1.0f))
    return ae_error (err, "noise_correlation %g: must be in [0, 1] (1 = "
        "every frame starts from the same noise, 0 = independent noise per "
        "frame)", (double) p.noise_correlation);
  if (!(p.strength > 0.0f && p.strength <= 1.0f))
    return ae_error (err, "strength %g: must be in (0, 1] (1 = sampling "
        "starts from noise)", (double) p.strength);
  if (p.strength < 1.0f && !(p.reference_init && reference))
    return ae_error (err, "strength %g needs the reference init (and a "
        "reference image): sampling starts from the reference's latent",
        (double) p.strength);
  if (p.window > AE_AVATAR_MAX_WINDOW)
    return ae_error (err, "window %d: at most %d frames", p.window,
        AE_AVATAR_MAX_WINDOW);
  if (p.lookahead > AE_AVATAR_MAX_LOOKAHEAD)
    return ae_error (err, "lookahead %d: at most %d windows (or <= 0 for "
        "all)", p.lookahead, AE_AVATAR_MAX_LOOKAHEAD);
  if (p.reference_attention && reference == NULL)
    return ae_error (err, "reference attention needs a reference image");
  if (p.reference_concat && ae_avatar_model_reference_concat (model) &&
      reference == NULL)
    return ae_error (err, "%s/unet/config.json: in_channels %d takes the "
        "reference latent concatenated to the input (reference concat): it "
        "needs a reference image (or reference_concat off)", path,
        ae_avatar_model_unet (model)->cfg.in_channels);
  if (reference && ae_avatar_reference_model (reference) != model)
    return ae_error (err, "the reference was prepared with %s, not %s",
        ae_avatar_model_path (ae_avatar_reference_model (reference)), path);

  s = g_new0 (AeAvatarStream, 1);
  s->model = ae_avatar_model_ref (model);
  s->ref = reference ? ae_avatar_reference_ref (reference) : NULL;
  s->p = p;
  s->unet = ae_avatar_model_unet (model);
  s->guider = ae_avatar_model_pose_guider (model);
  if (ae_arena_init (&s->arena, 0, err) < 0)
    goto fail;
  /* the weights go to the device now, not in the first group */
  if (ae_avatar_model_device (model, p.device, &s->dev, err) < 0 ||
      ae_avatar_device_prepare (s->dev, AE_AVATAR_PART_UNET, err) < 0)
    goto fail;
  if (ae_fusion_layout_init (&s->layout, p.window, p.overlap, p.fusion,
          err) < 0)
    goto fail;
  if (ae_scheduler_load_data (&s->sched, ae_avatar_model_scheduler_path
          (model), ae_avatar_model_scheduler_json (model),
          ae_scheduler_type_name (p.scheduler), err) < 0 ||
      ae_scheduler_set_timesteps (s->sched, p.steps, err) < 0 ||
      ae_scheduler_set_strength (s->sched, p.strength, err) < 0)
    goto fail;
  s->C = ae_avatar_model_latent_channels (model);
  s->h = p.height / f;
  s->w = p.width / f;
  s->fs = (size_t) s->C * s->h * s->w;
  s->init_ref = 0.0f;
  s->init_eps = 1.0f;
  s->concat = ae_avatar_model_reference_concat (model);
  s->cin = s->concat ? 2 * s->C : s->C;
  s->xfs = (size_t) s->cin * s->h * s->w;
  /* reference init and concat read z_ref at the stream's latent size */
  if (reference && (p.reference_init || (s->concat && p.reference_concat))
      && (size_t) ae_tensor_numel (ae_avatar_reference_latent (reference))
      != s->fs) {
    ae_error (err, "reference %s: the reference was prepared for %dx%d "
        "frames, the stream makes %dx%d", p.reference_init ? "init" :
        "concat", ae_avatar_reference_width (reference),
        ae_avatar_reference_height (reference), p.width, p.height);
    goto fail;
  }
  if (p.reference_init && reference)
    reference_init_coefs (s->sched, &s->init_ref, &s->init_eps);
  s->concat_ref = s->concat && p.reference_concat ?
      ae_avatar_reference_latent (reference)->data : NULL;
  s->c0 = s->unet->cfg.block_out_channels[0];
  ae_pose_guider_out_size (s->guider, p.height, p.width, &gh, &gw);
  if (gh != s->h || gw != s->w) {
    ae_error (err, "%s/pose_guider: a %dx%d pose image gives %lldx%lld "
        "features, the latent is %dx%d", path, p.width, p.height,
        (long long) gw, (long long) gh, s->w, s->h);
    goto fail;
  }
  s->pfs = (size_t) s->c0 * s->h * s->w;
  s->D = s->unet->cfg.cross_attention_dim;
  s->tfs = (size_t) AE_AVATAR_HAND_KP * s->D;
  s->L = p.lookahead > 0 ? p.lookahead : 0;
  W = p.window;

  if (ring_grow (s, s->L > 0 ? (int64_t) (s->L - 1) * s->layout.stride + W
          : W, err) < 0)
    goto fail;
  if (s->L > 0 && group_alloc (s, s->L, err) < 0)
    goto fail;
  s->x_batch = g_new (float, 2 * (size_t) W * s->xfs);
  s->out_batch = g_new (float, 2 * (size_t) W * s->fs);
  s->res_batch = g_new (float, 2 * (size_t) W * s->pfs);
  s->ctx_batch = g_new (float, 2 * (size_t) W * s->tfs);
  s->mask = g_new (bool, 2 * (size_t) W);
  s->zero_tokens = g_new0 (float, s->tfs);
  s->noise_a = sqrtf (p.noise_correlation);
  s->noise_b = sqrtf (1.0f - p.noise_correlation);
  s->noise_shared = g_new (float, s->fs);
  s->step_shared = g_new (float, s->fs);
  ae_noise_fill (p.seed, AE_NOISE_STREAM_INIT, -1, s->noise_shared, s->fs);
  s->carry = ae_fusion_carry_new (&s->layout, p.steps, s->fs, err);
  if (s->carry == NULL)
    goto fail;
  if (p.threads > 0)
    ae_threads_init (p.threads);
  ae_avatar_stream_reset (s);
  *out = s;
  return 0;
fail:
  ae_avatar_stream_free (s);
  return -1;
}

void
ae_avatar_stream_free (AeAvatarStream * s)
{
  if (s == NULL)
    return;
  ae_fusion_carry_free (s->carry);
  ae_arena_clear (&s->arena);
  ae_scheduler_free (s->sched);
  g_free (s->pose_feat);
  g_free (s->tokens);
  g_free (s->lat);
  g_free (s->scratch);
  g_free (s->win_ptrs);
  g_free (s->eps_u_ptrs);
  g_free (s->eps_c_ptrs);
  g_free (s->win_off);
  g_free (s->win_len);
  g_free (s->x_batch);
  g_free (s->out_batch);
  g_free (s->res_batch);
  g_free (s->ctx_batch);
  g_free (s->mask);
  g_free (s->zero_tokens);
  g_free (s->noise_shared);
  g_free (s->step_shared);
  ae_avatar_reference_unref (s->ref);
  ae_avatar_model_unref (s->model);
  g_free (s);
}

void
ae_avatar_stream_latent_shape (const AeAvatarStream * s, int *channels,
    int *height, int *width)
{
  if (channels)
    *channels = s->C;
  if (height)
    *height = s->h;
  if (width)
    *width = s->w;
}

size_t
ae_avatar_stream_frame_floats (const AeAvatarStream * s)
{
  return s->fs;
}

void
ae_avatar_stream_initial_noise (const AeAvatarStream * s, int64_t frame,
    float *out)
{
  mixed_noise (s, AE_NOISE_STREAM_INIT, frame, s->noise_shared, out);
}

const AeFusionLayout *
ae_avatar_stream_layout (const AeAvatarStream * s)
{
  return &s->layout;
}

const AeAvatarParams *
ae_avatar_stream_params (const AeAvatarStream * s)
{
  return &s->p;
}

AeAvatarDevice *
ae_avatar_stream_device (const AeAvatarStream * s)
{
  return s->dev;
}

int64_t
ae_avatar_stream_latency_frames (const AeAvatarStream * s)
{
  return ae_fusion_latency_frames (&s->layout, s->L > 0 ? s->L : 0);
}

void
ae_avatar_stream_set_guidance_scale (AeAvatarStream * s, float g)
{
  if (isfinite (g))
    s->p.guidance_scale = g;
}

void
ae_avatar_stream_set_pose_scale (AeAvatarStream * s, float scale)
{
  if (isfinite (scale))
    s->p.pose_scale = scale;
}

int64_t
ae_avatar_stream_frames_pushed (const AeAvatarStream * s)
{
  return s->n_pushed;
}

int64_t
ae_avatar_stream_windows_done (const AeAvatarStream * s)
{
  return s->ready_end;
}

void
ae_avatar_stream_reset (AeAvatarStream * s)
{
  s->n_pushed = 0;
  s->finished = false;
  s->g_first = 0;
  s->g_n = 0;
  s->next_window = 0;
  s->pop_next = 0;
  s->ready_end = 0;
  s->last_window = -1;
  ae_fusion_carry_reset (s->carry);
}

/* ---- the denoising of one lookahead group ---------------------------------- */

/* The UNet input of batch item xb: z_t (fs floats), then, for a
 * reference-concat UNet, the concat channels: z_ref in the cond pass,
 * zeros in the uncond one (diffusers' SVD pipeline) and with
 * reference_concat off. They are the same at every step, but the batch
 * layout follows the window's length, so they are rewritten with z_t
 * (C h w floats: nothing next to the UNet pass). */
static void
fill_input (const AeAvatarStream * s, float *xb, const float *z_t, bool cond)
{
  memcpy (xb, z_t, s->fs * sizeof (float));
  if (!s->concat)
    return;
  if (cond && s->concat_ref)
    memcpy (xb + s->fs, s->concat_ref, s->fs * sizeof (float));
  else
    memset (xb + s->fs, 0, s->fs * sizeof (float));
}

/* One UNet pass over window i of the group for the frames' latents x
 * (n frames): uncond (if cfg) then cond, each n frames, into eps_u and
 * eps_c (eps_u unused without cfg). With temporal attention each half is
 * its own call (attn1 spans the call's whole batch). */
static int
unet_window (AeAvatarStream * s, int i, float t, const float *x, int cfg,
    float *eps_u, float *eps_c, AeError * err)
{
  int n = s->win_len[i];
  int64_t first = (s->g_first + i) * s->layout.stride;
  bool ref = s->p.reference_attention;
  bool temporal = s->p.temporal_attention;
  int halves = cfg ? 2 : 1;
  float ps = s->g_pose_scale;

  /* Per-frame conditioning of the window, both halves: pose features in
   * both, hand tokens only in the cond half, reference (attention and
   * concat) only there. */
  for (int hf = 0; hf < halves; hf++) {
    bool cond = !cfg || hf == 1;
    for (int j = 0; j < n; j++) {
      int b = hf * n + j;
      int64_t slot = slot_of (s, first + j);
      const float *pf = s->pose_feat + (size_t) slot * s->pfs;
      const float *tk = cond && s->p.hand_tokens ?
          s->tokens + (size_t) slot * s->tfs : s->zero_tokens;
      float *res = s->res_batch + (size_t) b * s->pfs;
      for (size_t q = 0; q < s->pfs; q++)
        res[q] = ps * pf[q];
      memcpy (s->ctx_batch + (size_t) b * s->tfs, tk, s->tfs * sizeof (float));
      fill_input (s, s->x_batch + (size_t) b * s->xfs,
          x + (size_t) j * s->fs, cond);
      s->mask[b] = cond && ref;
    }
  }
  /* temporal: one call per half; else both halves in one batch */
  for (int call = 0; call < (temporal ? halves : 1); call++) {
    int b0 = temporal ? call * n : 0;
    int nb = temporal ? n : halves * n;
    AeTensor xin = ae_tensor_4d (s->x_batch + (size_t) b0 * s->xfs, nb,
        s->cin, s->h, s->w);
    AeTensor out = ae_tensor_4d (s->out_batch + (size_t) b0 * s->fs, nb,
        s->C, s->h, s->w);
    AeTensor res = ae_tensor_4d (s->res_batch + (size_t) b0 * s->pfs, nb,
        s->c0, s->h, s->w);
    AeTensor ctx = ae_tensor_3d (s->ctx_batch + (size_t) b0 * s->tfs, nb,
        AE_AVATAR_HAND_KP, s->D);
    AeUNetHooks hk;
    bool any_ref = false;

    for (int b = b0; b < b0 + nb; b++)
      any_ref |= s->mask[b];
    memset (&hk, 0, sizeof hk);
    hk.ref_mode = any_ref ? AE_REF_INJECT : AE_REF_OFF;
    hk.bank = any_ref ? (AeRefBank *) ae_avatar_reference_bank (s->ref) :
        NULL;
    hk.ref_batch_mask = any_ref ? s->mask + b0 : NULL;
    hk.temporal = temporal;
    hk.conv_in_residual = &res;
    if (ae_avatar_device_unet_forward (s->dev, AE_AVATAR_PART_UNET, &out,
            &xin, &t, 1, &ctx, &hk, &s->arena, err) < 0 ||
        ae_arena_reset (&s->arena, err) < 0)
      return -1;
  }
  if (cfg)
    memcpy (eps_u, s->out_batch, (size_t) n * s->fs * sizeof (float));
  memcpy (eps_c, s->out_batch + (size_t) (halves - 1) * n * s->fs,
      (size_t) n * s->fs * sizeof (float));
  return 0;
}

static int
group_eps (void *user, int step, float t, const float *x_in, int cfg,
    float *eps, AeError * err)
{
  AeAvatarStream *s = user;
  size_t n = s->g_floats;
  float *eps_c = cfg ? eps + n : eps;

  for (int i = 0; i < s->g_n; i++) {
    size_t off = s->win_off[i];
    if (unet_window (s, i, t, x_in + off, cfg, eps + off, eps_c + off,
            err) < 0)
      return -1;
    s->eps_u_ptrs[i] = eps + off;
    s->eps_c_ptrs[i] = eps_c + off;
  }
  /* overlapped windows of the group: fuse the predictions, each pass on
   * its own, before CFG */
  if (cfg && ae_fusion_fuse_group (&s->layout, s->g_first, s->g_n,
          s->g_nframes, s->eps_u_ptrs, s->fs, err) < 0)
    return -1;
  return ae_fusion_fuse_group (&s->layout, s->g_first, s->g_n, s->g_nframes,
      s->eps_c_ptrs, s->fs, err);
}

static int
group_step_hook (void *user, int step, float *latents, size_t n,
    AeError * err)
{
  AeAvatarStream *s = user;
  int last = s->g_n - 1;

  if (ae_fusion_carry_blend (s->carry, step, s->g_first, s->g_n,
          s->g_nframes, s->win_ptrs, err) < 0)
    return -1;
  if (s->win_len[last] == s->layout.window &&
      ae_fusion_carry_keep (s->carry, step, s->g_first + last,
          s->win_ptrs[last], s->win_len[last], err) < 0)
    return -1;
  if (s->p.progress)
    s->p.progress (s->p.progress_user, s->g_first, s->g_n, step,
        ae_scheduler_num_steps (s->sched));
  return 0;
}

/* LCM's fresh noise per step: a function of (seed, step, frame) so that
 * the copies of an overlap frame stay equal, correlated across frames as
 * the initial noise is (shared field: index -1 of the step's stream). */
static void
group_noise (void *user, int step, float *noise, size_t n)
{
  AeAvatarStream *s = user;
  uint64_t stream = AE_NOISE_STREAM_STEP (step);

  if (s->noise_a != 0.0f)
    ae_noise_fill (s->p.seed, stream, -1, s->step_shared, s->fs);
  for (int i = 0; i < s->g_n; i++) {
    int64_t first = (s->g_first + i) * s->layout.stride;
    for (int j = 0; j < s->win_len[i]; j++)
      mixed_noise (s, stream, first + j, s->step_shared,
          noise + s->win_off[i] + (size_t) j * s->fs);
  }
}

/* Denoises windows first .. first + n_windows - 1 (n_frames: N or
 * unknown) as one lockstep group. */
static int
run_group (AeAvatarStream * s, int64_t first, int n_windows,
    int64_t n_frames, AeError * err)
{
  AeSampleParams sp;
  size_t off = 0;

  if (group_alloc (s, n_windows, err) < 0)
    return -1;
  s->g_first = first;
  s->g_n = n_windows;
  s->g_nframes = n_frames;
  s->g_guidance = s->p.guidance_scale;
  s->g_pose_scale = s->p.pose_scale;
  for (int i = 0; i < n_windows; i++) {
    int64_t k = first + i;
    int len = ae_fusion_window_length (&s->layout, k, n_frames);
    int64_t f0 = ae_fusion_window_first (&s->layout, k);
    if (len <= 0)
      return ae_error (err, "avatar stream: window %lld is not formed",
          (long long) k);
    s->win_len[i] = len;
    s->win_off[i] = off;
    s->win_ptrs[i] = s->lat + off;
    for (int j = 0; j < len; j++) {
      float *x = s->lat + off + (size_t) j * s->fs;
      ae_avatar_stream_initial_noise (s, f0 + j, x);
      if (s->init_ref != 0.0f) {
        const float *z_ref = ae_avatar_reference_latent (s->ref)->data;
        for (size_t e = 0; e < s->fs; e++)
          x[e] = s->init_eps * x[e] + s->init_ref * z_ref[e];
      }
    }
    off += (size_t) len * s->fs;
  }
  s->g_floats = off;
  memset (&sp, 0, sizeof sp);
  sp.guidance_scale = s->g_guidance;
  sp.seed = s->p.seed;
  sp.eps_fn = group_eps;
  sp.step_hook = group_step_hook;
  sp.noise_fn = group_noise;
  sp.user = s;
  if (ae_sample (s->sched, &sp, s->lat, off, s->scratch, err) < 0)
    return -1;
  s->next_window = first + n_windows;
  s->ready_end = first + n_windows;
  return 0;
}

int
ae_avatar_stream_push_frame (AeAvatarStream * s, const uint8_t * pose_rgb,
    int stride, const float *hand_kp, AeError * err)
{
  int64_t f = s->n_pushed, slot;
  int H = s->p.height, Wd = s->p.width;
  size_t mark;
  AeTensor img, feat;
  float kp[AE_AVATAR_HAND_FLOATS];
  int64_t S = s->layout.stride, last_of_group;

  if (s->finished)
    return ae_error (err, "avatar stream: frame pushed after finish "
        "(reset first)");
  if (pose_rgb == NULL || stride < 3 * Wd)
    return ae_error (err, "avatar stream: pose frame %lld: no image or "
        "stride %d < %d", (long long) f, stride, 3 * Wd);
  /* the frame that completes the next group */
  last_of_group = s->L > 0 ? (s->next_window + s->L - 1) * S +
      s->layout.window - 1 : -1;
  if (f == last_of_group && s->pop_next < s->ready_end)
    return ae_error (err, "avatar stream: windows %lld..%lld were not "
        "popped before the next group", (long long) s->pop_next,
        (long long) s->ready_end - 1);
  if (s->L == 0 && f >= s->cap && ring_grow (s, 2 * s->cap, err) < 0)
    return -1;
  slot = slot_of (s, f);
  /* pose guider on this frame, into its ring slot */
  mark = ae_arena_mark (&s->arena);
  if (ae_arena_tensor4 (&s->arena, &img, 1, 3, H, Wd, err) < 0)
    return -1;
  for (int c = 0; c < 3; c++)
    for (int y = 0; y < H; y++) {
      const uint8_t *row = pose_rgb + (size_t) y * stride;
      float *o = img.data + ((size_t) c * H + y) * Wd;
      for (int x = 0; x < Wd; x++)
        o[x] = row[3 * x + c] * (1.0f / 255.0f);
    }
  feat = ae_tensor_4d (s->pose_feat + (size_t) slot * s->pfs, 1, s->c0,
      s->h, s->w);
  if (ae_pose_guider_forward (s->guider, &feat, &img, &s->arena, err) < 0) {
    ae_arena_release (&s->arena, mark);
    return -1;
  }
  ae_arena_release (&s->arena, mark);
  if (ae_arena_reset (&s->arena, err) < 0)
    return -1;
  /* hand tokens */
  if (hand_kp)
    memcpy (kp, hand_kp, sizeof kp);
  else
    memset (kp, 0, sizeof kp);
  if (ae_avatar_model_hand_tokens (s->model, kp, 1,
          s->tokens + (size_t) slot * s->tfs, err) < 0) {
    char why[sizeof err->msg];
    g_strlcpy (why, err ? err->msg : "", sizeof why);
    return ae_error (err, "avatar stream: pose frame %lld: hand key "
        "points: %s", (long long) f, why);
  }
  s->n_pushed++;
  if (f == last_of_group)
    return run_group (s, s->next_window, s->L, AE_FUSION_N_UNKNOWN, err);
  return 0;
}

int
ae_avatar_stream_finish (AeAvatarStream * s, AeError * err)
{
  int64_t N = s->n_pushed;
  int64_t K;
  int left;

  if (s->finished)
    return 0;
  if (s->pop_next < s->ready_end)
    return ae_error (err, "avatar stream: windows %lld..%lld were not "
        "popped before finish", (long long) s->pop_next,
        (long long) s->ready_end - 1);
  s->finished = true;
  K = ae_fusion_n_windows (&s->layout, N);
  s->last_window = K - 1;
  left = (int) (K - s->next_window);
  if (left <= 0)
    return 0;
  return run_group (s, s->next_window, left, N, err);
}

int
ae_avatar_stream_pop_window (AeAvatarStream * s, AeAvatarWindow * out)
{
  int i;

  if (s->pop_next >= s->ready_end)
    return 0;
  i = (int) (s->pop_next - s->g_first);
  out->index = s->pop_next;
  out->first_frame = ae_fusion_window_first (&s->layout, s->pop_next);
  out->n_frames = s->win_len[i];
  out->channels = s->C;
  out->height = s->h;
  out->width = s->w;
  out->last = s->finished && s->pop_next == s->last_window;
  out->latents = s->win_ptrs[i];
  s->pop_next++;
  return 1;
}

/* ---- final blend ------------------------------------------------------------ */

struct AeLatentBlender
{
  AeFusionLayout l;
  size_t fs;
  int slots;                    /* windows held, a ring by index % slots */
  float *data;                  /* slots x W x fs */
  int64_t *slot_window;         /* window index in the slot, -1 = none */
  int *slot_len;
  const float **copies;         /* slots pointers (one frame's copies) */
  int64_t next_window;          /* index expected next */
  int64_t next_frame;           /* next frame to pop */
  bool ended;
  int64_t n_frames;             /* N once ended */
};

AeLatentBlender *
ae_latent_blender_new (const AeFusionLayout * layout, size_t frame_floats,
    AeError * err)
{
  AeLatentBlender *b;
  AeFusionLayout chk;
  int slots;

  if (ae_fusion_layout_init (&chk, layout->window, layout->overlap,
          layout->mode, err) < 0)
    return NULL;
  if (frame_floats == 0) {
    ae_error (err, "latent blender: frame size 0");
    return NULL;
  }
  slots = (layout->window + layout->stride - 1) / layout->stride + 1;
  b = g_new0 (AeLatentBlender, 1);
  b->l = chk;
  b->fs = frame_floats;
  b->slots = slots;
  b->data = g_try_new (float, (size_t) slots * layout->window * frame_floats);
  if (b->data == NULL) {
    g_free (b);
    ae_error (err, "latent blender: out of memory");
    return NULL;
  }
  b->slot_window = g_new (int64_t, slots);
  b->slot_len = g_new0 (int, slots);
  b->copies = g_new (const float *, slots);
  ae_latent_blender_reset (b);
  return b;
}

void
ae_latent_blender_free (AeLatentBlender * b)
{
  if (b == NULL)
    return;
  g_free (b->data);
  g_free (b->slot_window);
  g_free (b->slot_len);
  g_free (b->copies);
  g_free (b);
}

void
ae_latent_blender_reset (AeLatentBlender * b)
{
  for (int i = 0; i < b->slots; i++)
    b->slot_window[i] = -1;
  b->next_window = 0;
  b->next_frame = 0;
  b->ended = false;
  b->n_frames = AE_FUSION_N_UNKNOWN;
}

int64_t
ae_latent_blender_frames_out (const AeLatentBlender * b)
{
  return b->next_frame;
}

int
ae_latent_blender_push (AeLatentBlender * b, int64_t index,
    int64_t first_frame, int n_frames, const float *latents, AeError * err)
{
  int W = b->l.window, O = b->l.overlap;
  int slot;
  int64_t old;

  if (b->ended)
    return ae_error (err, "latent blender: window %lld after the end of the "
        "stream", (long long) index);
  if (index != b->next_window)
    return ae_error (err, "latent blender: window %lld out of order "
        "(expected %lld)", (long long) index, (long long) b->next_window);
  if (first_frame != index * b->l.stride)
    return ae_error (err, "latent blender: window %lld starts at frame "
        "%lld, expected %lld", (long long) index, (long long) first_frame,
        (long long) (index * b->l.stride));
  if (n_frames > W || n_frames < 1 || (index > 0 && n_frames <= O))
    return ae_error (err, "latent blender: window %lld has %d frames "
        "(window %d, overlap %d)", (long long) index, n_frames, W, O);
  if (latents == NULL)
    return ae_error (err, "latent blender: window %lld has no data",
        (long long) index);
  slot = (int) (index % b->slots);
  old = b->slot_window[slot];
  if (old >= 0 && old * b->l.stride + b->slot_len[slot] > b->next_frame)
    return ae_error (err, "latent blender: frames from %lld were not popped "
        "before window %lld", (long long) b->next_frame, (long long) index);
  memcpy (b->data + (size_t) slot * W * b->fs, latents,
      (size_t) n_frames * b->fs * sizeof (float));
  b->slot_window[slot] = index;
  b->slot_len[slot] = n_frames;
  b->next_window = index + 1;
  if (n_frames < W)
    ae_latent_blender_finish (b);
  return 0;
}

void
ae_latent_blender_finish (AeLatentBlender * b)
{
  if (b->ended)
    return;
  b->ended = true;
  if (b->next_window == 0) {
    b->n_frames = 0;
    return;
  }
  {
    int slot = (int) ((b->next_window - 1) % b->slots);
    b->n_frames = ae_fusion_window_first (&b->l, b->next_window - 1) +
        b->slot_len[slot];
  }
}

int
ae_latent_blender_pop (AeLatentBlender * b, int64_t * frame, float *out)
{
  int64_t n = b->next_frame, ready, k0, k1;
  int count;

  if (b->next_window == 0)
    return 0;
  ready = b->ended ? b->n_frames :
      ae_fusion_frames_ready (&b->l, b->next_window - 1, AE_FUSION_N_UNKNOWN);
  if (n >= ready)
    return 0;
  count = ae_fusion_covering (&b->l, n, b->ended ? b->n_frames :
      AE_FUSION_N_UNKNOWN, &k0, &k1);
  if (count <= 0 || count > b->slots || k1 >= b->next_window)
    return 0;                   /* cannot happen for windows pushed in order */
  for (int i = 0; i < count; i++) {
    int64_t k = k0 + i;
    int slot = (int) (k % b->slots);
    if (b->slot_window[slot] != k)
      return 0;
    b->copies[i] = b->data + ((size_t) slot * b->l.window +
        (size_t) (n - k * b->l.stride)) * b->fs;
  }
  if (ae_fusion_blend_frame (&b->l, n, b->ended ? b->n_frames :
          AE_FUSION_N_UNKNOWN, b->copies, count, out, b->fs, NULL) < 0)
    return 0;
  *frame = n;
  b->next_frame++;
  return 1;
}
