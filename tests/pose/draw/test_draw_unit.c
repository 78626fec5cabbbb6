/* ap_draw checked without ../shared: single primitives pixel by pixel
 * against hand-computed expectations (SPEC §3-§5, §9), the 0.6 dimming,
 * confidence rules, R/B swap and confidence scaling of style B, the sampled
 * grid of style B against a plain full-canvas resize, letterboxing,
 * clipping, absurd floats, stride padding and concurrent callers. */
#include "avatar-pose.h"

#include <glib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define CHECK(cond, ...) \
  do { \
    if (!(cond)) { \
      failures++; \
      printf ("FAIL %s:%d: ", __func__, __LINE__); \
      printf (__VA_ARGS__); \
      printf ("\n"); \
    } \
  } while (0)

typedef struct
{
  int w, h;
  uint8_t *rgb;
} Image;

static Image
image_new (int w, int h)
{
  Image im = { w, h, g_malloc0 ((size_t) w * h * 3) };
  return im;
}

static const uint8_t *
px (const Image * im, int x, int y)
{
  return im->rgb + ((size_t) y * im->w + x) * 3;
}

static int
is_rgb (const Image * im, int x, int y, int r, int g, int b)
{
  const uint8_t *p = px (im, x, y);
  return p[0] == r && p[1] == g && p[2] == b;
}

static int
count_rgb (const Image * im, int r, int g, int b)
{
  int n = 0;
  for (int y = 0; y < im->h; y++)
    for (int x = 0; x < im->w; x++)
      n += is_rgb (im, x, y, r, g, b);
  return n;
}

static int
count_nonblack (const Image * im)
{
  return im->w * im->h - count_rgb (im, 0, 0, 0);
}

static void
draw (const ApFrame * f, ApStyle style, int keep, Image * im)
{
  int r = ap_draw (f, style, keep, im->rgb, im->w, im->h, im->w * 3);
  CHECK (r == 0, "ap_draw returned %d", r);
}

static void
frame_empty (ApFrame * f, int cw, int ch, int n_people)
{
  ap_frame_init (f);
  f->canvas_width = cw;
  f->canvas_height = ch;
  f->n_people = n_people;
}

static void
set_point (ApPoint * p, float x, float y, float c)
{
  p->x = x;
  p->y = y;
  p->c = c;
}

/* A plausible person around (cx, cy) of the given height, every point at c. */
static void
make_person (ApPerson * p, float cx, float cy, float size, float c)
{
  static const float body[AP_BODY_N][2] = {
    {0.01f, -0.40f}, {0.0f, -0.28f}, {-0.11f, -0.27f}, {-0.16f, -0.10f},
    {-0.19f, 0.05f}, {0.11f, -0.27f}, {0.17f, -0.11f}, {0.21f, 0.04f},
    {-0.07f, 0.03f}, {-0.08f, 0.23f}, {-0.09f, 0.44f}, {0.07f, 0.03f},
    {0.08f, 0.23f}, {0.09f, 0.45f}, {-0.02f, -0.42f}, {0.03f, -0.42f},
    {-0.05f, -0.41f}, {0.06f, -0.40f},
  };

  memset (p, 0, sizeof (*p));
  for (int i = 0; i < AP_BODY_N; i++)
    set_point (&p->body[i], cx + body[i][0] * size + 0.37f,
        cy + body[i][1] * size + 0.61f, c);
  p->n_face = 70;
  for (int i = 0; i < 70; i++) {
    double a = i * 2.0 * G_PI / 70.0;
    set_point (&p->face[i], cx + 0.01f * size + (float) (0.05 * size *
            cos (a)), cy - 0.40f * size + (float) (0.06 * size * sin (a)), c);
  }
  for (int side = 0; side < 2; side++) {
    const ApPoint *wrist = &p->body[side == AP_LEFT ? AP_LWRIST : AP_RWRIST];
    float dir = side == AP_LEFT ? 1.0f : -1.0f;
    set_point (&p->hand[side][0], wrist->x, wrist->y, c);
    for (int i = 1; i < AP_HAND_N; i++) {
      int finger = (i - 1) / 4, joint = (i - 1) % 4 + 1;
      set_point (&p->hand[side][i], wrist->x + dir * 0.015f * size * joint,
          wrist->y + 0.012f * size * (finger - 2) * joint + 0.013f * size,
          c);
    }
  }
  p->parts = AP_PART_BODY | AP_PART_FACE | AP_PART_HAND_LEFT
      | AP_PART_HAND_RIGHT;
}

/* SPEC §4: a body disc covers exactly dx^2 + dy^2 <= 16 (49 pixels). */
static void
test_body_disc (void)
{
  ApFrame f;
  Image im = image_new (64, 48);

  frame_empty (&f, 64, 48, 1);
  set_point (&f.people[0].body[AP_NOSE], 20.7f, 30.2f, 0.9f);
  draw (&f, AP_STYLE_DWPOSE, 0, &im);
  CHECK (count_rgb (&im, 255, 0, 0) == 49, "nose disc has %d pixels",
      count_rgb (&im, 255, 0, 0));
  CHECK (count_nonblack (&im) == 49, "%d pixels drawn", count_nonblack (&im));
  for (int dy = -5; dy <= 5; dy++)
    for (int dx = -5; dx <= 5; dx++) {
      int in = dx * dx + dy * dy <= 16;
      CHECK (is_rgb (&im, 20 + dx, 30 + dy, in ? 255 : 0, 0, 0) || !in,
          "(%d,%d) not red", dx, dy);
      CHECK (!is_rgb (&im, 20 + dx, 30 + dy, 255, 0, 0) || in,
          "(%d,%d) red", dx, dy);
    }
  /* c exactly 0.3 is hidden (c > 0.3); the parser's 0,0,0 too. */
  f.people[0].body[AP_NOSE].c = 0.3f;
  draw (&f, AP_STYLE_DWPOSE, 0, &im);
  CHECK (count_nonblack (&im) == 0, "c = 0.3 drawn");
  g_free (im.rgb);
}

/* A horizontal Neck-RShoulder limb of length 20: ellipse centre (20,32),
 * semi-axes 10 and 4, angle 180. Row 28 holds the vertices of degrees 61
 * to 119 (4 sin >= 3.5), x = 20 -+ round(10 cos) = 15..25. Dimmed colour
 * 153,0,0; discs on top at full colour. */
static void
test_limb (void)
{
  ApFrame f;
  Image im = image_new (64, 64);
  ApPerson *p;

  frame_empty (&f, 64, 64, 1);
  p = &f.people[0];
  set_point (&p->body[AP_NECK], 10.5f, 32.5f, 0.9f);
  set_point (&p->body[AP_RSHOULDER], 30.5f, 32.5f, 0.9f);
  draw (&f, AP_STYLE_DWPOSE, 0, &im);
  CHECK (is_rgb (&im, 20, 32, 153, 0, 0), "limb centre not 153,0,0");
  CHECK (is_rgb (&im, 15, 32, 153, 0, 0), "limb at x=15 not dimmed red");
  for (int x = 15; x <= 25; x++)
    CHECK (is_rgb (&im, x, 28, 153, 0, 0) && is_rgb (&im, x, 36, 153, 0, 0),
        "row 28/36 x=%d not limb", x);
  CHECK (is_rgb (&im, 14, 28, 0, 0, 0) && is_rgb (&im, 26, 28, 0, 0, 0),
      "row 28 wider than 15..25");
  for (int x = 0; x < 64; x++)
    CHECK (is_rgb (&im, x, 27, 0, 0, 0) && is_rgb (&im, x, 37, 0, 0, 0),
        "row 27/37 x=%d drawn", x);
  /* Discs: Neck colour 1 = 255,85,0 at (10,32); RShoulder 255,170,0. */
  CHECK (is_rgb (&im, 10, 32, 255, 85, 0), "neck disc");
  CHECK (is_rgb (&im, 30, 32, 255, 170, 0), "rshoulder disc");
  CHECK (count_rgb (&im, 255, 85, 0) == 49, "neck disc size");
  /* Dimming of 170 and 85: limb 2 (255,170,0) and limb 1 (255,85,0). */
  set_point (&p->body[AP_RSHOULDER], 50.5f, 10.5f, 0.9f);
  set_point (&p->body[AP_RELBOW], 50.5f, 50.5f, 0.9f);
  set_point (&p->body[AP_LSHOULDER], 10.5f, 10.5f, 0.9f);
  draw (&f, AP_STYLE_DWPOSE, 0, &im);
  CHECK (is_rgb (&im, 50, 30, 153, 102, 0), "limb 2 not 153,102,0");
  CHECK (is_rgb (&im, 10, 21, 153, 51, 0), "limb 1 not 153,51,0");
  /* One end below the threshold hides the limb and that disc. */
  p->body[AP_RELBOW].c = 0.29f;
  draw (&f, AP_STYLE_DWPOSE, 0, &im);
  CHECK (is_rgb (&im, 50, 30, 0, 0, 0), "limb to a hidden point drawn");
  CHECK (count_rgb (&im, 255, 255, 0) == 0, "hidden elbow disc drawn");
  g_free (im.rgb);
}

/* SPEC §5: a horizontal hand edge 0 from (10,10) to (30,10): quadrilateral
 * rows 9..11, caps, red; points are blue radius-4 discs on top. */
static void
test_hand_line (void)
{
  ApFrame f;
  Image im = image_new (48, 32);
  ApPerson *p;

  frame_empty (&f, 48, 32, 1);
  p = &f.people[0];
  set_point (&p->hand[AP_RIGHT][0], 10.5f, 10.5f, 0.9f);
  set_point (&p->hand[AP_RIGHT][1], 30.5f, 10.5f, 0.9f);
  draw (&f, AP_STYLE_DWPOSE, 0, &im);
  for (int x = 15; x <= 25; x++) {
    CHECK (is_rgb (&im, x, 9, 255, 0, 0) && is_rgb (&im, x, 10, 255, 0, 0)
        && is_rgb (&im, x, 11, 255, 0, 0), "x=%d: line not 3 px red", x);
    CHECK (is_rgb (&im, x, 8, 0, 0, 0) && is_rgb (&im, x, 12, 0, 0, 0),
        "x=%d: line wider than 3 px", x);
  }
  CHECK (count_rgb (&im, 0, 0, 255) == 2 * 49, "hand points: %d blue",
      count_rgb (&im, 0, 0, 255));
  /* Edge 1 is 255,77,0 (matplotlib hue, rounded). */
  set_point (&p->hand[AP_RIGHT][2], 30.5f, 20.5f, 0.9f);
  draw (&f, AP_STYLE_DWPOSE, 0, &im);
  CHECK (is_rgb (&im, 30, 15, 255, 77, 0), "edge 1 colour");
  /* Position test: trunc(x) = 0 hides the point and its edges. */
  set_point (&p->hand[AP_RIGHT][0], 0.7f, 10.5f, 0.9f);
  draw (&f, AP_STYLE_DWPOSE, 0, &im);
  CHECK (is_rgb (&im, 15, 10, 0, 0, 0), "edge to x=0.7 drawn");
  CHECK (count_rgb (&im, 0, 0, 255) == 2 * 49, "x=0.7 point drawn: %d blue",
      count_rgb (&im, 0, 0, 255));
  /* Style A hides hand points below 0.3. */
  p->hand[AP_RIGHT][2].c = 0.29f;
  draw (&f, AP_STYLE_DWPOSE, 0, &im);
  CHECK (count_rgb (&im, 0, 0, 255) == 49, "c=0.29 hand point drawn");
  g_free (im.rgb);
}

/* SPEC §5: face discs radius 3 (29 px) white; A hides c < 0.3, and the
 * pupils 68-69 are drawn. */
static void
test_face (void)
{
  ApFrame f;
  Image im = image_new (64, 64);
  ApPerson *p;

  frame_empty (&f, 64, 64, 1);
  p = &f.people[0];
  p->n_face = 70;
  set_point (&p->face[3], 10.5f, 10.5f, 0.5f);
  set_point (&p->face[69], 40.5f, 40.5f, 0.5f);
  set_point (&p->face[10], 40.5f, 10.5f, 0.29f);
  draw (&f, AP_STYLE_DWPOSE, 0, &im);
  CHECK (count_rgb (&im, 255, 255, 255) == 2 * 29, "face: %d white",
      count_rgb (&im, 255, 255, 255));
  CHECK (is_rgb (&im, 40, 40, 255, 255, 255), "pupil not drawn");
  CHECK (is_rgb (&im, 40, 10, 0, 0, 0), "c=0.29 face point drawn in A");
  g_free (im.rgb);
}

/* Body points have no position test: a disc centred at x = -2 shows its
 * right part (trunc(-2.5) = -2, columns 0..2). Far points are clipped. */
static void
test_clip (void)
{
  ApFrame f;
  Image im = image_new (32, 32);
  ApPerson *p;

  frame_empty (&f, 32, 32, 1);
  p = &f.people[0];
  set_point (&p->body[AP_NOSE], -2.5f, 10.5f, 0.9f);
  draw (&f, AP_STYLE_DWPOSE, 0, &im);
  CHECK (is_rgb (&im, 2, 10, 255, 0, 0) && is_rgb (&im, 3, 10, 0, 0, 0),
      "clipped disc at x=-2");
  /* Columns 0, 1, 2 are dx = 2, 3, 4: |dy| <= 3, 2, 0. */
  CHECK (count_rgb (&im, 255, 0, 0) == 7 + 5 + 1,
      "clipped disc has %d pixels", count_rgb (&im, 255, 0, 0));
  /* A limb to a point far outside crosses the canvas. */
  set_point (&p->body[AP_NECK], 16.5f, 16.5f, 0.9f);
  set_point (&p->body[AP_NOSE], 16.5f, -90000.5f, 0.9f);
  draw (&f, AP_STYLE_DWPOSE, 0, &im);
  CHECK (is_rgb (&im, 16, 0, 0, 0, 153), "long limb not drawn to the edge");
  g_free (im.rgb);
}

static void
swap_rb (Image * im)
{
  for (size_t i = 0; i < (size_t) im->w * im->h; i++) {
    uint8_t t = im->rgb[3 * i];
    im->rgb[3 * i] = im->rgb[3 * i + 2];
    im->rgb[3 * i + 2] = t;
  }
}

/* At a short side of 2160 the style B canvas is the output: with c = 1 it
 * must be style A with R and B swapped, pixel for pixel. */
static void
test_style_b_equals_swapped_a (void)
{
  ApFrame f;
  Image a = image_new (2160, 2160), b = image_new (2160, 2160);

  frame_empty (&f, 512, 512, 2);
  make_person (&f.people[0], 200.3f, 260.1f, 400.0f, 1.0f);
  make_person (&f.people[1], 330.7f, 250.9f, 300.0f, 1.0f);
  draw (&f, AP_STYLE_DWPOSE, 0, &a);
  draw (&f, AP_STYLE_MIMICMOTION, 0, &b);
  swap_rb (&a);
  CHECK (memcmp (a.rgb, b.rgb, (size_t) 2160 * 2160 * 3) == 0,
      "B at 2160 differs from swapped A");
  CHECK (count_nonblack (&b) > 50000, "only %d pixels drawn",
      count_nonblack (&b));
  g_free (a.rgb);
  g_free (b.rgb);
}

/* SPEC §8.2-8.4 on single primitives at 2160 (no resampling). */
static void
test_style_b_confidence (void)
{
  ApFrame f;
  Image im = image_new (2160, 2160);
  ApPerson *p;

  frame_empty (&f, 2160, 2160, 1);
  p = &f.people[0];
  /* Limb 0 at c 0.5 * 0.5: trunc(255 * 0.25) = 63, dimmed 37, swapped. */
  set_point (&p->body[AP_NECK], 100.5f, 100.5f, 0.5f);
  set_point (&p->body[AP_RSHOULDER], 200.5f, 100.5f, 0.5f);
  /* Disc 2 (255,170,0) at 0.5: 127,85,0, swapped 0,85,127. */
  draw (&f, AP_STYLE_MIMICMOTION, 0, &im);
  CHECK (is_rgb (&im, 150, 100, 0, 0, 37), "limb 0 at c=.5");
  CHECK (is_rgb (&im, 200, 100, 0, 85, 127), "disc 2 at c=.5");
  /* Raw scores above 1 saturate each channel: limb 2 at 1.1 x 1.1 is
   * 255,205,0 before dimming: 153,123,0, swapped 0,123,153. */
  set_point (&p->body[AP_RELBOW], 200.5f, 300.5f, 1.1f);
  p->body[AP_RSHOULDER].c = 1.1f;
  draw (&f, AP_STYLE_MIMICMOTION, 0, &im);
  CHECK (is_rgb (&im, 200, 200, 0, 123, 153), "limb 2 at c=1.1");
  /* Hands and faces: no threshold; red hand points, grey faces. */
  memset (p, 0, sizeof (*p));
  set_point (&p->hand[AP_LEFT][0], 300.5f, 300.5f, 0.2f);
  p->n_face = 68;
  set_point (&p->face[0], 400.5f, 400.5f, 0.29f);
  set_point (&p->face[1], 500.5f, 400.5f, 0.0f);
  draw (&f, AP_STYLE_MIMICMOTION, 0, &im);
  CHECK (is_rgb (&im, 300, 300, 51, 0, 0), "hand point c=.2 not 51,0,0");
  CHECK (is_rgb (&im, 400, 400, 73, 73, 73), "face c=.29 not grey 73");
  CHECK (count_rgb (&im, 73, 73, 73) == 29, "face disc size");
  g_free (im.rgb);
}

/* Reference for style B: draw the whole 2160 canvas (style A with c = 1,
 * R/B swapped) and resize it with plain floating-point bilinear taps. The
 * sampled grid must agree within 1 per channel. */
static void
test_style_b_resize (int w, int h)
{
  ApFrame f;
  int short_side = MIN (w, h);
  double s = 2160.0 / short_side;
  int cw = (int) (w * s), ch = (int) (h * s), worst = 0, drawn = 0;
  Image big = image_new (cw, ch), out = image_new (w, h);

  frame_empty (&f, w, h, 1);
  make_person (&f.people[0], w * 0.5f, h * 0.5f, short_side * 0.8f, 1.0f);
  draw (&f, AP_STYLE_DWPOSE, 0, &big);
  swap_rb (&big);
  draw (&f, AP_STYLE_MIMICMOTION, 0, &out);
  for (int v = 0; v < h; v++) {
    double fy = (v + 0.5) * ch / h - 0.5;
    int y0 = (int) floor (fy);
    double wy = fy - y0;
    if (y0 < 0)
      y0 = 0, wy = 0;
    if (y0 >= ch - 1)
      y0 = ch - 1, wy = 0;
    for (int u = 0; u < w; u++) {
      double fx = (u + 0.5) * cw / w - 0.5;
      int x0 = (int) floor (fx);
      double wx = fx - x0;
      if (x0 < 0)
        x0 = 0, wx = 0;
      if (x0 >= cw - 1)
        x0 = cw - 1, wx = 0;
      for (int c = 0; c < 3; c++) {
        int x1 = MIN (x0 + 1, cw - 1), y1 = MIN (y0 + 1, ch - 1);
        double ref = (1 - wy) * ((1 - wx) * px (&big, x0, y0)[c]
            + wx * px (&big, x1, y0)[c])
            + wy * ((1 - wx) * px (&big, x0, y1)[c] + wx * px (&big, x1,
                y1)[c]);
        int d = abs ((int) lrint (ref) - px (&out, u, v)[c]);
        worst = MAX (worst, d);
      }
    }
  }
  drawn = count_nonblack (&out);
  CHECK (worst <= 1, "%dx%d: sampled grid differs by %d from full resize",
      w, h, worst);
  CHECK (drawn > 200, "%dx%d: only %d pixels drawn", w, h, drawn);
  printf ("style B %dx%d vs full-canvas resize: largest difference %d\n", w,
      h, worst);
  g_free (big.rgb);
  g_free (out.rgb);
}

/* keep_aspect: a 100x50 canvas in 64x64 is scaled by 0.64 and centred:
 * rows 0..15 and 48..63 are bars and stay black, even under a disc at the
 * canvas edge. Without it the picture is stretched. */
static void
test_letterbox (void)
{
  ApFrame f;
  Image im = image_new (64, 64);
  ApPerson *p;

  frame_empty (&f, 100, 50, 1);
  p = &f.people[0];
  set_point (&p->body[AP_NOSE], 50.1f, 25.1f, 0.9f);
  set_point (&p->body[AP_NECK], 90.1f, 0.2f, 0.9f);
  for (int style = 0; style < 2; style++) {
    int bars = 0;
    draw (&f, style, 1, &im);
    for (int y = 0; y < 64; y++)
      for (int x = 0; x < 64; x++)
        if (y < 16 || y >= 48)
          bars += !is_rgb (&im, x, y, 0, 0, 0);
    CHECK (bars == 0, "style %d: %d bar pixels drawn", style, bars);
    CHECK (count_nonblack (&im) > 0, "style %d: nothing drawn", style);
  }
  draw (&f, AP_STYLE_DWPOSE, 1, &im);
  /* (50.1, 25.1) -> (32.06, 32.06): the nose disc is centred at 32,32. */
  CHECK (is_rgb (&im, 32, 32, 255, 0, 0) && is_rgb (&im, 36, 32, 255, 0, 0)
      && !is_rgb (&im, 37, 32, 255, 0, 0), "letterboxed disc misplaced");
  draw (&f, AP_STYLE_DWPOSE, 0, &im);
  /* Stretched: (50.1, 25.1) -> (32.06, 32.12); the neck at y 0.26 spills
   * its disc to row 0. */
  CHECK (is_rgb (&im, 32, 32, 255, 0, 0), "stretched disc misplaced");
  CHECK (!is_rgb (&im, 57, 0, 0, 0, 0), "stretched neck disc not at row 0");
  g_free (im.rgb);
}

static float
wild_float (GRand * r)
{
  static const float specials[] = { 0.0f, -0.0f, 1.0f, 0.3f, -1.0f, 1e30f,
    -1e30f, 3.4e38f, -3.4e38f, 1e-30f, 1e6f, -1e6f, 16777216.0f,
    2147483648.0f
  };
  switch (g_rand_int_range (r, 0, 6)) {
    case 0:
      return specials[g_rand_int_range (r, 0, G_N_ELEMENTS (specials))];
    case 1:
      return g_rand_boolean (r) ? INFINITY : (g_rand_boolean (r) ? -INFINITY
          : NAN);
    case 2:
      return (float) g_rand_double_range (r, -1e7, 1e7);
    default:
      return (float) g_rand_double_range (r, -50.0, 150.0);
  }
}

/* Any float, any canvas: no crash, no write outside the image, padding
 * bytes of a wider stride untouched. */
static void
test_wild_input (void)
{
  GRand *r = g_rand_new_with_seed (1234);
  uint8_t *buf;
  int w = 37, h = 23, stride = 37 * 3 + 5;

  buf = g_malloc ((size_t) stride * h);
  for (int iter = 0; iter < 600; iter++) {
    ApFrame f;
    int bad = 0;

    frame_empty (&f, g_rand_int_range (r, 1, 300),
        g_rand_int_range (r, 1, 300), g_rand_int_range (r, 0, 3));
    for (int n = 0; n < f.n_people; n++) {
      ApPoint *pts = (ApPoint *) & f.people[n];
      int n_points = AP_BODY_N + AP_FEET_N + AP_FACE_N + 2 * AP_HAND_N;
      make_person (&f.people[n], 50.0f, 50.0f, 80.0f, 0.9f);
      for (int k = 0; k < 30; k++) {
        ApPoint *q = &pts[g_rand_int_range (r, 0, n_points)];
        q->x = wild_float (r);
        q->y = wild_float (r);
        q->c = g_rand_boolean (r) ? wild_float (r) : 0.9f;
      }
    }
    memset (buf, 0xAB, (size_t) stride * h);
    if (ap_draw (&f, iter % 2 ? AP_STYLE_MIMICMOTION : AP_STYLE_DWPOSE,
            iter % 3 == 0, buf, w, h, stride) != 0)
      bad = 1;
    for (int y = 0; y < h; y++)
      for (int x = w * 3; x < stride; x++)
        bad |= buf[(size_t) y * stride + x] != 0xAB;
    CHECK (!bad, "iteration %d: failed or wrote into padding", iter);
  }
  /* Bad arguments are refused. */
  CHECK (ap_draw (NULL, AP_STYLE_DWPOSE, 0, buf, w, h, stride) == -1,
      "NULL frame accepted");
  {
    ApFrame f;
    frame_empty (&f, 10, 10, 0);
    CHECK (ap_draw (&f, AP_STYLE_DWPOSE, 0, buf, w, h, w * 3 - 1) == -1,
        "short stride accepted");
    CHECK (ap_draw (&f, AP_STYLE_DWPOSE, 0, buf, 0, h, stride) == -1,
        "zero width accepted");
    f.n_people = 1000;
    CHECK (ap_draw (&f, AP_STYLE_MIMICMOTION, 0, buf, w, h, stride) == 0,
        "n_people out of range");
  }
  /* A 16384x1 strip: style A draws it; style B's canvas would be 35
   * million pixels long and is refused. */
  {
    ApFrame f;
    uint8_t *strip = g_malloc (16384 * 3);
    frame_empty (&f, 16384, 1, 1);
    make_person (&f.people[0], 8000.0f, 0.5f, 100.0f, 0.9f);
    CHECK (ap_draw (&f, AP_STYLE_DWPOSE, 0, strip, 16384, 1, 16384 * 3) == 0,
        "16384x1 style A refused");
    CHECK (ap_draw (&f, AP_STYLE_MIMICMOTION, 0, strip, 16384, 1,
            16384 * 3) == -1, "16384x1 style B accepted");
    g_free (strip);
  }
  g_free (buf);
  g_rand_free (r);
}

/* Concurrent callers with different sizes get the images a lone caller
 * gets (each thread has its own scratch). */
typedef struct
{
  int w, h;
  ApStyle style;
  Image expect;
  int mismatches;
} ThreadJob;

static ApFrame thread_frame;

static gpointer
thread_main (gpointer data)
{
  ThreadJob *job = data;
  Image im = image_new (job->w, job->h);

  for (int i = 0; i < 20; i++) {
    ap_draw (&thread_frame, job->style, i % 2, im.rgb, im.w, im.h, im.w * 3);
    if (i % 2 == 0 && memcmp (im.rgb, job->expect.rgb,
            (size_t) im.w * im.h * 3) != 0)
      job->mismatches++;
  }
  g_free (im.rgb);
  return NULL;
}

static void
test_threads (void)
{
  ThreadJob jobs[4] = {
    {.w = 256,.h = 256,.style = AP_STYLE_MIMICMOTION},
    {.w = 320,.h = 200,.style = AP_STYLE_MIMICMOTION},
    {.w = 256,.h = 256,.style = AP_STYLE_DWPOSE},
    {.w = 200,.h = 320,.style = AP_STYLE_MIMICMOTION},
  };
  GThread *threads[4];

  frame_empty (&thread_frame, 300, 300, 1);
  make_person (&thread_frame.people[0], 150.0f, 150.0f, 250.0f, 0.8f);
  for (int i = 0; i < 4; i++) {
    jobs[i].expect = image_new (jobs[i].w, jobs[i].h);
    draw (&thread_frame, jobs[i].style, 0, &jobs[i].expect);
  }
  for (int i = 0; i < 4; i++)
    threads[i] = g_thread_new ("draw", thread_main, &jobs[i]);
  for (int i = 0; i < 4; i++) {
    g_thread_join (threads[i]);
    CHECK (jobs[i].mismatches == 0, "thread %d: %d mismatches", i,
        jobs[i].mismatches);
    g_free (jobs[i].expect.rgb);
  }
}

int
main (void)
{
  test_body_disc ();
  test_limb ();
  test_hand_line ();
  test_face ();
  test_clip ();
  test_style_b_equals_swapped_a ();
  test_style_b_confidence ();
  test_style_b_resize (512, 512);
  test_style_b_resize (256, 192);
  test_style_b_resize (300, 500);
  test_letterbox ();
  test_wild_input ();
  test_threads ();
  printf ("%d failures\n", failures);
  return failures == 0 ? 0 : 1;
}
