/* Test cases of test_hand_encoder.c (included once, after its helpers). */

static const Variant plain = { 0 };

/* Tolerance of the float32 forward against the double reference: tokens
 * are LayerNorm outputs of size ~1, float rounding is ~1e-6. */
#define TOL 2e-5

static void
test_forward (void)
{
  Weights w;
  TestRng r = { 7 };
  float kp[2 * K * 3], tok[2 * K * D];
  double ref[2 * K * D];
  char *dir;
  AeHandEncoder *enc;
  AeError err;
  const AeHandEncoderConfig *c;

  make_weights (&w, 11);
  dir = write_model ("plain", &w, &plain);
  enc = load_ok (dir);
  c = ae_hand_encoder_get_config (enc);
  CHECK (c->num_keypoints == K && c->num_frequencies == NF &&
      c->hidden_dim == HID && c->cross_attention_dim == D &&
      fabsf (c->confidence_threshold - 0.3f) < 1e-7f, "config fields");
  random_keypoints (&r, kp, 2);
  REQUIRE (ae_hand_encoder_forward (enc, kp, 2, tok, &err) == 0, "%s",
      err.msg);
  reference (&w, kp, 2, ref);
  double m = max_diff (tok, ref, 2 * K * D);
  CHECK (m < TOL, "forward vs double reference: max abs %g", m);
  printf ("forward B=2: max abs vs double reference %.3g\n", m);
  /* A second call at the same batch gives the same bits. */
  float again[2 * K * D];
  REQUIRE (ae_hand_encoder_forward (enc, kp, 2, again, &err) == 0, "%s",
      err.msg);
  CHECK (memcmp (tok, again, sizeof tok) == 0, "repeat differs");
  ae_hand_encoder_free (enc);
  g_free (dir);
}

/* c = 0, c below the threshold and NaN c all give the same token: the
 * normalised missing_embedding + keypoint_embedding[k], whatever x, y. */
static void
test_missing (void)
{
  Weights w;
  float kp[K * 3], tok[K * D];
  double ref[K * D];
  char *dir;
  AeHandEncoder *enc;
  AeError err;
  float cs[4] = { 0.0f, 0.29f, NAN, -3.0f };

  make_weights (&w, 12);
  dir = write_model ("missing", &w, &plain);
  enc = load_ok (dir);
  for (int i = 0; i < 4; i++) {
    for (int p = 0; p < K; p++) {
      kp[3 * p] = 0.1f * (float) (p % 9) + 0.05f * (float) i;
      kp[3 * p + 1] = 0.9f - 0.02f * (float) p;
      kp[3 * p + 2] = cs[i];
    }
    REQUIRE (ae_hand_encoder_forward (enc, kp, 1, tok, &err) == 0, "%s",
        err.msg);
    /* Reference from x = y = 0: the result must not depend on them. */
    for (int p = 0; p < K; p++)
      kp[3 * p] = kp[3 * p + 1] = 0.0f;
    reference (&w, kp, 1, ref);
    double m = max_diff (tok, ref, K * D);
    CHECK (m < TOL, "missing c=%g: max abs %g", cs[i], m);
  }
  /* Just at the threshold the point is present (h_k is used). */
  for (int p = 0; p < K; p++) {
    kp[3 * p] = 0.5f;
    kp[3 * p + 1] = 0.25f;
    kp[3 * p + 2] = (p % 2) ? 0.3f : 0.0f;
  }
  REQUIRE (ae_hand_encoder_forward (enc, kp, 1, tok, &err) == 0, "%s",
      err.msg);
  reference (&w, kp, 1, ref);
  CHECK (max_diff (tok, ref, K * D) < TOL, "threshold case");
  float tok0[K * D];
  for (int p = 0; p < K; p++)
    kp[3 * p + 2] = 0.0f;
  REQUIRE (ae_hand_encoder_forward (enc, kp, 1, tok0, &err) == 0, "%s",
      err.msg);
  CHECK (memcmp (tok + D, tok0 + D, D * sizeof (float)) != 0,
      "c = threshold treated as missing");
  CHECK (memcmp (tok, tok0, D * sizeof (float)) == 0, "c = 0 changed");
  ae_hand_encoder_free (enc);
  g_free (dir);
}

/* F16 weights (exactly representable values) match F32; a batch of 3 is
 * the three single forwards; a batch larger than reserved still works. */
static void
test_f16_and_batch (void)
{
  Weights w;
  TestRng r = { 99 };
  Variant f16 = { .f16 = true };
  float kp[3 * K * 3], tok32[3 * K * D], tok16[3 * K * D], one[K * D];
  char *d32, *d16;
  AeHandEncoder *e32, *e16;
  AeError err;

  make_weights (&w, 13);
  d32 = write_model ("b32", &w, &plain);
  d16 = write_model ("b16", &w, &f16);
  e32 = load_ok (d32);
  e16 = load_ok (d16);
  random_keypoints (&r, kp, 3);
  REQUIRE (ae_hand_encoder_reserve (e16, 3, &err) == 0, "%s", err.msg);
  REQUIRE (ae_hand_encoder_forward (e32, kp, 3, tok32, &err) == 0, "%s",
      err.msg);
  REQUIRE (ae_hand_encoder_forward (e16, kp, 3, tok16, &err) == 0, "%s",
      err.msg);
  CHECK (memcmp (tok32, tok16, sizeof tok32) == 0, "F16 model differs");
  for (int b = 0; b < 3; b++) {
    REQUIRE (ae_hand_encoder_forward (e32, kp + b * K * 3, 1, one, &err)
        == 0, "%s", err.msg);
    double m = 0;
    for (int i = 0; i < K * D; i++)
      m = fmax (m, fabs (one[i] - tok32[b * K * D + i]));
    CHECK (m < 1e-6, "batch item %d differs from single forward: %g", b, m);
  }
  ae_hand_encoder_free (e32);
  ae_hand_encoder_free (e16);
  g_free (d32);
  g_free (d16);
}

static void
expect_load_error (const char *name, const Variant * v, const char *want1,
    const char *want2)
{
  Weights w;
  char *dir;
  AeHandEncoder *enc = (AeHandEncoder *) 0x1;
  AeError err = { "" };

  make_weights (&w, 14);
  dir = write_model (name, &w, v);
  CHECK (ae_hand_encoder_load (&enc, dir, &err) < 0, "%s: load succeeded",
      name);
  CHECK (enc == NULL, "%s: *out not NULL on error", name);
  CHECK (strstr (err.msg, want1) != NULL, "%s: '%s' not in '%s'", name,
      want1, err.msg);
  CHECK (strstr (err.msg, want2) != NULL, "%s: '%s' not in '%s'", name,
      want2, err.msg);
  g_free (dir);
}

static void
test_load_errors (void)
{
  Variant v;

  v = (Variant) { .skip_key = "missing_embedding" };
  expect_load_error ("nokey", &v, "missing_embedding",
      "diffusion_pytorch_model.safetensors");
  v = (Variant) { .bad_key = "linear_1.weight" };
  expect_load_error ("badshape", &v, "linear_1.weight", "expected (16,18)");
  v = (Variant) { .bad_key = "norm_out.bias" };
  expect_load_error ("badbias", &v, "norm_out.bias", "found (25)");
  v = (Variant) { .config = "{\"num_keypoints\": 42, \"num_frequencies\": 4,"
      " \"cross_attention_dim\": 24, \"confidence_threshold\": 0.3}" };
  expect_load_error ("nohidden", &v, "hidden_dim", "config.json");
  v = (Variant) { .config = "{\"num_keypoints\": 42, \"num_frequencies\": 4,"
      " \"hidden_dim\": 16, \"cross_attention_dim\": 24, "
      "\"confidence_threshold\": 1.5}" };
  expect_load_error ("badthr", &v, "confidence_threshold", "config.json");
  v = (Variant) { .config = "{\"num_keypoints\": 0, \"num_frequencies\": 4,"
      " \"hidden_dim\": 16, \"cross_attention_dim\": 24, "
      "\"confidence_threshold\": 0.3}" };
  expect_load_error ("zerok", &v, "num_keypoints", "config.json");
  /* Config says 5 frequencies: linear_1 of the folder is (16,18), not 22. */
  v = (Variant) { .config = "{\"num_keypoints\": 42, \"num_frequencies\": 5,"
      " \"hidden_dim\": 16, \"cross_attention_dim\": 24, "
      "\"confidence_threshold\": 0.3}" };
  expect_load_error ("cfgmismatch", &v, "linear_1.weight",
      "expected (16,22), found (16,18)");
  v = (Variant) { .config = "{not json" };
  expect_load_error ("badjson", &v, "config.json", "");

  AeHandEncoder *enc = NULL;
  AeError err = { "" };
  CHECK (ae_hand_encoder_load (&enc, "/nonexistent/hand", &err) < 0 &&
      strstr (err.msg, "/nonexistent/hand") != NULL, "no folder: '%s'",
      err.msg);
}

static void
test_forward_errors (void)
{
  Weights w;
  float kp[K * 3] = { 0 }, tok[K * D];
  char *dir;
  AeHandEncoder *enc;
  AeError err = { "" };

  make_weights (&w, 15);
  dir = write_model ("ferr", &w, &plain);
  enc = load_ok (dir);
  CHECK (ae_hand_encoder_forward (enc, kp, 0, tok, &err) < 0 &&
      strstr (err.msg, "batch") != NULL, "B=0: '%s'", err.msg);
  CHECK (ae_hand_encoder_forward (enc, NULL, 1, tok, &err) < 0, "NULL kp");
  kp[3 * 5] = NAN;
  kp[3 * 5 + 2] = 0.9f;
  CHECK (ae_hand_encoder_forward (enc, kp, 1, tok, &err) < 0 &&
      strstr (err.msg, "keypoint 5") != NULL, "NaN x: '%s'", err.msg);
  kp[3 * 5] = 0.5f;
  kp[3 * 7] = 3e37f;
  kp[3 * 7 + 2] = 1.0f;
  CHECK (ae_hand_encoder_forward (enc, kp, 1, tok, &err) < 0 &&
      strstr (err.msg, "keypoint 7") != NULL, "huge x: '%s'", err.msg);
  CHECK (ae_hand_encoder_forward (NULL, kp, 1, tok, &err) < 0, "NULL enc");
  ae_hand_encoder_free (enc);
  ae_hand_encoder_free (NULL);
  g_free (dir);
}

static void
test_keypoints_fill (void)
{
  float right[AE_HAND_POINTS * 3], kp[K * 3];
  AeError err = { "" };

  for (int i = 0; i < AE_HAND_POINTS; i++) {
    right[3 * i] = 10.0f * (float) i;
    right[3 * i + 1] = 200.0f - (float) i;
    right[3 * i + 2] = (i == 3) ? 0.0f : 0.5f + 0.1f * (float) i;
  }
  right[3 * 7] = NAN;
  memset (kp, 0x7f, sizeof kp);
  REQUIRE (ae_hand_keypoints_fill (kp, NULL, right, 400, 200, &err) == 0,
      "%s", err.msg);
  for (int i = 0; i < AE_HAND_POINTS * 3; i++)
    CHECK (kp[i] == 0.0f, "left hand entry %d = %g, want 0", i, kp[i]);
  for (int i = 0; i < AE_HAND_POINTS; i++) {
    const float *p = kp + 3 * (AE_HAND_POINTS + i);
    bool gone = (i == 3 || i == 7);
    float x = gone ? 0.0f : right[3 * i] / 400.0f;
    float y = gone ? 0.0f : right[3 * i + 1] / 200.0f;
    float c = gone ? 0.0f : right[3 * i + 2];
    CHECK (p[0] == x && p[1] == y && p[2] == c,
        "right %d = (%g,%g,%g), want (%g,%g,%g)", i, p[0], p[1], p[2], x, y,
        c);
  }
  CHECK (ae_hand_keypoints_fill (kp, right, right, 0, 200, &err) < 0 &&
      strstr (err.msg, "canvas") != NULL, "canvas 0: '%s'", err.msg);
}
