/* PoseGuider: config, weights and forward (see pose-guider.h). */
#include "pose-guider.h"

#include <stdio.h>
#include <string.h>

#include <glib.h>

#include "config.h"
#include "ops.h"

static int
pg_config_fill (AePoseGuiderConfig * cfg, const AeConfig * c, AeError * err)
{
  int64_t v, boc[AE_POSE_GUIDER_MAX_LEVELS];
  int n;

  memset (cfg, 0, sizeof *cfg);
  if (ae_config_get_int (c, "conditioning_channels", &v, err) < 0)
    return -1;
  cfg->conditioning_channels = (int) v;
  if (ae_config_get_int (c, "conditioning_embedding_channels", &v, err) < 0)
    return -1;
  cfg->conditioning_embedding_channels = (int) v;
  if (ae_config_get_int_list (c, "block_out_channels", boc,
          AE_POSE_GUIDER_MAX_LEVELS, &n, false, err) < 0)
    return -1;
  if (n < 1)
    return ae_error (err, "%s: field 'block_out_channels': empty",
        ae_config_path (c));
  cfg->n_levels = n;
  for (int i = 0; i < n; i++) {
    if (boc[i] <= 0)
      return ae_error (err, "%s: field 'block_out_channels': entry %d is "
          "%lld", ae_config_path (c), i, (long long) boc[i]);
    cfg->block_out_channels[i] = (int) boc[i];
  }
  if (cfg->conditioning_channels <= 0 ||
      cfg->conditioning_embedding_channels <= 0)
    return ae_error (err, "%s: field 'conditioning_channels' / "
        "'conditioning_embedding_channels': must be > 0", ae_config_path (c));
  return 0;
}

int
ae_pose_guider_config_load (AePoseGuiderConfig * cfg, const char *path,
    AeError * err)
{
  AeConfig *c;
  int ret;

  if (ae_config_load (&c, path, err) < 0)
    return -1;
  ret = pg_config_fill (cfg, c, err);
  ae_config_free (c);
  return ret;
}

static int
pg_conv (AeSafetensors * st, AeUNetParam * p, int64_t cout, int64_t cin,
    const char *name, AeError * err)
{
  int64_t d[4] = { cout, cin, 3, 3 };

  if (ae_st_getf (st, &p->weight, 4, d, err, "%s.weight", name) < 0 ||
      ae_st_getf (st, &p->bias, 1, d, err, "%s.bias", name) < 0)
    return -1;
  return 0;
}

int
ae_pose_guider_load_files (AePoseGuider ** out, const char *config_path,
    const char *weights_path, AeError * err)
{
  AePoseGuider *g = g_new0 (AePoseGuider, 1);
  const AePoseGuiderConfig *cfg = &g->cfg;
  char name[64];

  *out = NULL;
  if (ae_pose_guider_config_load (&g->cfg, config_path, err) < 0 ||
      ae_st_open (&g->st, weights_path, err) < 0)
    goto fail;
  if (pg_conv (g->st, &g->conv_in, cfg->block_out_channels[0],
          cfg->conditioning_channels, "conv_in", err) < 0)
    goto fail;
  for (int i = 0; i + 1 < cfg->n_levels; i++) {
    int c = cfg->block_out_channels[i], c1 = cfg->block_out_channels[i + 1];
    snprintf (name, sizeof name, "blocks.%d", 2 * i);
    if (pg_conv (g->st, &g->blocks[2 * i], c, c, name, err) < 0)
      goto fail;
    snprintf (name, sizeof name, "blocks.%d", 2 * i + 1);
    if (pg_conv (g->st, &g->blocks[2 * i + 1], c1, c, name, err) < 0)
      goto fail;
  }
  if (pg_conv (g->st, &g->conv_out, cfg->conditioning_embedding_channels,
          cfg->block_out_channels[cfg->n_levels - 1], "conv_out", err) < 0)
    goto fail;
  *out = g;
  return 0;
fail:
  ae_pose_guider_free (g);
  return -1;
}

int
ae_pose_guider_load (AePoseGuider ** out, const char *dir, AeError * err)
{
  char *cfg = g_build_filename (dir, "config.json", NULL);
  int ret = ae_pose_guider_load_files (out, cfg, dir, err);

  g_free (cfg);
  return ret;
}

void
ae_pose_guider_free (AePoseGuider * g)
{
  if (g == NULL)
    return;
  ae_st_close (g->st);
  g_free (g);
}

void
ae_pose_guider_out_size (const AePoseGuider * g, int64_t h, int64_t w,
    int64_t * ho, int64_t * wo)
{
  for (int i = 0; i + 1 < g->cfg.n_levels; i++) {
    h = ae_conv2d_out_size (h, 3, 2, 1, 1);
    w = ae_conv2d_out_size (w, 3, 2, 1, 1);
  }
  *ho = h;
  *wo = w;
}

/* conv (3x3, pad 1) then optional SiLU into a new arena tensor. */
static int
pg_step (AeTensor * y, const AeTensor * x, const AeUNetParam * p, int stride,
    bool silu, AeArena * a, AeError * err)
{
  int64_t ho = ae_conv2d_out_size (x->shape[2], 3, stride, 1, 1);
  int64_t wo = ae_conv2d_out_size (x->shape[3], 3, stride, 1, 1);

  if (ae_arena_tensor4 (a, y, x->shape[0], p->weight.shape[0], ho, wo,
          err) < 0 ||
      ae_conv2d (y, x, &p->weight, &p->bias, stride, 1, a, err) < 0)
    return -1;
  return silu ? ae_silu (y, y, err) : 0;
}

int
ae_pose_guider_forward (AePoseGuider * g, AeTensor * out,
    const AeTensor * pose, AeArena * arena, AeError * err)
{
  const AePoseGuiderConfig *cfg = &g->cfg;
  int64_t in_shape[4] = { -1, cfg->conditioning_channels, -1, -1 };
  int64_t out_shape[4];
  size_t mark;
  AeTensor x, y;
  int ret = -1;

  if (ae_tensor_check_shape (pose, "pose guider input", 4, in_shape,
          err) < 0)
    return -1;
  out_shape[0] = pose->shape[0];
  out_shape[1] = cfg->conditioning_embedding_channels;
  ae_pose_guider_out_size (g, pose->shape[2], pose->shape[3], &out_shape[2],
      &out_shape[3]);
  if (ae_tensor_check_shape (out, "pose guider output", 4, out_shape,
          err) < 0)
    return -1;
  mark = ae_arena_mark (arena);
  if (pg_step (&x, pose, &g->conv_in, 1, true, arena, err) < 0)
    goto done;
  for (int i = 0; i + 1 < cfg->n_levels; i++) {
    if (pg_step (&y, &x, &g->blocks[2 * i], 1, true, arena, err) < 0 ||
        pg_step (&x, &y, &g->blocks[2 * i + 1], 2, true, arena, err) < 0)
      goto done;
  }
  ret = ae_conv2d (out, &x, &g->conv_out.weight, &g->conv_out.bias, 1, 1,
      arena, err);
done:
  ae_arena_release (arena, mark);
  return ret;
}
