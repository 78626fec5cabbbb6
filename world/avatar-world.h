/* avatar-world: a procedural 2D news presenter driven by the project's
 * keypoint layout (COCO-18 body, 68 face points + 2 pupils, 21-point hands),
 * seeded identities, procedural talking-presenter motion, and exact ground
 * truth for every frame (RGB, alpha matte, face and hand boxes, pose).
 *
 * Depends on pose/ only (never on GStreamer). Symbols share the prefix
 * aw_ / Aw. Everything is a pure function of its seeds and arguments: the
 * same seed gives the same pose and the same pixels, bit for bit.
 */
#ifndef AVATAR_WORLD_H
#define AVATAR_WORLD_H

#include <stdint.h>

#include "avatar-pose.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The fixed train / held-out split (docs/world.md). */
#define AW_HELDOUT_IDENTITY_FIRST 1000000u
#define AW_HELDOUT_MOTION_FIRST 2000000u
#define AW_HELDOUT_N 64u
#define AW_TRAIN_SEED_LIMIT 1000000u    /* every train seed is below */

typedef enum {
  AW_HAIR_SHORT, AW_HAIR_BOB, AW_HAIR_LONG, AW_HAIR_BUN, AW_HAIR_BUZZ,
  AW_HAIR_SIDE_PART, AW_HAIR_N
} AwHairStyle;

typedef enum {
  AW_CLOTH_PLAIN, AW_CLOTH_STRIPES, AW_CLOTH_CHECKS, AW_CLOTH_SUIT,
  AW_CLOTH_N
} AwClothPattern;

typedef enum {
  AW_BG_FLAT, AW_BG_GRADIENT, AW_BG_PATTERN, AW_BG_STUDIO, AW_BG_N
} AwBackground;

/* Everything that makes one presenter look like itself. Colours are sRGB
 * 0..255. Lengths are in units of the shoulder half-width. */
typedef struct {
  uint32_t seed;
  uint8_t skin[3], hair[3], eye[3], lip[3];
  uint8_t cloth[3], cloth2[3], shirt[3], logo[3];
  uint8_t bg[3], bg2[3];
  AwHairStyle hair_style;
  AwClothPattern pattern;
  AwBackground background;
  int has_logo, has_glasses, has_earrings, has_tie, sleeves_short;
  float pattern_period;         /* stripes / checks period, shoulder units */
  float pattern_angle;          /* radians */
  float head_size;              /* face half-width / shoulder half-width */
  float neck_len, torso_len, upper_arm, forearm, hand_size;
  float brow_weight;
  /* Framing: the neck's position as a fraction of the canvas and the
   * shoulder half-width as a fraction of the canvas height. */
  float frame_x, frame_y, frame_scale;
} AwIdentity;

/* Identity from a seed; seed 0 is the documented default presenter. */
void aw_identity_from_seed (uint32_t seed, AwIdentity * id);
/* The default presenter (body proportions and framing posetestsrc uses when
 * no identity is given). */
void aw_identity_default (AwIdentity * id);

/* ---- Motion --------------------------------------------------------------- */

typedef struct AwMotion AwMotion;

AwMotion *aw_motion_new (uint32_t seed);
void aw_motion_free (AwMotion * motion);

/* The ground-truth pose of frame frame_index at fps, for identity id (NULL:
 * aw_identity_default), on a canvas_w x canvas_h canvas. Every point has its
 * true position, also off canvas or hidden; c is what a detector would
 * report: 0 for points off the canvas or occluded, lower on fast hands.
 * Pure function of (seed, identity, frame_index, fps, canvas). */
void aw_motion_pose (const AwMotion * motion, const AwIdentity * id,
    int64_t frame_index, double fps, int canvas_w, int canvas_h,
    ApPerson * out);

/* Mouth opening of the motion at time t (0 closed .. 1 wide open): the
 * speech signal the lip landmarks follow. */
float aw_motion_mouth (const AwMotion * motion, double t);

/* The identity standing in a neutral pose: looking ahead, mouth closed,
 * eyes open, arms relaxed. */
void aw_neutral_pose (const AwIdentity * id, int canvas_w, int canvas_h,
    ApPerson * out);

/* The pose as a detector would write it: points with c <= 0 become 0,0,0
 * (OpenPose's missing point); the frame has one person and the canvas. */
void aw_observed_frame (const ApPerson * truth, int canvas_w, int canvas_h,
    ApFrame * out);

/* ---- Rendering ------------------------------------------------------------ */

/* Draws the presenter id in pose (ground truth from aw_motion_pose or
 * aw_neutral_pose, coordinates in pixels of the image) into rgb (3 bytes a
 * pixel, rgb_stride bytes a row) and alpha (1 byte a pixel, alpha_stride;
 * may be NULL): 255 inside the character, 0 on the background, coverage on
 * its anti-aliased edge. Points at exactly 0,0 with c <= 0 are treated as
 * missing (OpenPose) and their parts are not drawn. No allocation. */
void aw_render (const AwIdentity * id, const ApPerson * pose, uint8_t * rgb,
    int rgb_stride, uint8_t * alpha, int alpha_stride, int width, int height);

/* Ground-truth boxes, pixels (x0, y0, x1, y1), clipped to the canvas.
 * Returns 0 when the part is not visible (box left zero), 1 otherwise. The
 * face box spans the head (hair excluded); hand boxes span the drawn hand. */
int aw_face_box (const ApPerson * pose, int width, int height, float box[4]);
int aw_hand_box (const ApPerson * pose, int side, int width, int height,
    float box[4]);

/* ---- Files ---------------------------------------------------------------- */

/* 8-bit PNG, channels 1 (gray) or 3 (RGB). Returns 0, or -1 with a message
 * naming the file in err (err_size bytes). */
int aw_write_png (const char *path, const uint8_t * pixels, int width,
    int height, int channels, int stride, char *err, int err_size);

/* The train split's seeds for clip k (always below AW_TRAIN_SEED_LIMIT and so
 * never held out) and the held-out split's pairs (k < AW_HELDOUT_N). */
void aw_split_seeds (int heldout, uint32_t clip, uint32_t * identity_seed,
    uint32_t * motion_seed);

#ifdef __cplusplus
}
#endif
#endif /* AVATAR_WORLD_H */
