/* RGB8 PNG reading/writing and PIL-style bilinear resizing (image.h). */
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <glib.h>
#include <png.h>

#include "image.h"

#define AE_IMAGE_MAX_SIDE 16384

typedef struct {
  char msg[200];
} PngErr;

static void
png_error_fn (png_structp png, png_const_charp msg)
{
  PngErr *e = png_get_error_ptr (png);

  if (e)
    g_strlcpy (e->msg, msg, sizeof e->msg);
  png_longjmp (png, 1);
}

static void
png_warning_fn (png_structp png, png_const_charp msg)
{
}

int
ae_image_load_png (const char *path, uint8_t ** rgb, int *width,
    int *height, AeError * err)
{
  FILE *fp;
  png_structp png;
  png_infop info;
  uint8_t sig[8];
  PngErr perr = { {0} };
  uint8_t *volatile pixels = NULL;
  png_bytep *volatile rows = NULL;
  png_uint_32 w, h;
  int depth, ctype;

  *rgb = NULL;
  fp = fopen (path, "rb");
  if (fp == NULL)
    return ae_error (err, "%s: cannot open", path);
  if (fread (sig, 1, 8, fp) != 8 || png_sig_cmp (sig, 0, 8) != 0) {
    fclose (fp);
    return ae_error (err, "%s: not a PNG file", path);
  }
  png = png_create_read_struct (PNG_LIBPNG_VER_STRING, &perr, png_error_fn,
      png_warning_fn);
  info = png ? png_create_info_struct (png) : NULL;
  if (png == NULL || info == NULL) {
    png_destroy_read_struct (&png, NULL, NULL);
    fclose (fp);
    return ae_error (err, "%s: out of memory", path);
  }
  if (setjmp (png_jmpbuf (png))) {
    png_destroy_read_struct (&png, &info, NULL);
    fclose (fp);
    g_free (pixels);
    g_free (rows);
    return ae_error (err, "%s: bad PNG: %s", path,
        perr.msg[0] ? perr.msg : "libpng error");
  }
  png_init_io (png, fp);
  png_set_sig_bytes (png, 8);
  png_set_user_limits (png, AE_IMAGE_MAX_SIDE, AE_IMAGE_MAX_SIDE);
  png_read_info (png, info);
  png_get_IHDR (png, info, &w, &h, &depth, &ctype, NULL, NULL, NULL);
  if (depth == 16)
    png_set_strip_16 (png);
  if (ctype == PNG_COLOR_TYPE_PALETTE)
    png_set_palette_to_rgb (png);
  if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8)
    png_set_expand_gray_1_2_4_to_8 (png);
  if (ctype == PNG_COLOR_TYPE_GRAY || ctype == PNG_COLOR_TYPE_GRAY_ALPHA)
    png_set_gray_to_rgb (png);
  if (ctype & PNG_COLOR_MASK_ALPHA)
    png_set_strip_alpha (png);
  png_set_interlace_handling (png);
  png_read_update_info (png, info);
  if (png_get_rowbytes (png, info) != (size_t) w * 3)
    png_error (png, "unexpected row size after conversion to RGB8");
  pixels = g_malloc ((size_t) w * h * 3);
  rows = g_new (png_bytep, h);
  for (png_uint_32 y = 0; y < h; y++)
    rows[y] = pixels + (size_t) y * w * 3;
  png_read_image (png, rows);
  png_read_end (png, NULL);
  png_destroy_read_struct (&png, &info, NULL);
  fclose (fp);
  g_free (rows);
  *rgb = pixels;
  *width = (int) w;
  *height = (int) h;
  return 0;
}

int
ae_image_save_png (const char *path, const uint8_t * rgb, int width,
    int height, int stride, AeError * err)
{
  FILE *fp;
  png_structp png;
  png_infop info;
  PngErr perr = { {0} };

  if (width <= 0 || height <= 0 || stride < 3 * width)
    return ae_error (err, "%s: bad image size %dx%d (stride %d)", path, width,
        height, stride);
  fp = fopen (path, "wb");
  if (fp == NULL)
    return ae_error (err, "%s: cannot create", path);
  png = png_create_write_struct (PNG_LIBPNG_VER_STRING, &perr, png_error_fn,
      png_warning_fn);
  info = png ? png_create_info_struct (png) : NULL;
  if (png == NULL || info == NULL) {
    png_destroy_write_struct (&png, NULL);
    fclose (fp);
    return ae_error (err, "%s: out of memory", path);
  }
  if (setjmp (png_jmpbuf (png))) {
    png_destroy_write_struct (&png, &info);
    fclose (fp);
    return ae_error (err, "%s: cannot write PNG: %s", path,
        perr.msg[0] ? perr.msg : "libpng error");
  }
  png_init_io (png, fp);
  png_set_compression_level (png, 3);
  png_set_IHDR (png, info, (png_uint_32) width, (png_uint_32) height, 8,
      PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
      PNG_FILTER_TYPE_DEFAULT);
  png_write_info (png, info);
  for (int y = 0; y < height; y++)
    png_write_row (png, (png_const_bytep) (rgb + (size_t) y * stride));
  png_write_end (png, NULL);
  png_destroy_write_struct (&png, &info);
  if (fclose (fp) != 0)
    return ae_error (err, "%s: write failed", path);
  return 0;
}

/* ---- PIL-style bilinear resize -------------------------------------------- */

/* Fixed-point coefficient precision of Pillow's 8-bit resampler. */
#define PRECISION_BITS (32 - 8 - 2)

typedef struct {
  int ksize;                    /* taps per output pixel */
  int *bounds;                  /* (first input index, taps) per output */
  int32_t *k;                   /* ksize coefficients per output */
} Coeffs;

static double
triangle (double x)
{
  x = fabs (x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

/* The taps of each output pixel over an input of in_size pixels. */
static void
coeffs_make (Coeffs * c, int in_size, int out_size)
{
  double scale = (double) in_size / out_size;
  double fscale = scale < 1.0 ? 1.0 : scale;
  double support = 1.0 * fscale;
  double *kd;

  c->ksize = (int) ceil (support) * 2 + 1;
  c->bounds = g_new (int, 2 * out_size);
  c->k = g_new0 (int32_t, (size_t) out_size * c->ksize);
  kd = g_new (double, c->ksize);
  for (int xx = 0; xx < out_size; xx++) {
    double center = (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / fscale;
    int xmin = (int) (center - support + 0.5), xmax;
    if (xmin < 0)
      xmin = 0;
    xmax = (int) (center + support + 0.5);
    if (xmax > in_size)
      xmax = in_size;
    xmax -= xmin;
    for (int x = 0; x < xmax; x++) {
      double w = triangle ((x + xmin - center + 0.5) * ss);
      kd[x] = w;
      ww += w;
    }
    for (int x = 0; x < xmax; x++) {
      double v = ww != 0.0 ? kd[x] / ww : 0.0;
      v *= (double) (1 << PRECISION_BITS);
      c->k[(size_t) xx * c->ksize + x] =
          (int32_t) (v < 0 ? trunc (-0.5 + v) : trunc (0.5 + v));
    }
    c->bounds[2 * xx] = xmin;
    c->bounds[2 * xx + 1] = xmax;
  }
  g_free (kd);
}

static void
coeffs_free (Coeffs * c)
{
  g_free (c->bounds);
  g_free (c->k);
}

static inline uint8_t
clip8 (int64_t ss)
{
  int64_t v = ss >> PRECISION_BITS;
  return (uint8_t) (v < 0 ? 0 : v > 255 ? 255 : v);
}

int
ae_image_resize (const uint8_t * src, int sw, int sh, int sstride,
    uint8_t * dst, int dw, int dh, int dstride, AeError * err)
{
  Coeffs cx, cy;
  uint8_t *tmp;

  if (sw <= 0 || sh <= 0 || dw <= 0 || dh <= 0 || sstride < 3 * sw ||
      dstride < 3 * dw)
    return ae_error (err, "image: bad resize %dx%d -> %dx%d", sw, sh, dw, dh);
  if (sw == dw && sh == dh) {
    for (int y = 0; y < sh; y++)
      memcpy (dst + (size_t) y * dstride, src + (size_t) y * sstride,
          (size_t) sw * 3);
    return 0;
  }
  coeffs_make (&cx, sw, dw);
  coeffs_make (&cy, sh, dh);
  tmp = g_malloc ((size_t) dw * sh * 3);
  /* horizontal: sh rows of dw pixels */
  for (int y = 0; y < sh; y++) {
    const uint8_t *row = src + (size_t) y * sstride;
    for (int x = 0; x < dw; x++) {
      int x0 = cx.bounds[2 * x], n = cx.bounds[2 * x + 1];
      const int32_t *k = cx.k + (size_t) x * cx.ksize;
      for (int ch = 0; ch < 3; ch++) {
        int64_t ss = 1 << (PRECISION_BITS - 1);
        for (int i = 0; i < n; i++)
          ss += (int64_t) row[(size_t) (x0 + i) * 3 + ch] * k[i];
        tmp[((size_t) y * dw + x) * 3 + ch] = clip8 (ss);
      }
    }
  }
  /* vertical */
  for (int y = 0; y < dh; y++) {
    int y0 = cy.bounds[2 * y], n = cy.bounds[2 * y + 1];
    const int32_t *k = cy.k + (size_t) y * cy.ksize;
    uint8_t *out = dst + (size_t) y * dstride;
    for (int x = 0; x < dw * 3; x++) {
      int64_t ss = 1 << (PRECISION_BITS - 1);
      for (int i = 0; i < n; i++)
        ss += (int64_t) tmp[(size_t) (y0 + i) * dw * 3 + x] * k[i];
      out[x] = clip8 (ss);
    }
  }
  g_free (tmp);
  coeffs_free (&cx);
  coeffs_free (&cy);
  return 0;
}
