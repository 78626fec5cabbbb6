/* Tests of engine/fusion.c: the window schedule, the fusion weights, the
 * emission order, the latency formula, in-loop group fusion against a naive
 * whole-clip reference, and the carry between lookahead groups against
 * hand-computed values. Self-contained: needs nothing from ../shared. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fusion.h"

static int failures = 0;
static int checks = 0;

#define CHECK(cond, ...) \
  do { \
    checks++; \
    if (!(cond)) { \
      if (failures < 50) { \
        fprintf (stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
        fprintf (stderr, __VA_ARGS__); \
        fprintf (stderr, "\n"); \
      } \
      failures++; \
    } \
  } while (0)

#define CLOSE(a, b, tol) (fabs ((double) (a) - (double) (b)) <= (tol))

static const AeFusionMode modes[] = { AE_FUSION_PROGRESSIVE,
  AE_FUSION_UNIFORM
};

static AeFusionLayout
layout (int w, int o, AeFusionMode mode)
{
  AeFusionLayout l;
  AeError err;

  if (ae_fusion_layout_init (&l, w, o, mode, &err) != 0) {
    fprintf (stderr, "FATAL: layout W=%d O=%d: %s\n", w, o, err.msg);
    exit (1);
  }
  return l;
}

/* The papers' triangle, written out again here from MimicMotion's formula. */
static double
ref_weight (int w, int j, AeFusionMode mode)
{
  double x = (j + 0.5) * 2.0 / w;

  if (mode == AE_FUSION_UNIFORM)
    return 1.0;
  return fmin (x, 2.0 - x);
}

static void
test_layout_errors (void)
{
  AeFusionLayout l;
  AeError err;

  err.msg[0] = '\0';
  CHECK (ae_fusion_layout_init (&l, 0, 0, AE_FUSION_UNIFORM, &err) == -1
      && strstr (err.msg, "window") != NULL, "window 0 accepted: %s",
      err.msg);
  CHECK (ae_fusion_layout_init (&l, 4, 4, AE_FUSION_UNIFORM, &err) == -1
      && strstr (err.msg, "overlap") != NULL, "overlap = window accepted");
  CHECK (ae_fusion_layout_init (&l, 4, -1, AE_FUSION_UNIFORM, &err) == -1,
      "negative overlap accepted");
  CHECK (ae_fusion_layout_init (&l, 4, 1, (AeFusionMode) 7, &err) == -1
      && strstr (err.msg, "mode") != NULL, "bad mode accepted");
  CHECK (ae_fusion_layout_init (&l, 200, 199, AE_FUSION_UNIFORM, &err) == -1,
      "200 windows per frame accepted");
  CHECK (ae_fusion_layout_init (&l, 16, 4, AE_FUSION_PROGRESSIVE, &err) == 0
      && l.stride == 12, "16/4 refused or wrong stride");
}

static void
test_triangle (void)
{
  AeFusionLayout l4 = layout (4, 2, AE_FUSION_PROGRESSIVE);
  AeFusionLayout l16 = layout (16, 4, AE_FUSION_PROGRESSIVE);
  int w, j;

  /* Hand values: W = 4 gives 0.25 0.75 0.75 0.25. */
  CHECK (CLOSE (ae_fusion_position_weight (&l4, 0), 0.25, 1e-7), "w0");
  CHECK (CLOSE (ae_fusion_position_weight (&l4, 1), 0.75, 1e-7), "w1");
  CHECK (CLOSE (ae_fusion_position_weight (&l4, 2), 0.75, 1e-7), "w2");
  CHECK (CLOSE (ae_fusion_position_weight (&l4, 3), 0.25, 1e-7), "w3");
  CHECK (CLOSE (ae_fusion_position_weight (&l16, 0), 1.0 / 16, 1e-7), "w16");
  CHECK (CLOSE (ae_fusion_position_weight (&l16, 7), 15.0 / 16, 1e-7), "w7");
  CHECK (ae_fusion_position_weight (&l4, 4) == 0.0f
      && ae_fusion_position_weight (&l4, -1) == 0.0f, "outside window");
  for (w = 1; w <= 40; w++) {
    AeFusionLayout l = layout (w, 0, AE_FUSION_PROGRESSIVE);

    for (j = 0; j < w; j++) {
      float a = ae_fusion_position_weight (&l, j);

      CHECK (a == ae_fusion_position_weight (&l, w - 1 - j),
          "triangle W=%d not symmetric at %d", w, j);
      CHECK (a > 0.0f && a <= 1.0f, "triangle W=%d j=%d = %g", w, j, a);
      CHECK (CLOSE (a, ref_weight (w, j, AE_FUSION_PROGRESSIVE), 1e-6),
          "triangle W=%d j=%d", w, j);
      if (j > 0 && j <= (w - 1) / 2)
        CHECK (a > ae_fusion_position_weight (&l, j - 1),
            "triangle W=%d not rising at %d", w, j);
    }
  }
}

/* The schedule covers [0, N) with windows [kS, kS + W) cut at N, and every
 * formed window holds a frame no earlier one holds. */
static void
check_schedule (const AeFusionLayout * l, int64_t n_frames)
{
  int64_t k_count = ae_fusion_n_windows (l, n_frames);
  int64_t k, n;
  int *cover = calloc ((size_t) n_frames + 1, sizeof (int));

  for (k = 0; k < k_count; k++) {
    int64_t first = ae_fusion_window_first (l, k);
    int64_t last = ae_fusion_window_last (l, k, n_frames);
    int len = ae_fusion_window_length (l, k, n_frames);

    CHECK (len >= 1 && len <= l->window && last == first + len - 1,
        "W=%d O=%d N=%lld window %lld: len %d", l->window, l->overlap,
        (long long) n_frames, (long long) k, len);
    CHECK (last < n_frames, "window past N");
    CHECK (len == l->window || k == k_count - 1, "short window not last");
    CHECK (k == 0 || last > ae_fusion_window_last (l, k - 1, n_frames),
        "window %lld holds no new frame", (long long) k);
    for (n = first; n <= last; n++)
      cover[n]++;
  }
  CHECK (ae_fusion_window_length (l, k_count, n_frames) == 0
      && ae_fusion_window_last (l, k_count, n_frames) == -1,
      "window after the last is formed");
  for (n = 0; n < n_frames; n++) {
    int64_t kf, kl;
    int count = ae_fusion_covering (l, n, n_frames, &kf, &kl);

    CHECK (count == cover[n] && count >= 1, "W=%d O=%d N=%lld frame %lld: "
        "covering %d, windows %d", l->window, l->overlap,
        (long long) n_frames, (long long) n, count, cover[n]);
    for (k = kf; k <= kl; k++)
      CHECK (ae_fusion_window_first (l, k) <= n
          && n <= ae_fusion_window_last (l, k, n_frames),
          "covering window does not hold the frame");
  }
  CHECK (ae_fusion_covering (l, n_frames, n_frames, &k, &n) == 0,
      "frame N covered");
  free (cover);
}

static void
test_schedule (void)
{
  int w, o;
  int64_t n;

  for (w = 1; w <= 17; w++)
    for (o = 0; o < w; o++)
      for (n = 1; n <= 70; n++)
        check_schedule (&(AeFusionLayout) {
            w, o, w - o, AE_FUSION_UNIFORM}, n);
  {
    AeFusionLayout l = layout (16, 4, AE_FUSION_PROGRESSIVE);

    CHECK (ae_fusion_n_windows (&l, 0) == 0, "N=0");
    CHECK (ae_fusion_n_windows (&l, 5) == 1, "N=5");
    CHECK (ae_fusion_n_windows (&l, 16) == 1, "N=16");
    CHECK (ae_fusion_n_windows (&l, 17) == 2, "N=17");
    CHECK (ae_fusion_n_windows (&l, 28) == 2, "N=28");
    CHECK (ae_fusion_n_windows (&l, 29) == 3, "N=29");
    CHECK (ae_fusion_window_length (&l, 1, 17) == 5, "17: last window");
    CHECK (ae_fusion_window_length (&l, 1, AE_FUSION_N_UNKNOWN) == 16,
        "window while streaming");
  }
}

/* Weights are positive on covering windows and sum to 1 per frame, while
 * streaming and at EOS, over the papers' weights. */
static void
test_weights_sum (void)
{
  int w, o, m;
  int64_t n_frames, n, k;

  for (m = 0; m < 2; m++)
    for (w = 1; w <= 20; w++)
      for (o = 0; o < w; o++) {
        AeFusionLayout l = layout (w, o, modes[m]);

        for (n_frames = -1; n_frames <= 60; n_frames++) {
          int64_t end = n_frames < 0 ? 60 : n_frames;

          if (n_frames == 0)
            continue;
          for (n = 0; n < end; n++) {
            int64_t kf, kl;
            double sum = 0.0, ref_sum = 0.0;

            ae_fusion_covering (&l, n, n_frames, &kf, &kl);
            for (k = kf; k <= kl; k++)
              ref_sum += ref_weight (w, (int) (n - k * l.stride), modes[m]);
            for (k = kf - 2; k <= kl + 2; k++) {
              float a = ae_fusion_weight (&l, n, k, n_frames);

              sum += a;
              if (k < kf || k > kl) {
                CHECK (a == 0.0f, "weight outside covering windows");
              } else {
                double ref = ref_weight (w, (int) (n - k * l.stride),
                    modes[m]) / ref_sum;
                CHECK (a > 0.0f && CLOSE (a, ref, 1e-6), "W=%d O=%d N=%lld "
                    "n=%lld k=%lld: %g, expected %g", w, o,
                    (long long) n_frames, (long long) n, (long long) k, a,
                    ref);
              }
            }
            CHECK (CLOSE (sum, 1.0, 1e-5), "W=%d O=%d mode %d N=%lld n=%lld:"
                " weights sum to %g", w, o, m, (long long) n_frames,
                (long long) n, sum);
          }
        }
      }
}

/* latentfuse's order: windows arrive one by one (N unknown), frames leave
 * as ae_fusion_frames_ready allows, EOS flushes the rest. Every frame must
 * leave exactly once, in order, when its last covering window arrived (or
 * at EOS, when that window is the final one). */
static void
check_emission (const AeFusionLayout * l, int64_t n_frames)
{
  int64_t k_count = ae_fusion_n_windows (l, n_frames);
  int64_t next = 0;             /* next frame to leave */
  int64_t have = 0;             /* frames held in windows that arrived */
  int64_t k, kf, kl;

  for (k = 0; k < k_count; k++) {
    int64_t ready = ae_fusion_frames_ready (l, k, AE_FUSION_N_UNKNOWN);

    have = ae_fusion_window_last (l, k, n_frames) + 1;
    if (ready > have)
      ready = have;
    CHECK (ready >= next, "frames_ready went back");
    CHECK (ae_fusion_frames_ready (l, k, n_frames) >= ready,
        "known N releases fewer frames");
    for (; next < ready; next++) {
      ae_fusion_covering (l, next, n_frames, &kf, &kl);
      CHECK (kl == k, "W=%d O=%d N=%lld: frame %lld left at window %lld, "
          "its last window is %lld", l->window, l->overlap,
          (long long) n_frames, (long long) next, (long long) k,
          (long long) kl);
      CHECK (ae_fusion_emit_window (l, next) == k, "emit_window");
    }
  }
  /* EOS */
  CHECK (ae_fusion_frames_ready (l, k_count - 1, n_frames) == n_frames,
      "EOS does not flush all");
  for (; next < n_frames; next++) {
    ae_fusion_covering (l, next, n_frames, &kf, &kl);
    CHECK (kl == k_count - 1, "frame %lld flushed at EOS before its window",
        (long long) next);
  }
  CHECK (next == n_frames, "not every frame left");
}

static void
test_emission (void)
{
  int w, o;
  int64_t n;

  for (w = 1; w <= 24; w++)
    for (o = 0; o < w; o++)
      for (n = 1; n <= 200; n++)
        check_emission (&(AeFusionLayout) {
            w, o, w - o, AE_FUSION_PROGRESSIVE}, n);
}

/* Simulates avatardiffuse (groups of L windows, a group runs when its last
 * frame arrived) and latentfuse on an endless stream, and measures the
 * largest number of frames arriving after frame n before n leaves. */
static void
test_latency (void)
{
  int w, o, lk;

  for (w = 1; w <= 20; w++)
    for (o = 0; o < w; o++)
      for (lk = 1; lk <= 5; lk++) {
        AeFusionLayout l = layout (w, o, AE_FUSION_UNIFORM);
        int64_t worst = 0, n;

        for (n = 0; n < 40 * w; n++) {
          int64_t k = ae_fusion_emit_window (&l, n);
          int64_t group_last = (k / lk + 1) * lk - 1;
          int64_t arrived = ae_fusion_window_last (&l, group_last,
              AE_FUSION_N_UNKNOWN);

          if (arrived - n > worst)
            worst = arrived - n;
        }
        CHECK (ae_fusion_latency_frames (&l, lk) == worst, "W=%d O=%d L=%d: "
            "latency %lld, simulated %lld", w, o, lk,
            (long long) ae_fusion_latency_frames (&l, lk), (long long) worst);
        if (lk == 1)
          CHECK (worst == w - 1, "L=1 latency is not W-1");
      }
  {
    AeFusionLayout l = layout (16, 4, AE_FUSION_UNIFORM);

    CHECK (ae_fusion_latency_frames (&l, 0) == -1, "L=all bounded");
    CHECK (ae_fusion_latency_frames (&l, 2) == 27, "16/4 L=2");
  }
}

/* A fake noise prediction that differs per window and per step, so fusion
 * has something to do. */
static float
fake_eps (int64_t k, int step, int64_t pos, size_t e, float x)
{
  return sinf (0.7f * (float) k + 0.3f * (float) step + 0.11f * (float) pos
      + 0.05f * (float) e + x);
}

/* Whole-clip lockstep denoising (L = all) through ae_fusion_fuse_group (one
 * group of all windows), and
 * naively: one latent per frame, eps of every window fused per frame with
 * the papers' normalised weights. They must agree; all copies of a frame
 * stay equal. */
static void
check_offline (int w, int o, AeFusionMode mode, int64_t n_frames)
{
  const size_t fs = 3;
  const int steps = 4;
  AeFusionLayout l = layout (w, o, mode);
  int64_t k_count = ae_fusion_n_windows (&l, n_frames);
  float **win_x = calloc ((size_t) k_count, sizeof (float *));
  float **win_eps = calloc ((size_t) k_count, sizeof (float *));
  float *ref = calloc ((size_t) n_frames * fs, sizeof (float));
  float *ref_eps = calloc ((size_t) n_frames * fs, sizeof (float));
  double *ref_wsum = calloc ((size_t) n_frames, sizeof (double));
  int64_t k, n, g;
  int step;
  int lk = (int) k_count;
  AeError err;

  /* Initial noise: a function of (frame, element), shared by the copies. */
  for (n = 0; n < n_frames; n++)
    for (size_t e = 0; e < fs; e++)
      ref[n * fs + e] = cosf (1.3f * (float) n + (float) e);
  for (k = 0; k < k_count; k++) {
    int len = ae_fusion_window_length (&l, k, n_frames);

    win_x[k] = malloc ((size_t) len * fs * sizeof (float));
    win_eps[k] = malloc ((size_t) len * fs * sizeof (float));
    memcpy (win_x[k], ref + ae_fusion_window_first (&l, k) * fs,
        (size_t) len * fs * sizeof (float));
  }
  for (step = 0; step < steps; step++) {
    /* Reference. */
    memset (ref_eps, 0, (size_t) n_frames * fs * sizeof (float));
    memset (ref_wsum, 0, (size_t) n_frames * sizeof (double));
    for (k = 0; k < k_count; k++) {
      int len = ae_fusion_window_length (&l, k, n_frames);
      int64_t first = ae_fusion_window_first (&l, k);

      for (int j = 0; j < len; j++) {
        double wt = ref_weight (w, j, mode);

        for (size_t e = 0; e < fs; e++)
          ref_eps[(first + j) * fs + e] += (float) (wt * fake_eps (k, step, j,
                  e, ref[(first + j) * fs + e]));
        ref_wsum[first + j] += wt;
      }
    }
    for (n = 0; n < n_frames * (int64_t) fs; n++)
      ref[n] -= 0.1f * (float) (ref_eps[n] / ref_wsum[n / fs]);
    /* Fusion in groups of lk windows. */
    for (k = 0; k < k_count; k++) {
      int len = ae_fusion_window_length (&l, k, n_frames);

      for (int j = 0; j < len; j++)
        for (size_t e = 0; e < fs; e++)
          win_eps[k][j * fs + e] = fake_eps (k, step, j, e,
              win_x[k][j * fs + e]);
    }
    for (g = 0; g < k_count; g += lk) {
      int nw = (int) (k_count - g < lk ? k_count - g : lk);

      CHECK (ae_fusion_fuse_group (&l, g, nw, n_frames, win_eps + g, fs,
              &err) == 0, "fuse_group: %s", err.msg);
    }
    for (k = 0; k < k_count; k++) {
      int len = ae_fusion_window_length (&l, k, n_frames);

      for (int j = 0; j < len * (int) fs; j++)
        win_x[k][j] -= 0.1f * win_eps[k][j];
    }
  }
  for (k = 0; k < k_count; k++) {
    int len = ae_fusion_window_length (&l, k, n_frames);
    int64_t first = ae_fusion_window_first (&l, k);

    for (int j = 0; j < len * (int) fs; j++)
      CHECK (CLOSE (win_x[k][j], ref[first * fs + j], 1e-5),
          "W=%d O=%d mode %d N=%lld: window %lld float %d: %g, naive %g",
          w, o, (int) mode, (long long) n_frames, (long long) k, j,
          win_x[k][j], ref[first * fs + j]);
  }
  for (k = 0; k < k_count; k++) {
    free (win_x[k]);
    free (win_eps[k]);
  }
  free (win_x);
  free (win_eps);
  free (ref);
  free (ref_eps);
  free (ref_wsum);
}

static void
test_offline (void)
{
  int w, o, m;
  int64_t n;

  for (m = 0; m < 2; m++)
    for (w = 1; w <= 9; w++)
      for (o = 0; o < w; o++)
        for (n = 1; n <= 30; n += 3)
          check_offline (w, o, modes[m], n);
  check_offline (16, 4, AE_FUSION_PROGRESSIVE, 53);
  check_offline (16, 12, AE_FUSION_PROGRESSIVE, 41);
  check_offline (16, 8, AE_FUSION_UNIFORM, 40);
}

/* The streaming driver as avatardiffuse will run it: groups of lk windows
 * in lockstep (fuse_group on eps each step), the group's first window
 * blended with the kept per-step latents of the window before it, the
 * group's last full window kept. Window w's final latents go to *out.
 * eps_per_window = 0 makes the prediction independent of the window. */
static void
run_stream (const AeFusionLayout * l, int64_t n_frames, int lk, int steps,
    size_t fs, int eps_per_window, float **out)
{
  int64_t k_count = ae_fusion_n_windows (l, n_frames);
  float *eps[64];
  AeError err;
  AeFusionCarry *c = ae_fusion_carry_new (l, steps, fs, &err);
  int64_t g;

  if (c == NULL || lk > 64) {
    fprintf (stderr, "FATAL: carry: %s\n", err.msg);
    exit (1);
  }
  for (g = 0; g < k_count; g += lk) {
    int nw = (int) (k_count - g < lk ? k_count - g : lk);
    int64_t last = g + nw - 1;
    int i, step;

    for (i = 0; i < nw; i++) {
      int len = ae_fusion_window_length (l, g + i, n_frames);
      int64_t first = ae_fusion_window_first (l, g + i);

      eps[i] = malloc ((size_t) len * fs * sizeof (float));
      for (int j = 0; j < len; j++)
        for (size_t e = 0; e < fs; e++)
          out[g + i][j * fs + e] = cosf (1.3f * (float) (first + j)
              + (float) e);
    }
    for (step = 0; step < steps; step++) {
      for (i = 0; i < nw; i++) {
        int len = ae_fusion_window_length (l, g + i, n_frames);
        int64_t first = ae_fusion_window_first (l, g + i);

        for (int j = 0; j < len; j++)
          for (size_t e = 0; e < fs; e++)
            eps[i][j * fs + e] = eps_per_window ?
                fake_eps (g + i, step, j, e, out[g + i][j * fs + e]) :
                fake_eps (0, step, first + j, e, out[g + i][j * fs + e]);
      }
      CHECK (ae_fusion_fuse_group (l, g, nw, n_frames, eps, fs, &err) == 0,
          "fuse_group: %s", err.msg);
      for (i = 0; i < nw; i++) {
        int len = ae_fusion_window_length (l, g + i, n_frames);

        for (int j = 0; j < len * (int) fs; j++)
          out[g + i][j] -= 0.1f * eps[i][j];
      }
      CHECK (ae_fusion_carry_blend (c, step, g, nw, n_frames, out + g,
              &err) == 0, "carry_blend: %s", err.msg);
      if (last < k_count - 1)
        CHECK (ae_fusion_carry_keep (c, step, last, out[last],
                ae_fusion_window_length (l, last, n_frames), &err) == 0,
            "carry_keep: %s", err.msg);
    }
    for (i = 0; i < nw; i++)
      free (eps[i]);
  }
  ae_fusion_carry_free (c);
}

/* L = 1 written naively: per step, the newest latent of every frame; a
 * window's first O frames blend with it by the summed weight of the
 * windows before it over the windows up to it. */
static void
naive_causal (const AeFusionLayout * l, int64_t n_frames, int steps,
    size_t fs, float **out)
{
  int64_t k_count = ae_fusion_n_windows (l, n_frames);
  float *newest = calloc ((size_t) steps * n_frames * fs, sizeof (float));
  int64_t k;

  for (k = 0; k < k_count; k++) {
    int len = ae_fusion_window_length (l, k, n_frames);
    int64_t first = ae_fusion_window_first (l, k);
    float *x = out[k];

    for (int j = 0; j < len; j++)
      for (size_t e = 0; e < fs; e++)
        x[j * fs + e] = cosf (1.3f * (float) (first + j) + (float) e);
    for (int step = 0; step < steps; step++) {
      float *nw = newest + (size_t) step * n_frames * fs;

      for (int j = 0; j < len; j++)
        for (size_t e = 0; e < fs; e++)
          x[j * fs + e] -= 0.1f * fake_eps (k, step, j, e, x[j * fs + e]);
      for (int j = 0; k > 0 && j < l->overlap && j < len; j++) {
        int64_t n = first + j;
        double before = 0.0, all = 0.0;

        for (int64_t q = 0; q <= k; q++) {
          int64_t pos = n - q * l->stride;

          if (pos < 0 || pos >= l->window)
            continue;
          all += ref_weight (l->window, (int) pos, l->mode);
          if (q < k)
            before += ref_weight (l->window, (int) pos, l->mode);
        }
        for (size_t e = 0; e < fs; e++)
          x[j * fs + e] = (float) (before / all) * nw[n * fs + e]
              + (float) (1.0 - before / all) * x[j * fs + e];
      }
      for (int j = 0; j < len; j++)
        memcpy (nw + (first + j) * fs, x + j * fs, fs * sizeof (float));
    }
  }
  free (newest);
}

static float **
alloc_windows (const AeFusionLayout * l, int64_t n_frames, size_t fs)
{
  int64_t k_count = ae_fusion_n_windows (l, n_frames);
  float **w = calloc ((size_t) k_count, sizeof (float *));

  for (int64_t k = 0; k < k_count; k++)
    w[k] = calloc ((size_t) ae_fusion_window_length (l, k, n_frames) * fs,
        sizeof (float));
  return w;
}

static void
free_windows (const AeFusionLayout * l, int64_t n_frames, float **w)
{
  for (int64_t k = 0; k < ae_fusion_n_windows (l, n_frames); k++)
    free (w[k]);
  free (w);
}

static void
check_stream (int w, int o, AeFusionMode mode, int64_t n_frames)
{
  const size_t fs = 2;
  const int steps = 3;
  AeFusionLayout l = layout (w, o, mode);
  int64_t k_count = ae_fusion_n_windows (&l, n_frames);
  float **a = alloc_windows (&l, n_frames, fs);
  float **b = alloc_windows (&l, n_frames, fs);
  int64_t k;
  int lk;

  /* L = 1 against the naive causal form. */
  run_stream (&l, n_frames, 1, steps, fs, 1, a);
  naive_causal (&l, n_frames, steps, fs, b);
  for (k = 0; k < k_count; k++)
    for (int j = 0; j < ae_fusion_window_length (&l, k, n_frames) * (int) fs;
        j++)
      CHECK (CLOSE (a[k][j], b[k][j], 1e-5), "W=%d O=%d N=%lld L=1 window "
          "%lld float %d: %g, naive %g", w, o, (long long) n_frames,
          (long long) k, j, a[k][j], b[k][j]);
  /* When every window predicts the same, any L gives L = all's result. */
  run_stream (&l, n_frames, (int) k_count, steps, fs, 0, b);
  for (lk = 1; lk <= 3; lk++) {
    run_stream (&l, n_frames, lk, steps, fs, 0, a);
    for (k = 0; k < k_count; k++)
      for (int j = 0; j < ae_fusion_window_length (&l, k, n_frames) * (int) fs;
          j++)
        CHECK (CLOSE (a[k][j], b[k][j], 1e-5), "W=%d O=%d N=%lld L=%d: "
            "window-independent eps differs from L=all", w, o,
            (long long) n_frames, lk);
  }
  /* Within a group, with window-dependent eps, the copies of a frame stay
   * equal (one eps per frame, one kept latent). */
  for (lk = 2; lk <= 3; lk++) {
    run_stream (&l, n_frames, lk, steps, fs, 1, a);
    for (int64_t n = 0; n < n_frames; n++) {
      int64_t kf, kl;

      ae_fusion_covering (&l, n, n_frames, &kf, &kl);
      for (k = kf + 1; k <= kl; k++) {
        if (k / lk != kf / lk)
          continue;
        for (size_t e = 0; e < fs; e++)
          CHECK (a[k][(n - k * l.stride) * fs + e]
              == a[kf][(n - kf * l.stride) * fs + e], "W=%d O=%d L=%d: "
              "copies of frame %lld differ in a group", w, o, lk,
              (long long) n);
      }
    }
  }
  free_windows (&l, n_frames, a);
  free_windows (&l, n_frames, b);
}

static void
test_stream (void)
{
  int w, o, m;

  for (m = 0; m < 2; m++)
    for (w = 1; w <= 9; w++)
      for (o = 0; o < w; o++)
        for (int64_t n = 1; n <= 31; n += 5)
          check_stream (w, o, modes[m], n);
  check_stream (16, 4, AE_FUSION_PROGRESSIVE, 45);
  check_stream (16, 12, AE_FUSION_PROGRESSIVE, 45);
}

/* Fusion of equal copies is the identity: fuse_group, blend_frame and
 * carry_blend. */
static void
test_identity (void)
{
  const size_t fs = 5;
  int w, o, m;

  for (m = 0; m < 2; m++)
    for (w = 1; w <= 12; w++)
      for (o = 0; o < w; o++) {
        AeFusionLayout l = layout (w, o, modes[m]);
        int64_t n_frames = 3 * w + 1;
        int64_t k_count = ae_fusion_n_windows (&l, n_frames);
        float *win[64];
        float *orig[64];
        float out[5];
        int64_t k, n;
        AeError err;
        AeFusionCarry *c = ae_fusion_carry_new (&l, 2, fs, &err);

        CHECK (c != NULL && k_count <= 64, "carry_new: %s", err.msg);
        for (k = 0; k < k_count; k++) {
          int len = ae_fusion_window_length (&l, k, n_frames);

          win[k] = malloc ((size_t) len * fs * sizeof (float));
          orig[k] = malloc ((size_t) len * fs * sizeof (float));
          for (int j = 0; j < len; j++)
            for (size_t e = 0; e < fs; e++)
              win[k][j * fs + e] = orig[k][j * fs + e] =
                  (float) ((ae_fusion_window_first (&l, k) + j) * 7 % 13)
                  - 0.25f * (float) e;
        }
        CHECK (ae_fusion_fuse_group (&l, 0, (int) k_count, n_frames, win, fs,
                &err) == 0, "fuse_group: %s", err.msg);
        for (k = 1; k < k_count; k++) {
          int len = ae_fusion_window_length (&l, k - 1, n_frames);

          if (len == w)
            CHECK (ae_fusion_carry_keep (c, 1, k - 1, win[k - 1], len,
                    &err) == 0, "keep: %s", err.msg);
          CHECK (ae_fusion_carry_blend (c, 1, k, 1, n_frames, win + k,
                  &err) == 0, "blend: %s", err.msg);
        }
        for (k = 0; k < k_count; k++) {
          int len = ae_fusion_window_length (&l, k, n_frames);

          for (int j = 0; j < len * (int) fs; j++)
            CHECK (CLOSE (win[k][j], orig[k][j], 1e-5), "W=%d O=%d: not "
                "identity at window %lld float %d", w, o, (long long) k, j);
        }
        for (n = 0; n < n_frames; n++) {
          const float *copies[64];
          int64_t kf, kl;
          int count = ae_fusion_covering (&l, n, n_frames, &kf, &kl);

          for (k = kf; k <= kl; k++)
            copies[k - kf] = win[k] + (n - k * l.stride) * (int64_t) fs;
          CHECK (ae_fusion_blend_frame (&l, n, n_frames, copies, count, out,
                  fs, &err) == 0, "blend_frame: %s", err.msg);
          for (size_t e = 0; e < fs; e++)
            CHECK (CLOSE (out[e], copies[0][e], 1e-5), "blend_frame not "
                "identity");
        }
        for (k = 0; k < k_count; k++) {
          free (win[k]);
          free (orig[k]);
        }
        ae_fusion_carry_free (c);
      }
}

/* W = 4, O = 2, N = 6: windows [0, 4) and [2, 6). Triangle weights 0.25
 * 0.75 0.75 0.25: frame 2 is position 2 of window 0 (0.75) and position 0
 * of window 1 (0.25); frame 3 is positions 3 (0.25) and 1 (0.75). */
static void
test_hand_example (void)
{
  AeFusionLayout tri = layout (4, 2, AE_FUSION_PROGRESSIVE);
  AeFusionLayout uni = layout (4, 2, AE_FUSION_UNIFORM);
  float w0[4] = { 1, 2, 3, 4 };
  float w1[4] = { 10, 20, 30, 40 };
  float *group[2] = { w0, w1 };
  float *one[1];
  float out;
  AeError err;
  AeFusionCarry *c = ae_fusion_carry_new (&tri, 2, 1, &err);
  AeFusionCarry *cu = ae_fusion_carry_new (&uni, 1, 1, &err);

  /* Lockstep group of both windows. */
  CHECK (ae_fusion_fuse_group (&tri, 0, 2, 6, group, 1, &err) == 0, "%s",
      err.msg);
  CHECK (w0[0] == 1 && w0[1] == 2, "unshared frames changed");
  CHECK (CLOSE (w0[2], 4.75, 1e-6) && CLOSE (w1[0], 4.75, 1e-6), "frame 2: "
      "%g %g, expected 4.75", w0[2], w1[0]);
  CHECK (CLOSE (w0[3], 16.0, 1e-6) && CLOSE (w1[1], 16.0, 1e-6), "frame 3: "
      "%g %g, expected 16", w0[3], w1[1]);
  CHECK (w1[2] == 30 && w1[3] == 40, "tail changed");

  /* Final blend of frame 2 (latentfuse). */
  {
    float a = 3, b = 10;
    const float *cp[2] = { &a, &b };
    CHECK (ae_fusion_blend_frame (&tri, 2, 6, cp, 2, &out, 1, &err) == 0
        && CLOSE (out, 4.75, 1e-6), "blend_frame: %g", out);
    CHECK (ae_fusion_blend_frame (&tri, 2, 6, cp, 1, &out, 1, &err) == -1,
        "one copy of a frame held by two accepted");
  }

  /* Streaming, L = 1: window 0 runs first and is kept after each step;
   * window 1 then blends with the kept latents of the same step. */
  {
    float k0s0[4] = { 1, 2, 3, 4 }, k0s1[4] = { 5, 6, 7, 8 };
    float x[4] = { 10, 20, 30, 40 };
    float y[4] = { 0, 0, 0, 0 };

    one[0] = x;
    CHECK (ae_fusion_carry_blend (c, 0, 1, 1, AE_FUSION_N_UNKNOWN, one,
            &err) == -1 && strstr (err.msg, "not kept") != NULL,
        "blend without keep accepted: %s", err.msg);
    CHECK (ae_fusion_carry_keep (c, 0, 0, k0s0, 4, &err) == 0, "%s", err.msg);
    CHECK (ae_fusion_carry_keep (c, 1, 0, k0s1, 4, &err) == 0, "%s", err.msg);
    CHECK (ae_fusion_carry_blend (c, 0, 1, 1, AE_FUSION_N_UNKNOWN, one,
            &err) == 0, "%s", err.msg);
    CHECK (CLOSE (x[0], 4.75, 1e-6) && CLOSE (x[1], 16.0, 1e-6)
        && x[2] == 30 && x[3] == 40, "step 0: %g %g %g %g", x[0], x[1], x[2],
        x[3]);
    one[0] = y;
    CHECK (ae_fusion_carry_blend (c, 1, 1, 1, 6, one, &err) == 0, "%s",
        err.msg);
    CHECK (CLOSE (y[0], 5.25, 1e-6) && CLOSE (y[1], 2.0, 1e-6)
        && y[2] == 0 && y[3] == 0, "step 1: %g %g %g %g", y[0], y[1], y[2],
        y[3]);
    /* Window 2 needs window 1 kept. */
    CHECK (ae_fusion_carry_blend (c, 0, 2, 1, AE_FUSION_N_UNKNOWN, one,
            &err) == -1, "blend after the wrong window accepted");
    /* A shortened (last) window has nothing after it. */
    CHECK (ae_fusion_carry_keep (c, 0, 1, x, 3, &err) == -1
        && strstr (err.msg, "window 1") != NULL, "short keep accepted");
    CHECK (ae_fusion_carry_keep (c, 2, 1, x, 4, &err) == -1, "step 2 kept");
    ae_fusion_carry_reset (c);
    one[0] = x;
    CHECK (ae_fusion_carry_blend (c, 0, 1, 1, 6, one, &err) == -1,
        "blend after reset accepted");
  }
  /* Uniform: both weights 0.5. */
  {
    float k0[4] = { 1, 2, 3, 4 }, x[4] = { 10, 20, 30, 40 };

    one[0] = x;
    CHECK (ae_fusion_carry_keep (cu, 0, 0, k0, 4, &err) == 0, "%s", err.msg);
    CHECK (ae_fusion_carry_blend (cu, 0, 1, 1, 6, one, &err) == 0, "%s",
        err.msg);
    CHECK (CLOSE (x[0], 6.5, 1e-6) && CLOSE (x[1], 12.0, 1e-6), "uniform: "
        "%g %g", x[0], x[1]);
  }
  /* Window 2 is not formed for N = 6. */
  one[0] = w1;
  CHECK (ae_fusion_fuse_group (&tri, 2, 1, 6, one, 1, &err) == -1
      && strstr (err.msg, "window 2") != NULL, "unformed window accepted");
  CHECK (ae_fusion_carry_new (&tri, 0, 1, &err) == NULL, "0 steps accepted");
  ae_fusion_carry_free (c);
  ae_fusion_carry_free (cu);
}

int
main (void)
{
  test_layout_errors ();
  test_triangle ();
  test_schedule ();
  test_weights_sum ();
  test_emission ();
  test_latency ();
  test_offline ();
  test_stream ();
  test_identity ();
  test_hand_example ();
  printf ("%d checks, %d failures\n", checks, failures);
  return failures == 0 ? 0 : 1;
}
