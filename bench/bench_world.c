/* bench_world: avatar-world speed on one core. Prints frames per second of
 * the motion (aw_motion_pose), the renderer (aw_render, RGB + alpha) and
 * both together, at 256x256 by default.
 *
 *   bench_world [SIZE [FRAMES]]
 */
#include "avatar-world.h"

#include <glib.h>
#include <stdio.h>
#include <stdlib.h>

int
main (int argc, char **argv)
{
  int size = argc > 1 ? atoi (argv[1]) : 256;
  int frames = argc > 2 ? atoi (argv[2]) : 1000;
  int n_ids = 16;
  uint8_t *rgb, *alpha;
  ApPerson *poses;
  AwIdentity *ids;
  AwMotion *m;
  gint64 t0;
  double t_motion, t_render;
  unsigned check = 0;

  if (size < 16 || size > 4096 || frames < 1 || frames > 1000000) {
    fprintf (stderr, "usage: bench_world [SIZE 16..4096 [FRAMES]]\n");
    return 2;
  }
  rgb = g_malloc ((size_t) size * size * 3);
  alpha = g_malloc ((size_t) size * size);
  poses = g_new (ApPerson, frames);
  ids = g_new (AwIdentity, n_ids);
  for (int i = 0; i < n_ids; i++)
    aw_identity_from_seed ((uint32_t) (i + 1), &ids[i]);
  m = aw_motion_new (42);

  t0 = g_get_monotonic_time ();
  for (int i = 0; i < frames; i++)
    aw_motion_pose (m, &ids[i % n_ids], i, 25.0, size, size, &poses[i]);
  t_motion = (g_get_monotonic_time () - t0) / 1e6;

  t0 = g_get_monotonic_time ();
  for (int i = 0; i < frames; i++) {
    aw_render (&ids[i % n_ids], &poses[i], rgb, 3 * size, alpha, size, size,
        size);
    check += rgb[(size_t) (size / 2) * size * 3 + 3 * (size / 2)];
  }
  t_render = (g_get_monotonic_time () - t0) / 1e6;

  printf ("avatar-world bench: %dx%d, %d frames, %d identities, 1 thread\n",
      size, size, frames, n_ids);
  printf ("motion  (aw_motion_pose): %9.1f frames/s\n", frames / t_motion);
  printf ("render  (aw_render RGB+alpha): %9.1f frames/s\n",
      frames / t_render);
  printf ("motion + render: %9.1f frames/s\n",
      frames / (t_motion + t_render));
  printf ("(checksum %u)\n", check);
  aw_motion_free (m);
  g_free (ids);
  g_free (poses);
  g_free (rgb);
  g_free (alpha);
  return 0;
}
