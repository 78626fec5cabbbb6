/* OpenPose JSON reader/writer and people selection: every input format,
 * every kind of bad input, streams split at every byte, datagrams, round
 * trips. Self-contained: the data are written here or in tests/pose/data. */
#include "avatar-pose.h"

#include <glib.h>
#include <math.h>
#include <string.h>

/* COCO-18 body: point i at (100 + i, 200 + 2 i), confidence 0.9. */
static char *
coco_body (double dx)
{
  GString *s = g_string_new ("[");
  for (int i = 0; i < AP_BODY_N; i++)
    g_string_append_printf (s, "%s%g,%g,0.9", i ? "," : "", 100 + i + dx,
        200.0 + 2 * i);
  g_string_append_c (s, ']');
  return g_string_free (s, FALSE);
}

static char *
frame_line (const char *people)
{
  return g_strdup_printf ("{\"version\":1.3,\"canvas_width\":640,"
      "\"canvas_height\":480,\"people\":[%s]}", people);
}

static char *
person_with_body (const char *body)
{
  return g_strdup_printf ("{\"person_id\":[-1],\"pose_keypoints_2d\":%s,"
      "\"face_keypoints_2d\":[],\"hand_left_keypoints_2d\":[],"
      "\"hand_right_keypoints_2d\":[]}", body);
}

/* One frame with one person whose body array is body_json. */
static ApParseResult
parse_body (const char *body_json, ApFrame * frame, ApIssues * issues)
{
  char *person = person_with_body (body_json);
  char *line = frame_line (person);
  ApParseResult res = ap_frame_from_json (line, strlen (line), 7, frame,
      issues);
  g_free (person);
  g_free (line);
  return res;
}

static void
assert_issue (const ApIssues * issues, long line, const char *field)
{
  for (int i = 0; i < issues->n; i++)
    if (issues->items[i].line == line
        && g_strcmp0 (issues->items[i].field, field) == 0)
      return;
  for (int i = 0; i < issues->n; i++) {
    char buf[256];
    ap_issue_format (&issues->items[i], buf, sizeof (buf));
    g_printerr ("  issue: %s\n", buf);
  }
  g_error ("no issue at line %ld for field '%s'", line, field);
}

static void
test_coco18 (void)
{
  ApFrame f;
  ApIssues is;
  char *body = coco_body (0);

  g_assert_cmpint (parse_body (body, &f, &is), ==, AP_FRAME);
  g_assert_cmpint (is.n_total, ==, 0);
  g_assert_cmpint (f.canvas_width, ==, 640);
  g_assert_cmpint (f.canvas_height, ==, 480);
  g_assert_cmpint (f.n_people, ==, 1);
  g_assert_cmpuint (f.people[0].parts, ==, AP_PART_BODY);
  for (int i = 0; i < AP_BODY_N; i++) {
    g_assert_cmpfloat (f.people[0].body[i].x, ==, 100 + i);
    g_assert_cmpfloat (f.people[0].body[i].y, ==, 200 + 2 * i);
    g_assert_cmpfloat_with_epsilon (f.people[0].body[i].c, 0.9, 1e-6);
  }
  g_assert_false (f.has_time);
  g_free (body);
}

static void
test_body25 (void)
{
  GString *s = g_string_new ("[");
  ApFrame f;
  ApIssues is;

  for (int i = 0; i < 25; i++)
    g_string_append_printf (s, "%s%d,%d,0.5", i ? "," : "", i, 1000 + i);
  g_string_append_c (s, ']');
  g_assert_cmpint (parse_body (s->str, &f, &is), ==, AP_FRAME);
  g_assert_cmpint (is.n_total, ==, 0);
  g_assert_cmpuint (f.people[0].parts, ==, AP_PART_BODY | AP_PART_FEET);
  /* SPEC section 2: 0..7 kept, 8 (MidHip) dropped, 9..18 shift down. */
  g_assert_cmpfloat (f.people[0].body[AP_LWRIST].x, ==, 7);
  g_assert_cmpfloat (f.people[0].body[AP_RHIP].x, ==, 9);
  g_assert_cmpfloat (f.people[0].body[AP_LEAR].x, ==, 18);
  for (int i = 0; i < AP_FEET_N; i++)
    g_assert_cmpfloat (f.people[0].feet[i].y, ==, 1019 + i);
  g_string_free (s, TRUE);
}

static char *
points_json (int n, double x0, double c)
{
  GString *s = g_string_new ("[");
  for (int i = 0; i < n; i++)
    g_string_append_printf (s, "%s%g,%g,%g", i ? "," : "", x0 + i, x0 + 3 * i,
        c);
  g_string_append_c (s, ']');
  return g_string_free (s, FALSE);
}

static void
test_face_hands (void)
{
  for (int n_face = 68; n_face <= 70; n_face += 2) {
    char *body = coco_body (0), *face = points_json (n_face, 10, 0.8);
    char *lh = points_json (21, 300, 0.7), *rh = points_json (21, 400, 0.6);
    char *person = g_strdup_printf ("{\"pose_keypoints_2d\":%s,"
        "\"face_keypoints_2d\":%s,\"hand_left_keypoints_2d\":%s,"
        "\"hand_right_keypoints_2d\":%s}", body, face, lh, rh);
    char *line = frame_line (person);
    ApFrame f;
    ApIssues is;

    g_assert_cmpint (ap_frame_from_json (line, strlen (line), 1, &f, &is),
        ==, AP_FRAME);
    g_assert_cmpint (is.n_total, ==, 0);
    g_assert_cmpint (f.people[0].n_face, ==, n_face);
    g_assert_cmpuint (f.people[0].parts, ==, AP_PART_BODY | AP_PART_FACE
        | AP_PART_HAND_LEFT | AP_PART_HAND_RIGHT);
    g_assert_cmpfloat (f.people[0].face[n_face - 1].x, ==, 10 + n_face - 1);
    g_assert_cmpfloat (f.people[0].hand[AP_LEFT][20].y, ==, 360);
    g_assert_cmpfloat (f.people[0].hand[AP_RIGHT][0].x, ==, 400);
    g_assert_cmpfloat_with_epsilon (f.people[0].hand[AP_RIGHT][0].c, 0.6,
        1e-6);
    g_free (body);
    g_free (face);
    g_free (lh);
    g_free (rh);
    g_free (person);
    g_free (line);
  }
}

/* Person k of n has a body box growing with sizes[k]. */
static char *
people_json (int n, const int *sizes)
{
  GString *s = g_string_new ("");
  for (int k = 0; k < n; k++) {
    g_string_append_printf (s, "%s{\"person_id\":[%d],\"pose_keypoints_2d\":["
        "%d,%d,0.9,%d,%d,0.9", k ? "," : "", k, 10 * k, 10, 10 * k + sizes[k],
        10 + sizes[k]);
    for (int i = 2; i < AP_BODY_N; i++)
      g_string_append (s, ",0,0,0");
    g_string_append (s, "]}");
  }
  return g_string_free (s, FALSE);
}

static void
test_many_people (void)
{
  const int sizes[11] = { 5, 50, 7, 40, 3, 60, 30, 20, 1, 100, 10 };
  char *people = people_json (11, sizes);
  char *line = frame_line (people);
  ApFrame f;
  ApIssues is;

  g_assert_cmpint (ap_frame_from_json (line, strlen (line), 3, &f, &is), ==,
      AP_FRAME);
  g_assert_cmpint (f.n_people, ==, AP_MAX_PEOPLE);
  assert_issue (&is, 3, "people");
  /* The 3 smallest (sizes 3, 1, 5) gave way; input order is kept. */
  {
    const float expect_x0[AP_MAX_PEOPLE] = { 10, 20, 30, 50, 60, 70, 90, 100 };
    for (int i = 0; i < AP_MAX_PEOPLE; i++)
      g_assert_cmpfloat (f.people[i].body[0].x, ==, expect_x0[i]);
  }
  g_free (people);
  g_free (line);
}

static void
test_select (void)
{
  const int sizes[4] = { 5, 50, 70, 40 };
  char *people = people_json (4, sizes);
  char *line = frame_line (people);
  ApFrame f, g;
  ApIssues is;

  g_assert_cmpint (ap_frame_from_json (line, strlen (line), 1, &f, &is), ==,
      AP_FRAME);
  g_assert_cmpint (f.n_people, ==, 4);
  g = f;
  ap_frame_select (&g, AP_SELECT_ALL);
  g_assert_cmpint (g.n_people, ==, 4);
  g = f;
  ap_frame_select (&g, AP_SELECT_FIRST);
  g_assert_cmpint (g.n_people, ==, 1);
  g_assert_cmpfloat (g.people[0].body[0].x, ==, 0);
  g = f;
  ap_frame_select (&g, AP_SELECT_LARGEST);
  g_assert_cmpint (g.n_people, ==, 1);
  g_assert_cmpfloat (g.people[0].body[0].x, ==, 20);
  /* Points at or below the threshold do not count towards the box. */
  g = f;
  g.people[2].body[1].c = 0.3f;
  ap_frame_select (&g, AP_SELECT_LARGEST);
  g_assert_cmpfloat (g.people[0].body[0].x, ==, 10);
  /* No people: nothing to choose, nothing breaks. */
  g.n_people = 0;
  ap_frame_select (&g, AP_SELECT_LARGEST);
  g_assert_cmpint (g.n_people, ==, 0);
  g_free (people);
  g_free (line);
}

static void
test_canvas_and_time (void)
{
  const char *stream =
      "{\"people\":[]}\n"
      "{\"canvas_width\":800,\"canvas_height\":600,\"time\":1.5,"
      "\"people\":[]}\n"
      "{\"people\":[],\"time\":\"soon\"}\n"
      "{\"canvas_width\":-3,\"canvas_height\":1e999,\"time\":-1,"
      "\"people\":[]}\n";
  ApParser *p = ap_parser_new (0);
  ApFrame f;
  ApIssues is;

  ap_parser_push (p, stream, strlen (stream));
  /* No canvas: the default, reported once per stream. */
  g_assert_cmpint (ap_parser_next (p, &f, &is), ==, AP_FRAME);
  g_assert_cmpint (f.canvas_width, ==, AP_DEFAULT_CANVAS_WIDTH);
  g_assert_cmpint (f.canvas_height, ==, AP_DEFAULT_CANVAS_HEIGHT);
  assert_issue (&is, 1, "canvas_width");
  g_assert_cmpint (f.n_people, ==, 0);

  g_assert_cmpint (ap_parser_next (p, &f, &is), ==, AP_FRAME);
  g_assert_cmpint (is.n_total, ==, 0);
  g_assert_cmpint (f.canvas_width, ==, 800);
  g_assert_true (f.has_time);
  g_assert_cmpfloat (f.time_s, ==, 1.5);

  /* The last canvas carries on, silently; a bad time is ignored. */
  g_assert_cmpint (ap_parser_next (p, &f, &is), ==, AP_FRAME);
  g_assert_cmpint (f.canvas_width, ==, 800);
  g_assert_cmpint (f.canvas_height, ==, 600);
  g_assert_false (f.has_time);
  g_assert_cmpint (is.n_total, ==, 1);
  assert_issue (&is, 3, "time");

  g_assert_cmpint (ap_parser_next (p, &f, &is), ==, AP_FRAME);
  assert_issue (&is, 4, "canvas_width");
  assert_issue (&is, 4, "canvas_height");
  assert_issue (&is, 4, "time");
  g_assert_cmpint (f.canvas_width, ==, 800);
  g_assert_false (f.has_time);
  g_assert_cmpint (ap_parser_next (p, &f, &is), ==, AP_NEED_DATA);
  ap_parser_free (p);
}

/* ---- Bad input: one case each, each names its field ---------------------- */

static void
assert_point_missing (const char *body, int point, const char *field)
{
  ApFrame f;
  ApIssues is;

  g_assert_cmpint (parse_body (body, &f, &is), ==, AP_FRAME);
  assert_issue (&is, 7, field);
  g_assert_cmpint (f.n_people, ==, 1);
  g_assert_cmpfloat (f.people[0].body[point].c, ==, 0);
  /* The other points survive. */
  g_assert_cmpfloat (f.people[0].body[(point + 1) % AP_BODY_N].c, >, 0.5);
}

static char *
body_with (int number, const char *text)
{
  GString *s = g_string_new ("[");
  for (int i = 0; i < AP_BODY_N * 3; i++) {
    if (i)
      g_string_append_c (s, ',');
    if (i == number)
      g_string_append (s, text);
    else
      g_string_append (s, i % 3 == 2 ? "0.9" : "12.5");
  }
  g_string_append_c (s, ']');
  return g_string_free (s, FALSE);
}

static void
test_bad_numbers (void)
{
  struct {
    int number;
    const char *text;
  } cases[] = {
    {3, "1e999"},               /* overflows to inf */
    {4, "-1e999"},
    {6, "\"NaN\""},             /* JSON has no NaN: a string */
    {7, "\"Infinity\""},
    {9, "1e7"},                 /* huge */
    {11, "-0.5"},               /* negative confidence */
    {12, "null"},
    {13, "true"},
    {14, "[1]"},
    {15, "{}"},
    {16, "123456789012345678901234567890"},
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    char *body = body_with (cases[i].number, cases[i].text);
    char field[64];
    g_snprintf (field, sizeof (field), "people[0].pose_keypoints_2d[%d]",
        cases[i].number);
    assert_point_missing (body, cases[i].number / 3, field);
    g_free (body);
  }
}

static void
test_bad_parts (void)
{
  ApFrame f;
  ApIssues is;
  const char *line;

  /* Wrong type of array. */
  g_assert_cmpint (parse_body ("\"abc\"", &f, &is), ==, AP_FRAME);
  assert_issue (&is, 7, "people[0].pose_keypoints_2d");
  g_assert_cmpint (f.n_people, ==, 0);
  /* Wrong length. */
  g_assert_cmpint (parse_body ("[1,2,3,4,5,6]", &f, &is), ==, AP_FRAME);
  assert_issue (&is, 7, "people[0].pose_keypoints_2d");
  g_assert_cmpint (f.n_people, ==, 0);
  /* Wrong face / hand lengths: only those parts go. */
  line = "{\"canvas_width\":10,\"canvas_height\":10,\"people\":[{"
      "\"pose_keypoints_2d\":[],\"face_keypoints_2d\":[1,2,3],"
      "\"hand_left_keypoints_2d\":[1,2,3,4,5,6],"
      "\"hand_right_keypoints_2d\":7}]}";
  g_assert_cmpint (ap_frame_from_json (line, strlen (line), 2, &f, &is), ==,
      AP_FRAME);
  assert_issue (&is, 2, "people[0].face_keypoints_2d");
  assert_issue (&is, 2, "people[0].hand_left_keypoints_2d");
  assert_issue (&is, 2, "people[0].hand_right_keypoints_2d");
  g_assert_cmpint (f.n_people, ==, 0);
  /* Missing body array: reported; face and hands alone are fine. */
  line = "{\"canvas_width\":10,\"canvas_height\":10,\"people\":[{"
      "\"hand_left_keypoints_2d\":[1,2,3,4,5,6,1,2,3,4,5,6,1,2,3,4,5,6,1,2,3,"
      "4,5,6,1,2,3,4,5,6,1,2,3,4,5,6,1,2,3,4,5,6,1,2,3,4,5,6,1,2,3,4,5,6,1,2,"
      "3,4,5,6,1,2,3]}, 5, {}]}";
  g_assert_cmpint (ap_frame_from_json (line, strlen (line), 4, &f, &is), ==,
      AP_FRAME);
  assert_issue (&is, 4, "people[0].pose_keypoints_2d");
  assert_issue (&is, 4, "people[1]");
  assert_issue (&is, 4, "people[2].pose_keypoints_2d");
  g_assert_cmpint (f.n_people, ==, 1);
  g_assert_cmpuint (f.people[0].parts, ==, AP_PART_HAND_LEFT);
}

static void
test_bad_frames (void)
{
  struct {
    const char *text;
    const char *field;
  } cases[] = {
    {"{\"people\": [}", ""},    /* malformed */
    {"{\"canvas_width\":5}", "people"}, /* missing people */
    {"{\"people\":{}}", "people"},      /* wrong type */
    {"{\"people\":null}", "people"},
    {"[{\"people\":[]}]", ""},  /* not an object */
    {"{\"people\":[],\"x\":\"\xff\xfe\"}", ""}, /* not UTF-8 */
    {"", ""},
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    ApFrame f;
    ApIssues is;
    g_assert_cmpint (ap_frame_from_json (cases[i].text, strlen (cases[i].text),
            9, &f, &is), ==, AP_DROPPED);
    assert_issue (&is, 9, cases[i].field);
  }
}

/* ---- Streams ------------------------------------------------------------- */

typedef struct {
  ApParseResult res;
  long line;
  int n_people;
  float x;                      /* first person's neck x, or -1 */
  int canvas_width;
  int has_time;
  int n_issues;
  char field[64];
} Event;

/* Drains the parser into events. */
static void
drain (ApParser * p, GArray * events)
{
  ApFrame f;
  ApIssues is;
  ApParseResult res;

  while ((res = ap_parser_next (p, &f, &is)) != AP_NEED_DATA) {
    Event e = { res, is.n ? is.items[0].line : 0, 0, -1, 0, 0, is.n_total,
      ""
    };
    if (is.n)
      g_strlcpy (e.field, is.items[0].field, sizeof (e.field));
    if (res == AP_FRAME) {
      e.n_people = f.n_people;
      e.x = f.n_people ? f.people[0].body[1].x : -1;
      e.canvas_width = f.canvas_width;
      e.has_time = f.has_time;
    }
    g_array_append_val (events, e);
  }
}

static GArray *
parse_in_pieces (const char *data, size_t len, size_t max, size_t split,
    size_t step)
{
  GArray *events = g_array_new (FALSE, TRUE, sizeof (Event));
  ApParser *p = ap_parser_new (max);

  if (step == 0) {
    ap_parser_push (p, data, split);
    drain (p, events);
    ap_parser_push (p, data + split, len - split);
    drain (p, events);
  } else {
    for (size_t i = 0; i < len; i += step) {
      ap_parser_push (p, data + i, MIN (step, len - i));
      drain (p, events);
    }
  }
  ap_parser_finish (p);
  drain (p, events);
  ap_parser_free (p);
  return events;
}

static void
assert_same_events (GArray * a, GArray * b, size_t split)
{
  if (a->len != b->len)
    g_error ("split at %zu: %u results, not %u", split, b->len, a->len);
  for (guint i = 0; i < a->len; i++) {
    Event *x = &g_array_index (a, Event, i), *y = &g_array_index (b, Event, i);
    if (x->res != y->res || x->line != y->line || x->n_people != y->n_people
        || x->x != y->x || x->canvas_width != y->canvas_width
        || x->n_issues != y->n_issues || strcmp (x->field, y->field) != 0)
      g_error ("split at %zu: result %u differs", split, i);
  }
}

static char *
read_data (const char *name, gsize * len)
{
  char *path = g_build_filename (g_getenv ("AVATAR_SOURCE_DIR") ?
      g_getenv ("AVATAR_SOURCE_DIR") : SOURCE_DIR, "tests", "pose", "data",
      name, NULL);
  char *text = NULL;
  GError *error = NULL;

  if (!g_file_get_contents (path, &text, len, &error))
    g_error ("%s", error->message);
  g_free (path);
  return text;
}

/* A JSON Lines part, a pretty-printed part, objects back to back, stray
 * text, a truncated record, a time field, binary bytes, an object with
 * braces and quotes inside strings. */
static const char mixed_stream[] =
    "{\"canvas_width\":640,\"canvas_height\":480,\"people\":[{"
    "\"pose_keypoints_2d\":[1,1,1,2,2,1,3,3,1,4,4,1,5,5,1,6,6,1,7,7,1,8,8,1,"
    "9,9,1,10,10,1,11,11,1,12,12,1,13,13,1,14,14,1,15,15,1,16,16,1,17,17,1,"
    "18,18,1]}]}\n"
    "this line is not JSON\n"
    "{\"people\":[{\"pose_keypoints_2d\":[1,2\n"
    "{\n  \"version\": 1.3,\n  \"note\": \"a } and a \\\" and a {\",\n"
    "  \"people\": [\n    {\n      \"pose_keypoints_2d\": [],\n"
    "      \"hand_left_keypoints_2d\": []\n    }\n  ],\n  \"time\": 0.25\n}\n"
    "{\"people\":[]}{\"people\":[]}  \r\n"
    "\x01\x02\xff{\"people\":[]}\n"
    "]]]\n"
    "{\"people\":[{\"pose_keypoints_2d\":[0,0,0,7,8,0.5,0,0,0,0,0,0,0,0,0,0,0,"
    "0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,"
    "0]}]}\n"
    "{\"people\":[";

static void
test_stream_mixed (void)
{
  size_t len = sizeof (mixed_stream) - 1;
  GArray *ref = parse_in_pieces (mixed_stream, len, 0, len, 0);
  const struct {
    ApParseResult res;
    long line;
    const char *field;
  } expect[] = {
    {AP_FRAME, 0, ""},
    {AP_DROPPED, 2, ""},        /* stray text */
    {AP_DROPPED, 3, ""},        /* truncated record */
    {AP_FRAME, 4, "canvas_width"},      /* pretty, lines 4..14; no canvas */
    {AP_FRAME, 0, ""},
    {AP_FRAME, 0, ""},
    {AP_DROPPED, 16, ""},       /* binary bytes */
    {AP_FRAME, 0, ""},
    {AP_DROPPED, 17, ""},       /* "]]]" */
    {AP_FRAME, 0, ""},
    {AP_DROPPED, 19, ""},       /* cut off by the end of the stream */
  };

  g_assert_cmpuint (ref->len, ==, G_N_ELEMENTS (expect));
  for (guint i = 0; i < ref->len; i++) {
    Event *e = &g_array_index (ref, Event, i);
    g_assert_cmpint (e->res, ==, expect[i].res);
    g_assert_cmpint (e->line, ==, expect[i].line);
    g_assert_cmpstr (e->field, ==, expect[i].field);
  }
  g_assert_cmpfloat (g_array_index (ref, Event, 0).x, ==, 2);
  g_assert_cmpint (g_array_index (ref, Event, 0).canvas_width, ==, 640);
  g_assert_true (g_array_index (ref, Event, 3).has_time);
  /* The canvas of line 1 carries on to the frames without one. */
  g_assert_cmpint (g_array_index (ref, Event, 3).canvas_width, ==, 640);
  g_assert_cmpfloat (g_array_index (ref, Event, 9).x, ==, 7);

  /* Every split position, then byte by byte and in 7-byte pieces. */
  for (size_t split = 0; split <= len; split++) {
    GArray *got = parse_in_pieces (mixed_stream, len, 0, split, 0);
    assert_same_events (ref, got, split);
    g_array_unref (got);
  }
  for (size_t step = 1; step <= 7; step += 6) {
    GArray *got = parse_in_pieces (mixed_stream, len, 0, 0, step);
    assert_same_events (ref, got, step);
    g_array_unref (got);
  }
  g_array_unref (ref);
}

static void
test_stream_pretty_file (void)
{
  gsize len;
  char *text = read_data ("pretty.json", &len);
  GArray *ref = parse_in_pieces (text, len, 0, len, 0);

  /* Three pretty-printed frames as a pose editor saves them. */
  g_assert_cmpuint (ref->len, ==, 3);
  for (guint i = 0; i < ref->len; i++) {
    Event *e = &g_array_index (ref, Event, i);
    g_assert_cmpint (e->res, ==, AP_FRAME);
    g_assert_cmpint (e->n_issues, ==, 0);
    g_assert_cmpint (e->n_people, ==, i == 1 ? 2 : 1);
    g_assert_cmpint (e->canvas_width, ==, 512);
  }
  for (size_t split = 0; split <= len; split++) {
    GArray *got = parse_in_pieces (text, len, 0, split, 0);
    assert_same_events (ref, got, split);
    g_array_unref (got);
  }
  g_array_unref (ref);
  g_free (text);
}

static void
test_stream_long_object (void)
{
  /* A megabyte line between two good ones, with a 64 KiB limit. */
  GString *s = g_string_new ("{\"people\":[]}\n{\"people\":[],\"pad\":\"");
  GArray *ev;

  for (int i = 0; i < 1024 * 1024; i++)
    g_string_append_c (s, 'a' + i % 26);
  g_string_append (s, "\"}\n{\"people\":[]}\n");
  ev = parse_in_pieces (s->str, s->len, 65536, 0, 4096);
  g_assert_cmpuint (ev->len, ==, 3);
  g_assert_cmpint (g_array_index (ev, Event, 0).res, ==, AP_FRAME);
  g_assert_cmpint (g_array_index (ev, Event, 1).res, ==, AP_DROPPED);
  g_assert_cmpint (g_array_index (ev, Event, 1).line, ==, 2);
  g_assert_cmpint (g_array_index (ev, Event, 2).res, ==, AP_FRAME);
  g_array_unref (ev);

  /* An object that never closes (and holds no newline) is reported once,
   * as soon as it is too long, and the parser keeps no more of it. */
  g_string_assign (s, "{\"people\":[");
  for (int i = 0; i < 200000; i++)
    g_string_append (s, "{[");
  ev = parse_in_pieces (s->str, s->len, 65536, 0, 1000);
  g_assert_cmpuint (ev->len, ==, 1);
  g_assert_cmpint (g_array_index (ev, Event, 0).res, ==, AP_DROPPED);
  g_array_unref (ev);

  /* Deep nesting within the size limit. */
  g_string_assign (s, "{\"people\":[],\"x\":");
  for (int i = 0; i < 100; i++)
    g_string_append_c (s, '[');
  for (int i = 0; i < 100; i++)
    g_string_append_c (s, ']');
  g_string_append (s, "}\n{\"people\":[]}\n");
  ev = parse_in_pieces (s->str, s->len, 0, s->len, 0);
  g_assert_cmpuint (ev->len, ==, 2);
  g_assert_cmpint (g_array_index (ev, Event, 0).res, ==, AP_DROPPED);
  g_assert_cmpint (g_array_index (ev, Event, 1).res, ==, AP_FRAME);
  g_array_unref (ev);
  g_string_free (s, TRUE);
}

static void
test_stream_bom (void)
{
  const char text[] = "\xef\xbb\xbf{\"people\":[]}\n\xef\xbb\xbf\n";
  GArray *ev = parse_in_pieces (text, sizeof (text) - 1, 0, 0, 1);

  /* A leading byte order mark is skipped silently; a later one is not. */
  g_assert_cmpuint (ev->len, ==, 2);
  g_assert_cmpint (g_array_index (ev, Event, 0).res, ==, AP_FRAME);
  g_assert_cmpint (g_array_index (ev, Event, 0).n_issues, ==, 1);  /* canvas */
  g_assert_cmpint (g_array_index (ev, Event, 1).res, ==, AP_DROPPED);
  g_assert_cmpint (g_array_index (ev, Event, 1).line, ==, 2);
  g_array_unref (ev);
}

static void
test_stream_garbage (void)
{
  /* Random bytes must never crash or hang; a good line after them (at the
   * start of a line) is always found. */
  GRand *rand = g_rand_new_with_seed (42);
  for (int round = 0; round < 50; round++) {
    GString *s = g_string_new ("");
    GArray *ev;
    Event *last;
    int n = g_rand_int_range (rand, 1, 5000);
    for (int i = 0; i < n; i++)
      g_string_append_c (s, (char) g_rand_int_range (rand, 0, 256));
    g_string_append (s, "\n{\"people\":[],\"canvas_width\":77,"
        "\"canvas_height\":9}\n");
    ev = parse_in_pieces (s->str, s->len, 4096, 0, 333);
    g_assert_cmpuint (ev->len, >=, 1);
    last = &g_array_index (ev, Event, ev->len - 1);
    g_assert_cmpint (last->res, ==, AP_FRAME);
    g_assert_cmpint (last->canvas_width, ==, 77);
    g_array_unref (ev);
    g_string_free (s, TRUE);
  }
  g_rand_free (rand);
}

static void
test_datagrams (void)
{
  ApParser *p = ap_parser_new (1000);
  char big[2000];
  ApFrame f;
  ApIssues is;
  const char *good = "{\"canvas_width\":320,\"canvas_height\":240,"
      "\"people\":[]}\n";

  memset (big, ' ', sizeof (big));
  big[0] = '{';
  big[sizeof (big) - 1] = '}';
  ap_parser_push_datagram (p, good, strlen (good));
  ap_parser_push_datagram (p, "{\"people\":[]} {\"people\":[]}", 28);
  ap_parser_push_datagram (p, "{\"people\":[", 11);
  ap_parser_push_datagram (p, big, sizeof (big));
  ap_parser_push_datagram (p, "\xde\xad\xbe\xef", 4);
  ap_parser_push_datagram (p, good, strlen (good));

  g_assert_cmpint (ap_parser_next (p, &f, &is), ==, AP_FRAME);
  g_assert_cmpint (f.canvas_width, ==, 320);
  for (int d = 2; d <= 5; d++) {
    g_assert_cmpint (ap_parser_next (p, &f, &is), ==, AP_DROPPED);
    g_assert_cmpint (is.items[0].line, ==, d);
    g_assert_true (is.items[0].datagram);
  }
  g_assert_cmpint (ap_parser_next (p, &f, &is), ==, AP_FRAME);
  g_assert_cmpint (ap_parser_next (p, &f, &is), ==, AP_NEED_DATA);

  {
    char buf[256];
    ap_issues_clear (&is);
    ap_issues_add (&is, 4, 1, "people", "is null");
    ap_issue_format (&is.items[0], buf, sizeof (buf));
    g_assert_cmpstr (buf, ==, "datagram 4, people: is null");
  }
  /* an empty datagram is dropped with a reason (json-glib would refuse its
   * NULL data with a critical) */
  ap_parser_push_datagram (p, "", 0);
  g_assert_cmpint (ap_parser_next (p, &f, &is), ==, AP_DROPPED);
  g_assert_nonnull (strstr (is.items[0].message, "empty"));
  g_assert_cmpint (ap_frame_from_json (NULL, 0, 9, &f, &is), ==, AP_DROPPED);
  g_assert_cmpint (is.items[0].line, ==, 9);
  /* reset: numbering starts again. */
  ap_parser_reset (p);
  ap_parser_push_datagram (p, "x", 1);
  g_assert_cmpint (ap_parser_next (p, &f, &is), ==, AP_DROPPED);
  g_assert_cmpint (is.items[0].line, ==, 1);
  ap_parser_free (p);
}

/* ---- Writing ------------------------------------------------------------- */

static void
assert_frames_equal (const ApFrame * a, const ApFrame * b)
{
  g_assert_cmpint (a->canvas_width, ==, b->canvas_width);
  g_assert_cmpint (a->canvas_height, ==, b->canvas_height);
  g_assert_cmpint (a->has_time, ==, b->has_time);
  if (a->has_time)
    g_assert_cmpfloat (a->time_s, ==, b->time_s);
  g_assert_cmpint (a->n_people, ==, b->n_people);
  for (int i = 0; i < a->n_people; i++) {
    const ApPerson *p = &a->people[i], *q = &b->people[i];
    g_assert_cmpuint (p->parts, ==, q->parts);
    g_assert_cmpint (p->n_face, ==, q->n_face);
    g_assert_cmpmem (p->body, sizeof (p->body), q->body, sizeof (q->body));
    if (p->parts & AP_PART_FEET)
      g_assert_cmpmem (p->feet, sizeof (p->feet), q->feet, sizeof (q->feet));
    g_assert_cmpmem (p->face, p->n_face * sizeof (ApPoint), q->face,
        q->n_face * sizeof (ApPoint));
    for (int h = 0; h < 2; h++)
      if (p->parts & (h ? AP_PART_HAND_RIGHT : AP_PART_HAND_LEFT))
        g_assert_cmpmem (p->hand[h], sizeof (p->hand[h]), q->hand[h],
            sizeof (q->hand[h]));
  }
}

static void
test_round_trip (void)
{
  GRand *rand = g_rand_new_with_seed (7);

  for (int round = 0; round < 200; round++) {
    ApFrame a, b;
    ApIssues is;
    char *json;

    ap_frame_init (&a);
    a.canvas_width = g_rand_int_range (rand, 1, 4000);
    a.canvas_height = g_rand_int_range (rand, 1, 4000);
    a.has_time = round % 2;
    a.time_s = a.has_time ? g_rand_double_range (rand, 0, 1000) : 0;
    a.n_people = g_rand_int_range (rand, 0, AP_MAX_PEOPLE + 1);
    for (int i = 0; i < a.n_people; i++) {
      ApPerson *p = &a.people[i];
      ApPoint *all = p->body;
      p->parts = g_rand_int_range (rand, 1, 32);
      if (!(p->parts & AP_PART_BODY))
        p->parts &= ~AP_PART_FEET;
      if (p->parts == 0)
        p->parts = AP_PART_BODY;
      p->n_face = (p->parts & AP_PART_FACE) ? (round % 3 ? 70 : 68) : 0;
      /* body, feet, face and hands are contiguous ApPoint arrays. */
      for (size_t k = 0; k < (sizeof (p->body) + sizeof (p->feet)
              + sizeof (p->face) + sizeof (p->hand)) / sizeof (ApPoint); k++) {
        all[k].x = (float) g_rand_double_range (rand, -500, 5000);
        all[k].y = (float) g_rand_double_range (rand, -500, 5000);
        all[k].c = k % 5 ? (float) g_rand_double_range (rand, 0, 1.25) : 0;
      }
      /* What the JSON does not carry reads back as zeros. */
      if (!(p->parts & AP_PART_BODY))
        memset (p->body, 0, sizeof (p->body));
      if (!(p->parts & AP_PART_FEET))
        memset (p->feet, 0, sizeof (p->feet));
      memset (p->face + p->n_face, 0, (AP_FACE_N - p->n_face)
          * sizeof (ApPoint));
      if (!(p->parts & AP_PART_HAND_LEFT))
        memset (p->hand[AP_LEFT], 0, sizeof (p->hand[0]));
      if (!(p->parts & AP_PART_HAND_RIGHT))
        memset (p->hand[AP_RIGHT], 0, sizeof (p->hand[0]));
    }
    json = ap_frame_to_json (&a);
    g_assert_null (strchr (json, '\n'));
    g_assert_cmpint (ap_frame_from_json (json, strlen (json), 1, &b, &is), ==,
        AP_FRAME);
    g_assert_cmpint (is.n_total, ==, 0);
    assert_frames_equal (&a, &b);
    g_free (json);
  }
  g_rand_free (rand);
}

static void
test_map_to (void)
{
  ApFrame f;

  ap_frame_init (&f);
  f.canvas_width = 200;
  f.canvas_height = 100;
  f.n_people = 1;
  f.people[0].body[0] = (ApPoint) {
  100, 50, 1};
  f.people[0].hand[AP_RIGHT][20] = (ApPoint) {
  200, 0, 1};
  ap_frame_map_to (&f, 400, 400, 0);
  g_assert_cmpint (f.canvas_width, ==, 400);
  g_assert_cmpfloat (f.people[0].body[0].x, ==, 200);
  g_assert_cmpfloat (f.people[0].body[0].y, ==, 200);
  g_assert_cmpfloat (f.people[0].hand[AP_RIGHT][20].x, ==, 400);

  f.canvas_width = 200;
  f.canvas_height = 100;
  f.people[0].body[0] = (ApPoint) {
  100, 50, 1};
  f.people[0].hand[AP_RIGHT][20] = (ApPoint) {
  200, 0, 1};
  ap_frame_map_to (&f, 400, 400, 1);
  /* Scale 2, the 200-px canvas height centred: 100 px bands. */
  g_assert_cmpfloat (f.people[0].body[0].x, ==, 200);
  g_assert_cmpfloat (f.people[0].body[0].y, ==, 200);
  g_assert_cmpfloat (f.people[0].hand[AP_RIGHT][20].x, ==, 400);
  g_assert_cmpfloat (f.people[0].hand[AP_RIGHT][20].y, ==, 100);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/pose/json/coco18", test_coco18);
  g_test_add_func ("/pose/json/body25", test_body25);
  g_test_add_func ("/pose/json/face-hands", test_face_hands);
  g_test_add_func ("/pose/json/many-people", test_many_people);
  g_test_add_func ("/pose/json/canvas-time", test_canvas_and_time);
  g_test_add_func ("/pose/json/bad-numbers", test_bad_numbers);
  g_test_add_func ("/pose/json/bad-parts", test_bad_parts);
  g_test_add_func ("/pose/json/bad-frames", test_bad_frames);
  g_test_add_func ("/pose/stream/mixed-every-split", test_stream_mixed);
  g_test_add_func ("/pose/stream/pretty-file", test_stream_pretty_file);
  g_test_add_func ("/pose/stream/long-object", test_stream_long_object);
  g_test_add_func ("/pose/stream/garbage", test_stream_garbage);
  g_test_add_func ("/pose/stream/bom", test_stream_bom);
  g_test_add_func ("/pose/datagram", test_datagrams);
  g_test_add_func ("/pose/select", test_select);
  g_test_add_func ("/pose/write/round-trip", test_round_trip);
  g_test_add_func ("/pose/map-to", test_map_to);
  return g_test_run ();
}
