/* avatar-world: 8-bit PNG writing (libpng). */
#include "avatar-world.h"

#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <string.h>

int
aw_write_png (const char *path, const uint8_t * pixels, int width, int height,
    int channels, int stride, char *err, int err_size)
{
  FILE *fp;
  png_structp png;
  png_infop info;

  if (width <= 0 || height <= 0 || (channels != 1 && channels != 3)) {
    snprintf (err, (size_t) err_size, "%s: bad image %dx%d with %d channels",
        path, width, height, channels);
    return -1;
  }
  fp = fopen (path, "wb");
  if (!fp) {
    snprintf (err, (size_t) err_size, "%s: %s", path, strerror (errno));
    return -1;
  }
  png = png_create_write_struct (PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  info = png ? png_create_info_struct (png) : NULL;
  if (!png || !info) {
    png_destroy_write_struct (&png, NULL);
    fclose (fp);
    snprintf (err, (size_t) err_size, "%s: out of memory", path);
    return -1;
  }
  if (setjmp (png_jmpbuf (png))) {
    png_destroy_write_struct (&png, &info);
    fclose (fp);
    snprintf (err, (size_t) err_size, "%s: libpng failed to write", path);
    return -1;
  }
  png_init_io (png, fp);
  /* fast deflate: the dataset writes many small frames */
  png_set_compression_level (png, 3);
  png_set_IHDR (png, info, (png_uint_32) width, (png_uint_32) height, 8,
      channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY,
      PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
      PNG_FILTER_TYPE_DEFAULT);
  png_write_info (png, info);
  for (int y = 0; y < height; y++)
    png_write_row (png, (png_const_bytep) (pixels + (size_t) y * stride));
  png_write_end (png, NULL);
  png_destroy_write_struct (&png, &info);
  if (fclose (fp) != 0) {
    snprintf (err, (size_t) err_size, "%s: %s", path, strerror (errno));
    return -1;
  }
  return 0;
}
