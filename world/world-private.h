/* avatar-world internals shared by its source files (not installed). */
#ifndef AVATAR_WORLD_PRIVATE_H
#define AVATAR_WORLD_PRIVATE_H

#include <math.h>
#include <stdint.h>

#include "avatar-world.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* splitmix64 finaliser: a well-mixed 64-bit hash of (a, b). Everything
 * random in the world is a hash of a seed and a salt, never a stream, so
 * any frame can be computed on its own. */
static inline uint64_t
aw_hash2 (uint64_t a, uint64_t b)
{
  uint64_t z = a * 0x9E3779B97F4A7C15ull + b + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static inline uint64_t
aw_hash3 (uint64_t a, uint64_t b, uint64_t c)
{
  return aw_hash2 (aw_hash2 (a, b), c);
}

/* Uniform in [0, 1). */
static inline double
aw_unit (uint64_t h)
{
  return (double) (h >> 11) * (1.0 / 9007199254740992.0);
}

static inline double
aw_range (uint64_t h, double lo, double hi)
{
  return lo + (hi - lo) * aw_unit (h);
}

static inline double
aw_smooth (double x)
{
  if (x <= 0.0)
    return 0.0;
  if (x >= 1.0)
    return 1.0;
  return x * x * (3.0 - 2.0 * x);
}

static inline double
aw_lerp (double a, double b, double t)
{
  return a + (b - a) * t;
}

/* Value noise in [-1, 1] with smoothstep between hashed knots one unit
 * apart: C1-continuous, so speeds and accelerations stay bounded. */
static inline double
aw_noise (uint64_t seed, uint64_t salt, double t)
{
  double fl = floor (t);
  int64_t k = (int64_t) fl;
  double a = aw_unit (aw_hash3 (seed, salt, (uint64_t) k)) * 2.0 - 1.0;
  double b = aw_unit (aw_hash3 (seed, salt, (uint64_t) (k + 1))) * 2.0 - 1.0;
  return aw_lerp (a, b, aw_smooth (t - fl));
}

/* Lengths of the default layout (units: shoulder half-width S). */
#define AW_SHOULDER_DROP 0.0f   /* shoulders below the neck point */
#define AW_FACE_CHIN 1.05f      /* chin below the head pivot, face units */

/* Derived head frame shared by motion, renderer and boxes. */
typedef struct {
  float cx, cy;                 /* skull centre */
  float ux, uy;                 /* unit vector "up" the head */
  float f;                      /* face half-width in pixels */
} AwHead;

int aw_head_from_pose (const ApPerson * pose, AwHead * head);

#endif /* AVATAR_WORLD_PRIVATE_H */
