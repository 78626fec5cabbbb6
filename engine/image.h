/* RGB8 images for the avatar pipeline: PNG reading and writing (libpng)
 * and the resize rule for reference images. */
#ifndef AE_IMAGE_H
#define AE_IMAGE_H

#include <stdint.h>

#include "ae-error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Reads a PNG of any colour type / bit depth into packed RGB8 (3 bytes a
 * pixel, 3 * width bytes a row; alpha is dropped, grey expanded, 16-bit
 * stripped). *rgb is g_malloc'd (g_free it). Errors name the file. Images
 * larger than 16384 pixels a side are refused. */
int ae_image_load_png (const char *path, uint8_t ** rgb, int *width,
    int *height, AeError * err);

/* Writes packed-or-strided RGB8 as an 8-bit RGB PNG. */
int ae_image_save_png (const char *path, const uint8_t * rgb, int width,
    int height, int stride, AeError * err);

/* Resizes src (sw x sh, sstride bytes a row) to dst (dw x dh, dstride)
 * with PIL's BILINEAR rule (Image.resize): separable triangle filter,
 * widened by the scale factor when shrinking (antialiased), pixel centres
 * at (i + 0.5) * scale, weights normalised per output pixel, horizontal
 * pass first, results rounded to 8 bits after each pass. Same size is a
 * copy. Allocates two small weight tables and one intermediate image. */
int ae_image_resize (const uint8_t * src, int sw, int sh, int sstride,
    uint8_t * dst, int dw, int dh, int dstride, AeError * err);

#ifdef __cplusplus
}
#endif
#endif /* AE_IMAGE_H */
