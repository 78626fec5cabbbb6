/* face-run: runs the face recapture procedure of engine/face-align.c and
 * engine/face-model.c on tensors from a safetensors file, for the check
 * against train/face_models.py (test_face_torch.py).
 *
 *   face-run FACE_DIR IN.safetensors OUT.safetensors
 *
 * IN: frame (H, W, 3) values 0..255, face (N, 3) in frame pixels,
 * texture (C, h, w), id_input (1, 3, S, S), params (4) = steps, seed,
 * strength, crop size (0 = the model's).
 * OUT: transform (4), crop (3, S, S), hard (1, S, S), soft (1, S, S),
 * heat (3, S, S), identity (E), context (L, D), generated (3, S, S),
 * blended (H, W, 3), confident (1). Exit 0, 1 on an engine error (message
 * on stderr), 2 on bad usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "face-align.h"
#include "face-model.h"
#include "safetensors.h"

static int
read_tensor (AeSafetensors * st, const char *name, int ndim, float **out,
    int64_t * shape, AeError * err)
{
  const AeStTensorInfo *info = ae_st_find (st, name);
  int64_t n = 1;

  if (info == NULL)
    return ae_error (err, "%s: missing tensor '%s'", ae_st_path (st), name);
  if (info->ndim != ndim)
    return ae_error (err, "%s: tensor '%s' has %d dims, expected %d",
        ae_st_path (st), name, info->ndim, ndim);
  for (int i = 0; i < ndim; i++) {
    shape[i] = info->shape[i];
    n *= info->shape[i];
  }
  *out = g_new (float, n);
  return ae_st_read_f32 (st, name, *out, n, err);
}

static int
add (AeStWriter * w, const char *name, float *data, int ndim,
    const int64_t * shape, AeError * err)
{
  AeTensor t = ae_tensor_nd (data, ndim, shape);
  return ae_st_writer_add (w, name, &t, err);
}

int
main (int argc, char **argv)
{
  AeSafetensors *st = NULL;
  AeFaceModel *m = NULL;
  AeFaceReference *ref = NULL;
  AeFaceSession *s = NULL;
  AeStWriter *w = NULL;
  AeArena arena;
  AeError err = { "" };
  float *frame = NULL, *face = NULL, *texture = NULL, *id_input = NULL;
  float *params = NULL, *identity = NULL, *blended = NULL;
  int64_t fs[3], fcs[2], ts[3], is[4], ps[1];
  uint8_t *rgb = NULL;
  int rc = 1, size, height, width;
  AeFaceTransform tr = { 0, 0, 0, 0 };
  float confident;

  if (argc != 4) {
    fprintf (stderr, "usage: face-run FACE_DIR IN.safetensors "
        "OUT.safetensors\n");
    return 2;
  }
  ae_arena_init (&arena, 0, &err);
  if (ae_face_model_load (&m, argv[1], &err) < 0 ||
      ae_st_open (&st, argv[2], &err) < 0 ||
      read_tensor (st, "frame", 3, &frame, fs, &err) < 0 ||
      read_tensor (st, "face", 2, &face, fcs, &err) < 0 ||
      read_tensor (st, "texture", 3, &texture, ts, &err) < 0 ||
      read_tensor (st, "id_input", 4, &id_input, is, &err) < 0 ||
      read_tensor (st, "params", 1, &params, ps, &err) < 0)
    goto out;
  height = (int) fs[0];
  width = (int) fs[1];
  rgb = g_new (uint8_t, (size_t) height * width * 3);
  for (int64_t i = 0; i < fs[0] * fs[1] * 3; i++)
    rgb[i] = (uint8_t) (frame[i] < 0 ? 0 : frame[i] > 255 ? 255 : frame[i]);
  if (ae_face_session_new (&s, m, (int) params[3], &err) < 0)
    goto out;
  size = ae_face_session_crop_size (s);
  identity = g_new (float, ae_face_model_info (m)->identity_dim);
  if (ae_face_identity_encode (m, id_input, 1, identity, &arena, &err) < 0 ||
      ae_face_reference_new_from_parts (&ref, m, texture, identity, &arena,
          &err) < 0)
    goto out;
  confident = ae_face_confident (face, (int) fcs[0],
      ae_face_model_info (m)->align.min_confidence) ? 1.0f : 0.0f;
  blended = g_new (float, (size_t) height * width * 3);
  if (confident > 0) {
    if (ae_face_fit (face, (int) fcs[0], &ae_face_model_info (m)->align,
            size, &tr, &err) < 0)
      goto out;
    ae_face_session_prepare (s, rgb, width, height, width * 3, face,
        (int) fcs[0], &tr);
    if (ae_face_session_generate (s, ref, (int) params[0],
            (uint64_t) params[1], &err) < 0)
      goto out;
    ae_face_session_blend (s, rgb, width, height, width * 3, &tr, params[2]);
  }
  for (int64_t i = 0; i < fs[0] * fs[1] * 3; i++)
    blended[i] = rgb[i];
  w = ae_st_writer_new ();
  {
    float trf[4] = { (float) tr.a, (float) tr.b, (float) tr.tx,
      (float) tr.ty
    };
    int tokens;
    const float *ctx = ae_face_reference_context (ref, &tokens);
    int64_t s3[3] = { 3, size, size }, s1[3] = { 1, size, size };
    int64_t four[1] = { 4 }, one[1] = { 1 };
    int64_t es[1] = { ae_face_model_info (m)->identity_dim };
    int64_t cs[2] = { tokens, ae_face_model_info (m)->cross_attention_dim };
    if (add (w, "transform", trf, 1, four, &err) < 0 ||
        add (w, "crop", (float *) ae_face_session_plane (s, "crop"), 3, s3,
            &err) < 0 ||
        add (w, "hard", (float *) ae_face_session_plane (s, "hard"), 3, s1,
            &err) < 0 ||
        add (w, "soft", (float *) ae_face_session_plane (s, "soft"), 3, s1,
            &err) < 0 ||
        add (w, "heat", (float *) ae_face_session_plane (s, "heat"), 3, s3,
            &err) < 0 ||
        add (w, "generated", (float *) ae_face_session_plane (s,
                "generated"), 3, s3, &err) < 0 ||
        add (w, "identity", identity, 1, es, &err) < 0 ||
        add (w, "context", (float *) ctx, 2, cs, &err) < 0 ||
        add (w, "blended", blended, 3, fs, &err) < 0 ||
        add (w, "confident", &confident, 1, one, &err) < 0 ||
        ae_st_writer_save (w, argv[3], &err) < 0)
      goto out;
  }
  rc = 0;
out:
  if (rc != 0)
    fprintf (stderr, "face-run: %s\n", err.msg);
  ae_st_writer_free (w);
  ae_face_session_free (s);
  ae_face_reference_free (ref);
  ae_face_model_free (m);
  ae_st_close (st);
  ae_arena_clear (&arena);
  g_free (frame);
  g_free (face);
  g_free (texture);
  g_free (id_input);
  g_free (params);
  g_free (identity);
  g_free (blended);
  g_free (rgb);
  return rc;
}
