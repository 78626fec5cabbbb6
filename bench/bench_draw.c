/* Pose-guidance drawing speed: frames per second of ap_draw for both
 * styles at 512x512 and 256x256 (and 576x1024, MimicMotion's default).
 *
 *   bench_draw [frame.json] [seconds-per-case]
 *
 * Without a JSON file it draws one synthetic person with body, 70-point
 * face and both hands, the load a live posemapper sees. */
#include "avatar-pose.h"

#include <glib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
set_point (ApPoint * p, float x, float y, float c)
{
  p->x = x;
  p->y = y;
  p->c = c;
}

/* A standing person filling most of a 512x512 canvas. */
static void
synthetic_frame (ApFrame * f)
{
  static const float body[AP_BODY_N][2] = {
    {0.01f, -0.40f}, {0.0f, -0.28f}, {-0.11f, -0.27f}, {-0.16f, -0.10f},
    {-0.19f, 0.05f}, {0.11f, -0.27f}, {0.17f, -0.11f}, {0.21f, 0.04f},
    {-0.07f, 0.03f}, {-0.08f, 0.23f}, {-0.09f, 0.44f}, {0.07f, 0.03f},
    {0.08f, 0.23f}, {0.09f, 0.45f}, {-0.02f, -0.42f}, {0.03f, -0.42f},
    {-0.05f, -0.41f}, {0.06f, -0.40f},
  };
  ApPerson *p = &f->people[0];
  const float cx = 256.3f, cy = 256.7f, size = 480.0f;

  ap_frame_init (f);
  f->n_people = 1;
  for (int i = 0; i < AP_BODY_N; i++)
    set_point (&p->body[i], cx + body[i][0] * size, cy + body[i][1] * size,
        0.9f);
  p->n_face = 70;
  for (int i = 0; i < 70; i++) {
    double a = i * 2.0 * G_PI / 70.0;
    set_point (&p->face[i], cx + (float) (0.05 * size * cos (a)),
        cy - 0.40f * size + (float) (0.06 * size * sin (a)), 0.9f);
  }
  for (int side = 0; side < 2; side++) {
    const ApPoint *w = &p->body[side == AP_LEFT ? AP_LWRIST : AP_RWRIST];
    float dir = side == AP_LEFT ? 1.0f : -1.0f;
    set_point (&p->hand[side][0], w->x, w->y, 0.9f);
    for (int i = 1; i < AP_HAND_N; i++) {
      int finger = (i - 1) / 4, joint = (i - 1) % 4 + 1;
      set_point (&p->hand[side][i], w->x + dir * 0.015f * size * joint,
          w->y + 0.012f * size * (finger - 2) * joint + 0.013f * size, 0.9f);
    }
  }
}

static int
load_frame (const char *path, ApFrame * f)
{
  gchar *text;
  gsize len;
  ApIssues issues;

  if (!g_file_get_contents (path, &text, &len, NULL)) {
    fprintf (stderr, "%s: cannot read\n", path);
    return -1;
  }
  ap_issues_clear (&issues);
  if (ap_frame_from_json (text, len, 1, f, &issues) != AP_FRAME) {
    fprintf (stderr, "%s: not an OpenPose frame\n", path);
    g_free (text);
    return -1;
  }
  g_free (text);
  return 0;
}

static double
bench_case (const ApFrame * f, ApStyle style, int w, int h, double seconds)
{
  uint8_t *rgb = g_malloc ((size_t) w * h * 3);
  gint64 start, now;
  int frames = 0;

  ap_draw (f, style, 0, rgb, w, h, w * 3);      /* builds the scratch */
  start = now = g_get_monotonic_time ();
  while (now - start < (gint64) (seconds * 1e6)) {
    for (int i = 0; i < 10; i++)
      ap_draw (f, style, 0, rgb, w, h, w * 3);
    frames += 10;
    now = g_get_monotonic_time ();
  }
  g_free (rgb);
  return frames / ((now - start) / 1e6);
}

int
main (int argc, char **argv)
{
  static const int sizes[][2] = { {512, 512}, {256, 256}, {576, 1024} };
  static const struct
  {
    ApStyle style;
    const char *name;
  } styles[] = {
    {AP_STYLE_DWPOSE, "dwpose"}, {AP_STYLE_MIMICMOTION, "mimicmotion"},
  };
  ApFrame frame;
  double seconds = argc > 2 ? atof (argv[2]) : 1.0;

  if (argc > 1) {
    if (load_frame (argv[1], &frame) != 0)
      return 1;
  } else {
    synthetic_frame (&frame);
  }
  if (!(seconds > 0.0))
    seconds = 1.0;
  printf ("ap_draw, %s, 1 thread\n", argc > 1 ? argv[1] :
      "synthetic person (body, face 70, both hands)");
  for (guint s = 0; s < G_N_ELEMENTS (styles); s++)
    for (guint i = 0; i < G_N_ELEMENTS (sizes); i++) {
      double fps = bench_case (&frame, styles[s].style, sizes[i][0],
          sizes[i][1], seconds);
      printf ("  %-11s %4dx%-4d %9.1f fps  %7.3f ms/frame\n", styles[s].name,
          sizes[i][0], sizes[i][1], fps, 1000.0 / fps);
    }
  return 0;
}
