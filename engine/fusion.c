/* Temporal fusion of overlapping latent windows: see fusion.h and
 * docs/temporal-fusion.md for the formulas this file implements. */
#include <stdlib.h>
#include <string.h>

#include "fusion.h"

/* A frame is held by at most ceil (W / S) windows; weights of that many
 * copies live on the stack, so the layout is limited to it. */
#define AE_FUSION_MAX_COVER 64

struct AeFusionCarry
{
  AeFusionLayout layout;
  int steps;
  size_t frame_size;
  float *kept;                  /* steps x O x frame_size */
  int64_t *kept_window;         /* per step: window kept from, -1 if none */
};

int
ae_fusion_layout_init (AeFusionLayout * l, int window, int overlap,
    AeFusionMode mode, AeError * err)
{
  int stride;

  if (window < 1)
    return ae_error (err, "fusion: window %d must be at least 1", window);
  if (overlap < 0 || overlap >= window)
    return ae_error (err, "fusion: overlap %d must be in [0, window %d)",
        overlap, window);
  if (mode != AE_FUSION_PROGRESSIVE && mode != AE_FUSION_UNIFORM)
    return ae_error (err, "fusion: unknown fusion mode %d", (int) mode);
  stride = window - overlap;
  if ((window + stride - 1) / stride > AE_FUSION_MAX_COVER)
    return ae_error (err, "fusion: window %d with overlap %d puts a frame in "
        "more than %d windows", window, overlap, AE_FUSION_MAX_COVER);
  l->window = window;
  l->overlap = overlap;
  l->stride = stride;
  l->mode = mode;
  return 0;
}

int64_t
ae_fusion_n_windows (const AeFusionLayout * l, int64_t n_frames)
{
  if (n_frames <= 0)
    return 0;
  if (n_frames <= l->window)
    return 1;
  return 1 + (n_frames - l->window + l->stride - 1) / l->stride;
}

int64_t
ae_fusion_window_first (const AeFusionLayout * l, int64_t k)
{
  return k * l->stride;
}

int
ae_fusion_window_length (const AeFusionLayout * l, int64_t k,
    int64_t n_frames)
{
  int64_t rest;

  if (k < 0)
    return 0;
  if (n_frames < 0)
    return l->window;
  if (k >= ae_fusion_n_windows (l, n_frames))
    return 0;
  /* The last window is shortened to end at frame N. */
  rest = n_frames - k * l->stride;
  return rest < l->window ? (int) rest : l->window;
}

int64_t
ae_fusion_window_last (const AeFusionLayout * l, int64_t k, int64_t n_frames)
{
  int len = ae_fusion_window_length (l, k, n_frames);

  if (len == 0)
    return -1;
  return k * l->stride + len - 1;
}

int
ae_fusion_covering (const AeFusionLayout * l, int64_t n, int64_t n_frames,
    int64_t * k_first, int64_t * k_last)
{
  int64_t first, last;

  *k_first = -1;
  *k_last = -1;
  if (n < 0 || (n_frames >= 0 && n >= n_frames))
    return 0;
  /* Window k holds n when kS <= n < kS + W. */
  last = n / l->stride;
  first = n < l->window ? 0 : (n - l->window) / l->stride + 1;
  /* At EOS the windows after the last one are never formed. */
  if (n_frames >= 0 && last > ae_fusion_n_windows (l, n_frames) - 1)
    last = ae_fusion_n_windows (l, n_frames) - 1;
  *k_first = first;
  *k_last = last;
  return (int) (last - first + 1);
}

int64_t
ae_fusion_emit_window (const AeFusionLayout * l, int64_t n)
{
  return n / l->stride;
}

int64_t
ae_fusion_frames_ready (const AeFusionLayout * l, int64_t k, int64_t n_frames)
{
  int64_t ready;

  if (k < 0)
    return 0;
  if (n_frames >= 0 && k >= ae_fusion_n_windows (l, n_frames) - 1)
    return n_frames;
  /* The last O frames of window k wait for window k + 1. */
  ready = (k + 1) * l->stride;
  if (n_frames >= 0 && ready > n_frames)
    ready = n_frames;
  return ready;
}

int64_t
ae_fusion_latency_frames (const AeFusionLayout * l, int lookahead)
{
  if (lookahead <= 0)
    return -1;
  /* The first frame of a group waits for the group's last window, whose
   * last frame is (L - 1) S + W - 1 frames later. */
  return (int64_t) lookahead * l->stride + l->overlap - 1;
}

float
ae_fusion_position_weight (const AeFusionLayout * l, int j)
{
  double x, y;

  if (j < 0 || j >= l->window)
    return 0.0f;
  if (l->mode == AE_FUSION_UNIFORM)
    return 1.0f;
  x = (j + 0.5) * 2.0 / l->window;
  y = 2.0 - x;
  return (float) (x < y ? x : y);
}

/* Unnormalised weight of window k for frame n (0 if k does not hold n). */
static double
raw_weight (const AeFusionLayout * l, int64_t n, int64_t k)
{
  int64_t j = n - k * l->stride;

  if (k < 0 || j < 0 || j >= l->window)
    return 0.0;
  return ae_fusion_position_weight (l, (int) j);
}

static double
raw_weight_sum (const AeFusionLayout * l, int64_t n, int64_t k_first,
    int64_t k_last)
{
  double sum = 0.0;
  int64_t k;

  for (k = k_first; k <= k_last; k++)
    sum += raw_weight (l, n, k);
  return sum;
}

float
ae_fusion_weight_in (const AeFusionLayout * l, int64_t n, int64_t k,
    int64_t k_first, int64_t k_last)
{
  double sum;

  if (k < k_first || k > k_last)
    return 0.0f;
  sum = raw_weight_sum (l, n, k_first, k_last);
  if (sum <= 0.0)
    return 0.0f;
  return (float) (raw_weight (l, n, k) / sum);
}

float
ae_fusion_weight (const AeFusionLayout * l, int64_t n, int64_t k,
    int64_t n_frames)
{
  int64_t k_first, k_last;

  if (ae_fusion_covering (l, n, n_frames, &k_first, &k_last) == 0)
    return 0.0f;
  return ae_fusion_weight_in (l, n, k, k_first, k_last);
}

/* Every copy of one frame becomes sum_i w[i] copies[i], element-wise. */
static void
blend_copies (float *const *copies, const float *w, int n_copies,
    size_t frame_size, float *out)
{
  size_t e;
  int i;

  for (e = 0; e < frame_size; e++) {
    float acc = 0.0f;

    for (i = 0; i < n_copies; i++)
      acc += w[i] * copies[i][e];
    if (out != NULL) {
      out[e] = acc;
    } else {
      for (i = 0; i < n_copies; i++)
        copies[i][e] = acc;
    }
  }
}

static int
check_group (const AeFusionLayout * l, int64_t first_window, int n_windows,
    int64_t n_frames, float *const *windows, AeError * err)
{
  int i;

  if (first_window < 0 || n_windows < 1)
    return ae_error (err, "fusion: bad group: first window %lld, %d windows",
        (long long) first_window, n_windows);
  if (windows == NULL)
    return ae_error (err, "fusion: group at window %lld has no tensors",
        (long long) first_window);
  for (i = 0; i < n_windows; i++) {
    if (ae_fusion_window_length (l, first_window + i, n_frames) == 0)
      return ae_error (err, "fusion: window %lld is not formed for %lld "
          "frames", (long long) (first_window + i), (long long) n_frames);
    if (windows[i] == NULL)
      return ae_error (err, "fusion: tensor of window %lld is NULL",
          (long long) (first_window + i));
  }
  return 0;
}

int
ae_fusion_fuse_group (const AeFusionLayout * l, int64_t first_window,
    int n_windows, int64_t n_frames, float *const *windows,
    size_t frame_size, AeError * err)
{
  int64_t group_last = first_window + n_windows - 1;
  int64_t n, n_end;

  if (check_group (l, first_window, n_windows, n_frames, windows, err) != 0)
    return -1;
  n_end = ae_fusion_window_last (l, group_last, n_frames);
  /* Only frames after the group's first window's head can be shared by two
   * of its windows: from the second window's first frame on. */
  for (n = (first_window + 1) * l->stride; n <= n_end; n++) {
    float *copies[AE_FUSION_MAX_COVER];
    float w[AE_FUSION_MAX_COVER];
    int64_t k_first, k_last, k;
    int count = 0;

    ae_fusion_covering (l, n, n_frames, &k_first, &k_last);
    if (k_first < first_window)
      k_first = first_window;
    if (k_last > group_last)
      k_last = group_last;
    if (k_last <= k_first)
      continue;
    for (k = k_first; k <= k_last; k++) {
      copies[count] = windows[k - first_window]
          + (size_t) (n - k * l->stride) * frame_size;
      w[count] = ae_fusion_weight_in (l, n, k, k_first, k_last);
      count++;
    }
    blend_copies (copies, w, count, frame_size, NULL);
  }
  return 0;
}

int
ae_fusion_blend_frame (const AeFusionLayout * l, int64_t n, int64_t n_frames,
    const float *const *copies, int n_copies, float *out, size_t frame_size,
    AeError * err)
{
  float w[AE_FUSION_MAX_COVER];
  int64_t k_first, k_last;
  int count, i;

  count = ae_fusion_covering (l, n, n_frames, &k_first, &k_last);
  if (count == 0)
    return ae_error (err, "fusion: frame %lld is not in a stream of %lld "
        "frames", (long long) n, (long long) n_frames);
  if (n_copies != count)
    return ae_error (err, "fusion: frame %lld is held by %d windows, got %d "
        "copies", (long long) n, count, n_copies);
  if (copies == NULL || out == NULL)
    return ae_error (err, "fusion: frame %lld: NULL copies or output",
        (long long) n);
  for (i = 0; i < count; i++) {
    if (copies[i] == NULL)
      return ae_error (err, "fusion: frame %lld: copy %d is NULL",
          (long long) n, i);
    w[i] = ae_fusion_weight_in (l, n, k_first + i, k_first, k_last);
  }
  /* blend_copies only reads the copies; the cast drops const for its
   * shared signature. */
  blend_copies ((float *const *) copies, w, count, frame_size, out);
  return 0;
}

AeFusionCarry *
ae_fusion_carry_new (const AeFusionLayout * l, int steps, size_t frame_size,
    AeError * err)
{
  AeFusionCarry *c;
  size_t n_kept;
  int i;

  if (steps < 1 || frame_size == 0) {
    ae_error (err, "fusion: carry needs steps >= 1 and frame_size > 0 "
        "(got %d, %zu)", steps, frame_size);
    return NULL;
  }
  c = calloc (1, sizeof *c);
  if (c == NULL) {
    ae_error (err, "fusion: out of memory for the carry");
    return NULL;
  }
  c->layout = *l;
  c->steps = steps;
  c->frame_size = frame_size;
  n_kept = (size_t) steps * (size_t) l->overlap * frame_size;
  c->kept = n_kept > 0 ? malloc (n_kept * sizeof (float)) : NULL;
  c->kept_window = malloc ((size_t) steps * sizeof (int64_t));
  if ((n_kept > 0 && c->kept == NULL) || c->kept_window == NULL) {
    ae_fusion_carry_free (c);
    ae_error (err, "fusion: out of memory for %zu kept latent floats",
        n_kept);
    return NULL;
  }
  for (i = 0; i < steps; i++)
    c->kept_window[i] = -1;
  return c;
}

void
ae_fusion_carry_free (AeFusionCarry * c)
{
  if (c == NULL)
    return;
  free (c->kept);
  free (c->kept_window);
  free (c);
}

void
ae_fusion_carry_reset (AeFusionCarry * c)
{
  int i;

  for (i = 0; i < c->steps; i++)
    c->kept_window[i] = -1;
}

static float *
kept_at (AeFusionCarry * c, int step)
{
  return c->kept + (size_t) step * (size_t) c->layout.overlap * c->frame_size;
}

int
ae_fusion_carry_keep (AeFusionCarry * c, int step, int64_t window,
    const float *latents, int window_length, AeError * err)
{
  const AeFusionLayout *l = &c->layout;

  if (step < 0 || step >= c->steps)
    return ae_error (err, "fusion: keep: step %d outside [0, %d)", step,
        c->steps);
  if (window < 0 || latents == NULL)
    return ae_error (err, "fusion: keep: bad window %lld or NULL latents",
        (long long) window);
  if (window_length != l->window)
    return ae_error (err, "fusion: keep: window %lld has %d frames, not %d: "
        "only a full window has one after it", (long long) window,
        window_length, l->window);
  if (l->overlap > 0)
    memcpy (kept_at (c, step), latents + (size_t) l->stride * c->frame_size,
        (size_t) l->overlap * c->frame_size * sizeof (float));
  c->kept_window[step] = window;
  return 0;
}

int
ae_fusion_carry_blend (AeFusionCarry * c, int step, int64_t first_window,
    int n_windows, int64_t n_frames, float *const *windows, AeError * err)
{
  const AeFusionLayout *l = &c->layout;
  int64_t group_last = first_window + n_windows - 1;
  int i;

  if (step < 0 || step >= c->steps)
    return ae_error (err, "fusion: blend: step %d outside [0, %d)", step,
        c->steps);
  if (check_group (l, first_window, n_windows, n_frames, windows, err) != 0)
    return -1;
  if (first_window == 0 || l->overlap == 0)
    return 0;
  if (c->kept_window[step] != first_window - 1)
    return ae_error (err, "fusion: blend: step %d of window %lld was not "
        "kept before window %lld", step, (long long) (first_window - 1),
        (long long) first_window);
  for (i = 0; i < l->overlap; i++) {
    int64_t n = first_window * l->stride + i;
    const float *kept = kept_at (c, step) + (size_t) i * c->frame_size;
    int64_t k_first, k_last, k;
    double before, all;
    float a;

    if (ae_fusion_covering (l, n, n_frames, &k_first, &k_last) == 0)
      break;
    if (k_last > group_last)
      k_last = group_last;
    /* The kept latents stand for every window before the group (they were
     * themselves blended with the ones before them). */
    before = raw_weight_sum (l, n, k_first, first_window - 1);
    all = raw_weight_sum (l, n, k_first, k_last);
    a = (float) (before / all);
    for (k = first_window; k <= k_last; k++) {
      float *x = windows[k - first_window]
          + (size_t) (n - k * l->stride) * c->frame_size;
      size_t e;

      for (e = 0; e < c->frame_size; e++)
        x[e] = a * kept[e] + (1.0f - a) * x[e];
    }
  }
  return 0;
}
