/* avatar-world: anti-aliased signed-distance shapes (internal).
 *
 * Every shape computes, for each pixel of its bounding box, the signed
 * distance d (pixels, negative inside) and covers the pixel by
 * clamp(0.5 - d, 0, 1): a one-pixel linear edge, cheap and smooth. Pixel
 * (x, y) is centred on the integer coordinates, as keypoints are. */
#ifndef AVATAR_WORLD_RASTER_H
#define AVATAR_WORLD_RASTER_H

#include <stdint.h>

typedef struct {
  uint8_t *rgb;
  int rgb_stride;
  uint8_t *alpha;               /* may be NULL */
  int alpha_stride;
  int width, height;
} AwCanvas;

typedef enum {
  AW_PAINT_SOLID,
  AW_PAINT_STRIPES,             /* c0 / c1 bands across u, period wide */
  AW_PAINT_CHECKS,              /* c0 / c1 squares on u and its normal */
  AW_PAINT_GRADIENT,            /* c0 at o to c1 at o + u * period */
} AwPaintKind;

typedef struct {
  AwPaintKind kind;
  float c0[3], c1[3];
  float ox, oy, ux, uy, period;
  float opacity;                /* 0..1, multiplies coverage */
  int character;                /* 1: the shape belongs to the presenter (alpha) */
} AwPaint;

void aw_paint_solid (AwPaint * p, const uint8_t c[3], int character);
void aw_paint_shade (AwPaint * p, const uint8_t c[3], float k, int character);

void aw_fill_ellipse (AwCanvas * cv, float cx, float cy, float rx, float ry,
    float angle, const AwPaint * p);
void aw_stroke_ellipse (AwCanvas * cv, float cx, float cy, float rx, float ry,
    float angle, float width, const AwPaint * p);
void aw_fill_capsule (AwCanvas * cv, float ax, float ay, float bx, float by,
    float ra, float rb, const AwPaint * p);
/* Polygon v (x, y pairs, n <= AW_POLY_MAX points), grown by inflate pixels
 * (rounded corners); clip (may be NULL, nc points) keeps only its inside. */
#define AW_POLY_MAX 64
void aw_fill_polygon (AwCanvas * cv, const float *v, int n, float inflate,
    const float *clip, int nc, const AwPaint * p);
/* Signed distance to a polygon (negative inside). */
float aw_polygon_sd (const float *v, int n, float px, float py);

#endif /* AVATAR_WORLD_RASTER_H */
