/* PNG input/output and the golden comparison metrics. */
#include "draw-compare.h"

#include <glib.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint8_t *
draw_read_png (const char *path, int *width, int *height, char **error)
{
  png_image image;
  uint8_t *rgb;

  memset (&image, 0, sizeof (image));
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file (&image, path)) {
    *error = g_strdup_printf ("%s: %s", path, image.message);
    return NULL;
  }
  image.format = PNG_FORMAT_RGB;
  rgb = g_malloc (PNG_IMAGE_SIZE (image));
  if (!png_image_finish_read (&image, NULL, rgb, 0, NULL)) {
    *error = g_strdup_printf ("%s: %s", path, image.message);
    g_free (rgb);
    png_image_free (&image);
    return NULL;
  }
  *width = (int) image.width;
  *height = (int) image.height;
  return rgb;
}

int
draw_write_png (const char *path, const uint8_t * rgb, int width, int height)
{
  png_image image;

  memset (&image, 0, sizeof (image));
  image.version = PNG_IMAGE_VERSION;
  image.width = (png_uint_32) width;
  image.height = (png_uint_32) height;
  image.format = PNG_FORMAT_RGB;
  return png_image_write_to_file (&image, path, 0, rgb, 0, NULL) ? 0 : -1;
}

static int
max_channel_diff (const uint8_t * a, const uint8_t * b)
{
  int m = 0;

  for (int c = 0; c < 3; c++) {
    int d = abs ((int) a[c] - (int) b[c]);
    if (d > m)
      m = d;
  }
  return m;
}

/* True when the value at (x, y) of a is within 32 of some pixel of b in
 * the 3x3 neighbourhood (borders edge-replicated). */
static int
explained (const uint8_t * a, const uint8_t * b, int width, int height,
    int x, int y)
{
  const uint8_t *pa = a + ((size_t) y * width + x) * 3;

  for (int dy = -1; dy <= 1; dy++) {
    int yy = CLAMP (y + dy, 0, height - 1);
    for (int dx = -1; dx <= 1; dx++) {
      int xx = CLAMP (x + dx, 0, width - 1);
      if (max_channel_diff (pa, b + ((size_t) yy * width + xx) * 3) <= 32)
        return 1;
    }
  }
  return 0;
}

void
draw_compare (const uint8_t * test, const uint8_t * golden, int width,
    int height, DrawMetrics * metrics)
{
  size_t n = (size_t) width * height, gt32 = 0, unexplained = 0, diff = 0;
  double sum = 0.0;

  for (int y = 0; y < height; y++) {
    for (int x = 0; x < width; x++) {
      size_t i = ((size_t) y * width + x) * 3;
      for (int c = 0; c < 3; c++)
        sum += abs ((int) test[i + c] - (int) golden[i + c]);
      int d = max_channel_diff (test + i, golden + i);
      gt32 += d > 32;
      diff += d > 0;
      if (!explained (golden, test, width, height, x, y)
          || !explained (test, golden, width, height, x, y))
        unexplained++;
    }
  }
  metrics->frac_gt32 = (double) gt32 / n;
  metrics->mae = sum / (3.0 * n);
  metrics->nbr_unexplained = (double) unexplained / n;
  metrics->n_different = (long) diff;
}
