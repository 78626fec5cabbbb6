/* Small helpers shared by the engine-core tests: a seeded PRNG, random
 * tensors, tolerance checks and access to ../shared/golden. Header-only so
 * each test stays one executable. */
#ifndef AE_TEST_UTIL_H
#define AE_TEST_UTIL_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "ops.h"
#include "safetensors.h"
#include "tensor.h"

#define AE_TEST_SKIP 77

static int ae_test_failures = 0;

#define CHECK(cond, ...) \
  do { \
    if (!(cond)) { \
      ae_test_failures++; \
      fprintf (stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
      fprintf (stderr, __VA_ARGS__); \
      fprintf (stderr, "\n"); \
    } \
  } while (0)

/* Aborting the test (not the library) on a broken precondition. */
#define REQUIRE(cond, ...) \
  do { \
    if (!(cond)) { \
      fprintf (stderr, "FATAL %s:%d: ", __FILE__, __LINE__); \
      fprintf (stderr, __VA_ARGS__); \
      fprintf (stderr, "\n"); \
      exit (1); \
    } \
  } while (0)

/* xorshift64* and Box-Muller: reproducible normal samples. */
typedef struct {
  uint64_t s;
} TestRng;

static inline uint64_t
rng_next (TestRng * r)
{
  r->s ^= r->s >> 12;
  r->s ^= r->s << 25;
  r->s ^= r->s >> 27;
  return r->s * 0x2545F4914F6CDD1DULL;
}

static inline double
rng_uniform (TestRng * r)
{
  return ((rng_next (r) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static inline float
rng_normal (TestRng * r)
{
  double u1 = rng_uniform (r), u2 = rng_uniform (r);
  return (float) (sqrt (-2.0 * log (u1)) * cos (6.283185307179586 * u2));
}

/* Heap tensor (test only), filled with N(mean, std). */
static inline AeTensor
test_tensor (TestRng * r, int ndim, const int64_t * shape, float mean,
    float std)
{
  AeTensor t = ae_tensor_nd (NULL, ndim, shape);
  int64_t n = ae_tensor_numel (&t);

  t.data = g_malloc ((gsize) (n ? n : 1) * sizeof (float));
  for (int64_t i = 0; i < n; i++)
    t.data[i] = mean + std * (r ? rng_normal (r) : 0.0f);
  return t;
}

static inline AeTensor
test_tensor4 (TestRng * r, int64_t a, int64_t b, int64_t c, int64_t d)
{
  int64_t s[4] = { a, b, c, d };
  return test_tensor (r, 4, s, 0.0f, 1.0f);
}

static inline AeTensor
test_tensor3 (TestRng * r, int64_t a, int64_t b, int64_t c)
{
  int64_t s[3] = { a, b, c };
  return test_tensor (r, 3, s, 0.0f, 1.0f);
}

static inline AeTensor
test_tensor2 (TestRng * r, int64_t a, int64_t b)
{
  int64_t s[2] = { a, b };
  return test_tensor (r, 2, s, 0.0f, 1.0f);
}

static inline AeTensor
test_tensor1 (TestRng * r, int64_t a)
{
  int64_t s[1] = { a };
  return test_tensor (r, 1, s, 0.0f, 1.0f);
}

/* Compares against a reference; prints and counts a failure when either
 * tolerance is exceeded. */
static inline void
check_close (const char *what, const AeTensor * got, const AeTensor * ref,
    double tol_max_abs, double tol_rel_l2)
{
  double ma, rl;
  AeError err;

  if (ae_compare (got, ref, &ma, &rl, &err) < 0) {
    ae_test_failures++;
    fprintf (stderr, "FAIL %s: %s\n", what, err.msg);
    return;
  }
  if (!(ma <= tol_max_abs && rl <= tol_rel_l2)) {
    ae_test_failures++;
    fprintf (stderr, "FAIL %s: max_abs %.3g (tol %.3g) rel_l2 %.3g (tol "
        "%.3g)\n", what, ma, tol_max_abs, rl, tol_rel_l2);
  } else {
    printf ("ok   %-58s max_abs %.2e rel_l2 %.2e\n", what, ma, rl);
  }
}

/* AVATAR_SHARED_DIR/golden/components/NAME, or NULL when shared data is
 * absent (the caller then skips those cases). */
static inline char *
golden_component_dir (const char *name)
{
  const char *shared = g_getenv ("AVATAR_SHARED_DIR");
  char *dir;

  if (shared == NULL || !g_file_test (shared, G_FILE_TEST_IS_DIR))
    return NULL;
  dir = g_build_filename (shared, "golden", "components", name, NULL);
  if (!g_file_test (dir, G_FILE_TEST_IS_DIR)) {
    g_free (dir);
    return NULL;
  }
  return dir;
}

static inline AeSafetensors *
golden_open (const char *dir, const char *file)
{
  char *path = g_build_filename (dir, file, NULL);
  AeSafetensors *st = NULL;
  AeError err;

  if (ae_st_open (&st, path, &err) < 0) {
    fprintf (stderr, "FATAL: %s\n", err.msg);
    exit (1);
  }
  g_free (path);
  return st;
}

static inline AeTensor
golden_get (AeSafetensors * st, const char *name)
{
  AeTensor t;
  AeError err;

  if (ae_st_get (st, name, 0, NULL, &t, &err) < 0) {
    fprintf (stderr, "FATAL: %s\n", err.msg);
    exit (1);
  }
  return t;
}

static inline int
test_finish (const char *name)
{
  if (ae_test_failures) {
    fprintf (stderr, "%s: %d failure(s)\n", name, ae_test_failures);
    return 1;
  }
  printf ("%s: all passed\n", name);
  return 0;
}

#endif /* AE_TEST_UTIL_H */
