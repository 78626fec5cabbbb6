/* avatar-world library tests: determinism, keypoints inside the parts
 * drawn for them, the alpha matte, boxes, the OpenPose JSON round trip and
 * the fixed split. */
#include "avatar-world.h"

#include <glib.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

#define W 256
#define H 256

static uint8_t rgb_a[W * H * 3], rgb_b[W * H * 3], alpha_a[W * H];
static uint8_t alpha_b[W * H];

static void
render (uint32_t ids, uint32_t ms, int64_t frame, uint8_t * rgb,
    uint8_t * alpha, ApPerson * pose)
{
  AwIdentity id;
  AwMotion *m = aw_motion_new (ms);

  aw_identity_from_seed (ids, &id);
  aw_motion_pose (m, &id, frame, 25.0, W, H, pose);
  aw_render (&id, pose, rgb, 3 * W, alpha, W, W, H);
  aw_motion_free (m);
}

static void
test_determinism (void)
{
  ApPerson p1, p2;

  for (uint32_t s = 0; s < 6; s++) {
    render (s * 7919 + 1, s * 104729 + 3, 37 + s * 11, rgb_a, alpha_a, &p1);
    render (s * 7919 + 1, s * 104729 + 3, 37 + s * 11, rgb_b, alpha_b, &p2);
    g_assert_cmpint (memcmp (rgb_a, rgb_b, sizeof (rgb_a)), ==, 0);
    g_assert_cmpint (memcmp (alpha_a, alpha_b, sizeof (alpha_a)), ==, 0);
    g_assert_cmpint (memcmp (&p1, &p2, sizeof (p1)), ==, 0);
  }
  /* other seeds, other pictures and poses */
  render (11, 5, 40, rgb_a, alpha_a, &p1);
  render (12, 5, 40, rgb_b, alpha_b, &p2);
  g_assert_cmpint (memcmp (rgb_a, rgb_b, sizeof (rgb_a)), !=, 0);
  render (11, 6, 40, rgb_b, alpha_b, &p2);
  g_assert_cmpint (memcmp (&p1.hand, &p2.hand, sizeof (p1.hand)), !=, 0);
}

/* Thousands of identities differ: no two of 3000 seeds share every
 * appearance field. */
static void
test_identities_distinct (void)
{
  GHashTable *seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
      NULL);
  for (uint32_t s = 1; s <= 3000; s++) {
    AwIdentity id;
    char *key;
    aw_identity_from_seed (s, &id);
    key = g_strdup_printf ("%d %d %d %d %d %d %d %02x%02x%02x %02x%02x%02x "
        "%02x%02x%02x %02x%02x%02x %.3f", id.hair_style, id.pattern,
        id.background, id.has_logo, id.has_glasses, id.has_earrings,
        id.has_tie, id.skin[0], id.skin[1], id.skin[2], id.hair[0],
        id.hair[1], id.hair[2], id.cloth[0], id.cloth[1], id.cloth[2],
        id.bg[0], id.bg[1], id.bg[2], id.frame_scale);
    g_assert_false (g_hash_table_contains (seen, key));
    g_hash_table_add (seen, key);
  }
  g_hash_table_destroy (seen);
}

static uint8_t
alpha_at (const uint8_t * alpha, float x, float y)
{
  int ix = (int) lrintf (x), iy = (int) lrintf (y);
  g_assert_true (ix >= 0 && iy >= 0 && ix < W && iy < H);
  return alpha[iy * W + ix];
}

static int
in_box (const float b[4], float x, float y)
{
  return x >= b[0] - 0.5f && x <= b[2] + 0.5f && y >= b[1] - 0.5f
      && y <= b[3] + 0.5f;
}

/* Every point a detector would see (c > 0, on the canvas) lies on the
 * character (alpha at least half), face points inside the face box, hand
 * points inside their hand's box. */
static void
test_keypoints_inside_parts (void)
{
  int checked = 0;

  for (uint32_t s = 1; s <= 12; s++) {
    for (int64_t f = 0; f < 250; f += 25) {
      ApPerson p;
      float fb[4], hb[4];
      render (s, s + 100, f, rgb_a, alpha_a, &p);
      g_assert_true (aw_face_box (&p, W, H, fb));
      for (int i = 0; i < AP_BODY_N; i++) {
        if (p.body[i].c <= 0.0f)
          continue;
        g_assert_cmpint (alpha_at (alpha_a, p.body[i].x, p.body[i].y), >=,
            128);
        checked++;
      }
      for (int i = 0; i < p.n_face; i++) {
        if (p.face[i].c <= 0.0f)
          continue;
        g_assert_cmpint (alpha_at (alpha_a, p.face[i].x, p.face[i].y), >=,
            128);
        g_assert_true (in_box (fb, p.face[i].x, p.face[i].y));
        checked++;
      }
      for (int side = 0; side < 2; side++) {
        int visible = aw_hand_box (&p, side, W, H, hb);
        for (int i = 0; i < AP_HAND_N; i++) {
          const ApPoint *q = &p.hand[side][i];
          if (q->c <= 0.0f)
            continue;
          g_assert_true (visible);
          g_assert_true (in_box (hb, q->x, q->y));
          g_assert_cmpint (alpha_at (alpha_a, q->x, q->y), >=, 128);
          checked++;
        }
      }
    }
  }
  g_assert_cmpint (checked, >, 10000);
}

/* Alpha is exactly 0 away from the character (background pixels keep the
 * background's colour there) and exactly 1 well inside its body. */
static void
test_alpha (void)
{
  for (uint32_t s = 1; s <= 10; s++) {
    ApPerson p, ref;
    AwIdentity id;
    float S;
    int zero = 0;

    render (s, s, 60, rgb_a, alpha_a, &p);
    aw_identity_from_seed (s, &id);
    /* the top corners are background for every framing */
    g_assert_cmpint (alpha_a[0], ==, 0);
    g_assert_cmpint (alpha_a[W - 1], ==, 0);
    /* the background alone, rendered with no person, matches there */
    memset (&ref, 0, sizeof (ref));
    aw_render (&id, &ref, rgb_b, 3 * W, alpha_b, W, W, H);
    for (int i = 0; i < W * H; i++) {
      g_assert_cmpint (alpha_b[i], ==, 0);
      if (alpha_a[i] == 0) {
        zero++;
        g_assert_cmpint (memcmp (rgb_a + 3 * i, rgb_b + 3 * i, 3), ==, 0);
      }
    }
    g_assert_cmpint (zero, >, W * H / 5);
    /* inside: neck, mid-shoulders, chest, nose, between the eyes */
    S = id.frame_scale * H;
    g_assert_cmpint (alpha_at (alpha_a, p.body[AP_NECK].x,
            p.body[AP_NECK].y), ==, 255);
    g_assert_cmpint (alpha_at (alpha_a, p.body[AP_NECK].x,
            p.body[AP_NECK].y + 0.8f * S), ==, 255);
    for (int k = 0; k < 2; k++) {
      int sh = k ? AP_LSHOULDER : AP_RSHOULDER;
      g_assert_cmpint (alpha_at (alpha_a, p.body[sh].x, p.body[sh].y), ==,
          255);
    }
    g_assert_cmpint (alpha_at (alpha_a, p.face[30].x, p.face[30].y), ==, 255);
    g_assert_cmpint (alpha_at (alpha_a, p.face[27].x, p.face[27].y), ==, 255);
  }
}

static void
assert_points_equal (const ApPoint * a, const ApPoint * b, int n)
{
  for (int i = 0; i < n; i++) {
    if (a[i].c > 0.0f) {
      g_assert_cmpfloat_with_epsilon (a[i].x, b[i].x, 1e-3);
      g_assert_cmpfloat_with_epsilon (a[i].y, b[i].y, 1e-3);
      g_assert_cmpfloat_with_epsilon (a[i].c, b[i].c, 1e-5);
    } else {
      g_assert_true (b[i].c <= 0.0f);
    }
  }
}

/* The OpenPose JSON written parses back through ap_frame_from_json into
 * the same points; hidden points come back missing. */
static void
test_json_roundtrip (void)
{
  AwMotion *m = aw_motion_new (99);
  AwIdentity id;
  int hidden = 0;

  aw_identity_from_seed (77, &id);
  for (int64_t f = 0; f < 400; f += 7) {
    ApPerson truth;
    ApFrame obs, back;
    ApIssues issues;
    char *json;

    aw_motion_pose (m, &id, f, 25.0, 320, 240, &truth);
    aw_observed_frame (&truth, 320, 240, &obs);
    json = ap_frame_to_json (&obs);
    ap_issues_clear (&issues);
    g_assert_cmpint (ap_frame_from_json (json, strlen (json), 1, &back,
            &issues), ==, AP_FRAME);
    g_free (json);
    g_assert_cmpint (back.canvas_width, ==, 320);
    g_assert_cmpint (back.canvas_height, ==, 240);
    g_assert_cmpint (back.n_people, ==, 1);
    g_assert_cmpint (back.people[0].n_face, ==, AP_FACE_N);
    assert_points_equal (truth.body, back.people[0].body, AP_BODY_N);
    assert_points_equal (truth.face, back.people[0].face, AP_FACE_N);
    for (int s = 0; s < 2; s++)
      assert_points_equal (truth.hand[s], back.people[0].hand[s], AP_HAND_N);
    for (int i = 0; i < AP_BODY_N; i++)
      hidden += truth.body[i].c <= 0.0f;
  }
  /* hips, knees, ankles below a half-body frame are reported missing */
  g_assert_cmpint (hidden, >, 0);
  aw_motion_free (m);
}

/* Train seeds never reach the held-out ranges; held-out clips pair them. */
static void
test_split (void)
{
  for (uint32_t k = 0; k < 200000; k++) {
    uint32_t i, m;
    aw_split_seeds (0, k, &i, &m);
    g_assert_cmpuint (i, <, AW_TRAIN_SEED_LIMIT);
    g_assert_cmpuint (m, <, AW_TRAIN_SEED_LIMIT);
    g_assert_cmpuint (i, >, 0);
  }
  for (uint32_t k = 0; k < AW_HELDOUT_N; k++) {
    uint32_t i, m;
    aw_split_seeds (1, k, &i, &m);
    g_assert_cmpuint (i, ==, 1000000 + k);
    g_assert_cmpuint (m, ==, 2000000 + k);
  }
}

/* Hands leave and enter the frame; fingers articulate. */
static void
test_motion_variety (void)
{
  AwMotion *m = aw_motion_new (5);
  int off = 0, on = 0;
  double curl_min = 1e9, curl_max = -1e9;

  for (int64_t f = 0; f < 25 * 60; f++) {
    ApPerson p;
    aw_motion_pose (m, NULL, f, 25.0, W, H, &p);
    for (int s = 0; s < 2; s++) {
      /* tip-to-MCP distance of the index against the hand's length */
      const ApPoint *h = p.hand[s];
      double len = hypot (h[9].x - h[0].x, h[9].y - h[0].y);
      double tip = hypot (h[8].x - h[5].x, h[8].y - h[5].y) / len;
      curl_min = fmin (curl_min, tip);
      curl_max = fmax (curl_max, tip);
      if (p.hand[s][9].c > 0.0f)
        on++;
      else
        off++;
    }
  }
  g_assert_cmpint (on, >, 0);
  g_assert_cmpint (off, >, 0);
  g_assert_cmpfloat (curl_max - curl_min, >, 0.5);
  aw_motion_free (m);
}

/* Poses the renderer never made (huge, NaN, missing, jumbled points) draw
 * without crashing and leave the background's corners alone. */
/* Points hidden behind a hand are reported with c = 0, and only points that
 * lie in a hand's box are hidden that way. */
static void
test_occlusion (void)
{
  int hidden_hand = 0, hidden_face = 0;

  for (uint32_t seed = 1; seed <= 6; seed++) {
    AwMotion *m = aw_motion_new (seed);
    for (int64_t f = 0; f < 25 * 60; f += 2) {
      ApPerson p;
      float lb[4], rb[4];
      int lv, rv;
      aw_motion_pose (m, NULL, f, 25.0, W, H, &p);
      lv = aw_hand_box (&p, AP_LEFT, W, H, lb);
      rv = aw_hand_box (&p, AP_RIGHT, W, H, rb);
      for (int i = 0; i < AP_FACE_N; i++) {
        const ApPoint *q = &p.face[i];
        if (q->c > 0.0f || q->x < 0 || q->y < 0 || q->x >= W || q->y >= H)
          continue;
        if (i <= 16)
          continue;             /* the jaw may also turn away */
        g_assert_true ((lv && in_box (lb, q->x, q->y)) || (rv
                && in_box (rb, q->x, q->y)));
        hidden_face++;
      }
      for (int i = 1; i < AP_HAND_N; i++) {
        const ApPoint *q = &p.hand[AP_RIGHT][i];
        if (q->c > 0.0f || q->x < 0 || q->y < 0 || q->x >= W || q->y >= H)
          continue;
        /* behind the left hand, or a fingertip curled behind its own back */
        if (lv && in_box (lb, q->x, q->y))
          hidden_hand++;
      }
    }
    aw_motion_free (m);
  }
  g_test_message ("hidden: %d face points, %d right-hand points",
      hidden_face, hidden_hand);
  g_assert_cmpint (hidden_hand, >, 0);
}

static void
test_garbage_poses (void)
{
  AwIdentity id;
  GRand *r = g_rand_new_with_seed (1234);

  aw_identity_from_seed (3, &id);
  for (int k = 0; k < 300; k++) {
    ApPerson p;
    float *f = (float *) &p;
    memset (&p, 0, sizeof (p));
    for (size_t i = 0; i < offsetof (ApPerson, n_face) / sizeof (float); i++) {
      switch (g_rand_int_range (r, 0, 8)) {
        case 0:
          f[i] = NAN;
          break;
        case 1:
          f[i] = (float) g_rand_double_range (r, -1e30, 1e30);
          break;
        case 2:
          f[i] = 0.0f;
          break;
        default:
          f[i] = (float) g_rand_double_range (r, -50.0, W + 50.0);
          break;
      }
    }
    p.n_face = k % 3 == 0 ? 0 : k % 3 == 1 ? 68 : 70;
    aw_render (&id, &p, rgb_a, 3 * W, alpha_a, W, W, H);
  }
  g_rand_free (r);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/world/determinism", test_determinism);
  g_test_add_func ("/world/identities-distinct", test_identities_distinct);
  g_test_add_func ("/world/keypoints-inside-parts",
      test_keypoints_inside_parts);
  g_test_add_func ("/world/alpha", test_alpha);
  g_test_add_func ("/world/json-roundtrip", test_json_roundtrip);
  g_test_add_func ("/world/split", test_split);
  g_test_add_func ("/world/motion-variety", test_motion_variety);
  g_test_add_func ("/world/occlusion", test_occlusion);
  g_test_add_func ("/world/garbage-poses", test_garbage_poses);
  return g_test_run ();
}
