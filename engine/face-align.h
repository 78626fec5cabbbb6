/* Face alignment for face recapture (docs/face-model.md): the crop
 * transform from five face points, the aligned crop, the landmark heatmap,
 * the face masks, blending back into the frame and temporal smoothing of
 * the transform. The numpy reference is train/face_align.py.
 *
 * Conventions: pixel (u, v) of a frame or crop has its centre at
 * (u + 0.5, v + 0.5). A crop transform maps frame coordinates p to crop
 * coordinates q = M p + t, M = [[a, -b], [b, a]] (scale and rotation).
 * Faces are OpenPose face key points: n_face (68 or 70) triples x, y, c in
 * frame pixels (c <= 0: missing); 36-41 and 42-47 are the eyes, 30 the nose
 * tip, 48 and 54 the mouth corners, 0-16 the jaw, 17-26 the brows, 48-67
 * the lips, 68-69 the pupils. Pure C, no allocation. */
#ifndef AE_FACE_ALIGN_H
#define AE_FACE_ALIGN_H

#include <stdbool.h>
#include <stdint.h>

#include "ae-error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AE_FACE_MIN_POINTS 68
#define AE_FACE_HEAT_CHANNELS 3

typedef struct {
  double a, b, tx, ty;          /* q = [[a, -b], [b, a]] p + (tx, ty) */
} AeFaceTransform;

typedef struct {
  /* Five-point template in crop units (0..1): left eye, right eye, nose
   * tip, left and right mouth corner (image left/right). */
  float template_pts[5][2];
  float heatmap_sigma;          /* crop units */
  float brow_lift;              /* crop units */
  float feather;                /* crop units: box-blur radius, 2 passes */
  float min_confidence;         /* a face counts when its mean c >= this */
} AeFaceAlignParams;

/* The values of train/face_models.py ALIGN. */
void ae_face_align_params_default (AeFaceAlignParams * p);

/* A face the element may replace: at least 68 points, all of 0..67
 * present (c > 0, finite) and their mean confidence >= min_confidence. */
bool ae_face_confident (const float *face, int n_face, float min_confidence);

/* Least-squares similarity (weights: the eye's lowest c, the point's c)
 * mapping the five points onto template * size. -1 with err when the face
 * has fewer than 68 points, a point is missing or the fit degenerates
 * (eyes and mouth within 1 pixel). */
int ae_face_fit (const float *face, int n_face, const AeFaceAlignParams * p,
    int size, AeFaceTransform * out, AeError * err);

/* The same window for a crop `factor` times larger. */
AeFaceTransform ae_face_transform_scaled (const AeFaceTransform * t,
    double factor);
void ae_face_transform_apply (const AeFaceTransform * t, double x, double y,
    double *qx, double *qy);
/* The frame point of crop point (qx, qy). */
void ae_face_transform_invert (const AeFaceTransform * t, double qx,
    double qy, double *x, double *y);

/* Aligned crop: out (3, size, size) planar, x / 127.5 - 1 of the frame
 * sampled bilinearly at the crop's pixel centres (edge pixels repeated
 * outside the frame). rgb: packed RGB8, `stride` bytes a row. */
void ae_face_warp_crop (const uint8_t * rgb, int width, int height,
    int stride, const AeFaceTransform * t, int size, float *out);

/* Landmark heatmap (3, size, size): channel 0 jaw and brows (0-26), 1
 * nose, eyes and pupils (27-47, 68, 69), 2 lips (48-67); each the max over
 * its points with c >= min_confidence of exp(-d^2 / (2 sigma^2)) at pixel
 * centres, 0 where d^2 > 9 sigma^2. sigma in crop pixels. */
void ae_face_heatmap (const float *face, int n_face,
    const AeFaceTransform * t, int size, float sigma, float min_confidence,
    float *out);

/* Hard face mask (size x size, 1 inside / 0 outside, even-odd rule at
 * pixel centres) of the polygon jaw 0..16 then brows 26..17 raised by
 * brow_lift * size. */
void ae_face_hard_mask (const float *face, int n_face,
    const AeFaceTransform * t, int size, float brow_lift, float *out);

/* Feathered mask: two passes of a separable box blur of radius r
 * (zero outside, divided by 2r + 1). tmp: size * size floats. */
void ae_face_soft_mask (const float *hard, int size, int radius, float *tmp,
    float *out);
/* The radius the params give at this crop size: round (feather * size). */
int ae_face_feather_radius (const AeFaceAlignParams * p, int size);

/* Blends gen (3, size, size) in [-1, 1] into the frame in place:
 * alpha = strength * soft sampled bilinearly at the frame pixel's crop
 * position (0 outside the crop), out = round ((1 - alpha) in + alpha gen),
 * gen mapped to 0..255 and sampled bilinearly (edges repeated). Only the
 * frame pixels inside the crop's bounding box are visited. */
void ae_face_blend (uint8_t * rgb, int width, int height, int stride,
    const float *gen, const float *soft, int size,
    const AeFaceTransform * t, float strength);

/* ---- temporal smoothing ------------------------------------------------- */

/* Exponential smoothing of (a, b, tx, ty) so that the crop does not jitter:
 * s = smoothing * s + (1 - smoothing) * measured. A new face (after reset
 * or a frame without one) starts at its measurement; so does a jump (scale
 * change over 25 % or a move over a quarter of the crop), which a
 * smoothed crop would follow too late. */
typedef struct {
  bool valid;
  AeFaceTransform state;
} AeFaceSmoother;

void ae_face_smoother_reset (AeFaceSmoother * s);
/* measured is at crop size `size`; out receives the smoothed transform. */
void ae_face_smoother_update (AeFaceSmoother * s,
    const AeFaceTransform * measured, double smoothing, int size,
    AeFaceTransform * out);

#ifdef __cplusplus
}
#endif
#endif /* AE_FACE_ALIGN_H */
