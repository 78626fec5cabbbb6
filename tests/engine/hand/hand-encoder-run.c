/* Test driver: hand-encoder-run DIR KEYPOINTS.f32 B TOKENS.f32 [REPEAT]
 * Loads the hand_encoder/ folder DIR, reads B x K x 3 little-endian float32
 * key points, writes B x K x D float32 tokens. Used by
 * test_hand_encoder_torch.py to compare with train/models.py. With REPEAT,
 * the forward runs that many more times and the mean time is printed. */
#include <stdio.h>
#include <stdlib.h>

#include <glib.h>

#include "hand-encoder.h"

/* Mean wall time of `repeat` forwards (after the first, which sized the
 * scratch). */
static int
print_timing (AeHandEncoder * enc, const float *kp, int b, float *tokens,
    long repeat)
{
  AeError err;
  gint64 t0;

  if (repeat <= 0 || repeat > 1000000) {
    fprintf (stderr, "bad repeat count %ld\n", repeat);
    return -1;
  }
  t0 = g_get_monotonic_time ();
  for (long i = 0; i < repeat; i++)
    if (ae_hand_encoder_forward (enc, kp, b, tokens, &err) < 0) {
      fprintf (stderr, "%s\n", err.msg);
      return -1;
    }
  printf ("hand encoder forward B=%d: %.1f us (mean of %ld)\n", b,
      (double) (g_get_monotonic_time () - t0) / (double) repeat, repeat);
  return 0;
}

int
main (int argc, char **argv)
{
  AeHandEncoder *enc = NULL;
  const AeHandEncoderConfig *cfg;
  AeError err;
  gchar *in = NULL;
  gsize len = 0;
  float *tokens = NULL;
  long b;
  size_t want, n_tok;
  int ret = 1;

  if (argc != 5 && argc != 6) {
    fprintf (stderr, "usage: %s DIR KEYPOINTS.f32 B TOKENS.f32 [REPEAT]\n",
        argv[0]);
    return 2;
  }
  b = strtol (argv[3], NULL, 10);
  if (b <= 0 || b > 4096) {
    fprintf (stderr, "bad batch '%s'\n", argv[3]);
    return 2;
  }
  if (ae_hand_encoder_load (&enc, argv[1], &err) < 0) {
    fprintf (stderr, "%s\n", err.msg);
    return 1;
  }
  cfg = ae_hand_encoder_get_config (enc);
  want = (size_t) b * (size_t) cfg->num_keypoints * 3 * sizeof (float);
  if (!g_file_get_contents (argv[2], &in, &len, NULL) || len != want) {
    fprintf (stderr, "%s: expected %zu bytes, found %zu\n", argv[2], want,
        (size_t) len);
    goto out;
  }
  n_tok = (size_t) b * (size_t) cfg->num_keypoints *
      (size_t) cfg->cross_attention_dim;
  tokens = g_new (float, n_tok);
  if (ae_hand_encoder_forward (enc, (const float *) in, (int) b, tokens,
          &err) < 0) {
    fprintf (stderr, "%s\n", err.msg);
    goto out;
  }
  if (argc == 6 && print_timing (enc, (const float *) in, (int) b, tokens,
          strtol (argv[5], NULL, 10)) < 0)
    goto out;
  if (!g_file_set_contents (argv[4], (const gchar *) tokens,
          (gssize) (n_tok * sizeof (float)), NULL)) {
    fprintf (stderr, "%s: cannot write\n", argv[4]);
    goto out;
  }
  ret = 0;
out:
  g_free (tokens);
  g_free (in);
  ae_hand_encoder_free (enc);
  return ret;
}
