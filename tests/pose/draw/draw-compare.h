/* Image helpers shared by the drawing tests and the benchmark: PNG reading
 * and the three metrics of golden/pose/tolerance.json. */
#ifndef DRAW_COMPARE_H
#define DRAW_COMPARE_H

#include <stdint.h>

typedef struct
{
  double frac_gt32;             /* pixels whose largest channel diff > 32 */
  double mae;                   /* mean absolute difference, all channels */
  double nbr_unexplained;       /* see tolerance.json */
  long n_different;             /* pixels differing at all */
} DrawMetrics;

/* Reads an 8-bit RGB (or RGBA, alpha dropped) PNG. Returns a g_malloc'd
 * width x height x 3 buffer, or NULL with *error set to a message. */
uint8_t *draw_read_png (const char *path, int *width, int *height,
    char **error);

/* Writes rgb (tightly packed) as a PNG; returns 0 on success. */
int draw_write_png (const char *path, const uint8_t * rgb, int width,
    int height);

void draw_compare (const uint8_t * test, const uint8_t * golden, int width,
    int height, DrawMetrics * metrics);

#endif
