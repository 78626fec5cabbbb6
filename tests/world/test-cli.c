/* avatar-world command line: the files `render` and `dataset` promise in
 * docs/world.md, with their sizes, counts and JSON contents. The tool's
 * path is the first argument. */
#include "avatar-world.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <string.h>

static const char *tool;
static char *tmp;

static int
run (const char *args, char **err_out)
{
  char *cmd = g_strdup_printf ("%s %s", tool, args), *out = NULL, *err = NULL;
  char **argv = NULL;
  int status = -1;
  GError *e = NULL;

  g_assert_true (g_shell_parse_argv (cmd, NULL, &argv, NULL));
  g_assert_true (g_spawn_sync (NULL, argv, NULL, G_SPAWN_DEFAULT, NULL, NULL,
          &out, &err, &status, &e));
  g_strfreev (argv);
  g_free (cmd);
  g_free (out);
  if (err_out)
    *err_out = err;
  else
    g_free (err);
  return g_spawn_check_wait_status (status, NULL) ? 0 : 1;
}

/* Width, height and colour type from a PNG's IHDR. */
static void
check_png (const char *path, int w, int h, int color_type)
{
  char *data = NULL;
  gsize len = 0;
  const guint8 *d;

  g_assert_true (g_file_get_contents (path, &data, &len, NULL));
  g_assert_cmpuint (len, >, 33);
  d = (const guint8 *) data;
  g_assert_cmpint (memcmp (d, "\x89PNG\r\n\x1a\n", 8), ==, 0);
  g_assert_cmpint (memcmp (d + 12, "IHDR", 4), ==, 0);
  g_assert_cmpint ((d[16] << 24) | (d[17] << 16) | (d[18] << 8) | d[19], ==,
      w);
  g_assert_cmpint ((d[20] << 24) | (d[21] << 16) | (d[22] << 8) | d[23], ==,
      h);
  g_assert_cmpint (d[24], ==, 8);
  g_assert_cmpint (d[25], ==, color_type);
  g_free (data);
}

static char **
read_lines (const char *path, int *n)
{
  char *text = NULL, **lines;
  g_assert_true (g_file_get_contents (path, &text, NULL, NULL));
  g_assert_true (g_str_has_suffix (text, "\n"));
  text[strlen (text) - 1] = '\0';
  lines = g_strsplit (text, "\n", -1);
  *n = (int) g_strv_length (lines);
  g_free (text);
  return lines;
}

static void
check_pose_line (const char *line, int w, int h)
{
  ApFrame f;
  ApIssues is;
  ap_issues_clear (&is);
  g_assert_cmpint (ap_frame_from_json (line, strlen (line), 1, &f, &is), ==,
      AP_FRAME);
  g_assert_cmpint (is.n_total, ==, 0);
  g_assert_cmpint (f.canvas_width, ==, w);
  g_assert_cmpint (f.canvas_height, ==, h);
  g_assert_cmpint (f.n_people, ==, 1);
  g_assert_cmpint (f.people[0].n_face, ==, AP_FACE_N);
  g_assert_true (f.people[0].body[AP_NECK].c > 0.0f);
}

/* The render layout in dir: n frames of w x h. */
static void
check_render_dir (const char *dir, int n, int w, int h)
{
  char **lines;
  int nl;
  char *p;

  for (int i = 0; i <= n; i++) {
    char name[16], *f, *a;
    g_snprintf (name, sizeof (name), "%05d.png", i);
    f = g_build_filename (dir, "frames", name, NULL);
    a = g_build_filename (dir, "alpha", name, NULL);
    if (i < n) {
      check_png (f, w, h, 2);
      check_png (a, w, h, 0);
    } else {
      g_assert_false (g_file_test (f, G_FILE_TEST_EXISTS));
    }
    g_free (f);
    g_free (a);
  }
  p = g_build_filename (dir, "poses.jsonl", NULL);
  lines = read_lines (p, &nl);
  g_assert_cmpint (nl, ==, n);
  for (int i = 0; i < nl; i++)
    check_pose_line (lines[i], w, h);
  g_strfreev (lines);
  g_free (p);
  p = g_build_filename (dir, "reference.png", NULL);
  check_png (p, w, h, 2);
  g_free (p);
  p = g_build_filename (dir, "reference.json", NULL);
  lines = read_lines (p, &nl);
  g_assert_cmpint (nl, ==, 1);
  check_pose_line (lines[0], w, h);
  g_strfreev (lines);
  g_free (p);
}

static void
test_render (void)
{
  char *dir = g_build_filename (tmp, "r1", NULL), *dir2, *args, *a, *b;
  char *da = NULL, *db = NULL;
  gsize la, lb;

  args = g_strdup_printf ("render --identity 3 --motion 4 --frames 5 --size "
      "96x64 --out %s", dir);
  g_assert_cmpint (run (args, NULL), ==, 0);
  g_free (args);
  check_render_dir (dir, 5, 96, 64);
  /* the same seeds write the same bytes */
  dir2 = g_build_filename (tmp, "r2", NULL);
  args = g_strdup_printf ("render --identity 3 --motion 4 --frames 5 --size "
      "96x64 --out %s", dir2);
  g_assert_cmpint (run (args, NULL), ==, 0);
  g_free (args);
  a = g_build_filename (dir, "frames", "00004.png", NULL);
  b = g_build_filename (dir2, "frames", "00004.png", NULL);
  g_assert_true (g_file_get_contents (a, &da, &la, NULL));
  g_assert_true (g_file_get_contents (b, &db, &lb, NULL));
  g_assert_cmpuint (la, ==, lb);
  g_assert_cmpint (memcmp (da, db, la), ==, 0);
  g_free (da);
  g_free (db);
  g_free (a);
  g_free (b);
  g_free (dir);
  g_free (dir2);
}

static void
test_bad_arguments (void)
{
  char *err = NULL;
  g_assert_cmpint (run ("render --identity 3 --motion 4 --frames 5", &err),
      !=, 0);
  g_assert_nonnull (strstr (err, "--size"));
  g_free (err);
  g_assert_cmpint (run ("render --identity x --motion 4 --frames 5 --size "
          "64x64 --out /tmp/x", &err), !=, 0);
  g_assert_nonnull (strstr (err, "--identity"));
  g_free (err);
  g_assert_cmpint (run ("dataset --split test --clips 1 --frames 1 --size "
          "64x64 --out /tmp/x", &err), !=, 0);
  g_assert_nonnull (strstr (err, "--split"));
  g_free (err);
  g_assert_cmpint (run ("fly", NULL), !=, 0);
}

static JsonObject *
parse_object (JsonParser * parser, const char *text)
{
  JsonNode *root;
  g_assert_true (json_parser_load_from_data (parser, text, -1, NULL));
  root = json_parser_get_root (parser);
  g_assert_true (JSON_NODE_HOLDS_OBJECT (root));
  return json_node_get_object (root);
}

static void
check_box (JsonObject * o, const char *key, int w, int h, int nullable)
{
  JsonNode *n = json_object_get_member (o, key);
  JsonArray *a;
  g_assert_nonnull (n);
  if (JSON_NODE_HOLDS_NULL (n)) {
    g_assert_true (nullable);
    return;
  }
  a = json_node_get_array (n);
  g_assert_cmpuint (json_array_get_length (a), ==, 4);
  g_assert_cmpfloat (json_array_get_double_element (a, 0), >=, 0.0);
  g_assert_cmpfloat (json_array_get_double_element (a, 1), >=, 0.0);
  g_assert_cmpfloat (json_array_get_double_element (a, 2), <=, w - 1.0);
  g_assert_cmpfloat (json_array_get_double_element (a, 3), <=, h - 1.0);
  g_assert_cmpfloat (json_array_get_double_element (a, 0), <,
      json_array_get_double_element (a, 2));
}

static void
check_clip (const char *out, int k, int heldout, int frames, int w, int h)
{
  char name[32], *dir, *p, *text = NULL, **lines;
  JsonParser *parser = json_parser_new ();
  JsonObject *o;
  uint32_t ids, ms;
  int nl;

  g_snprintf (name, sizeof (name), "clip_%05d", k);
  dir = g_build_filename (out, name, NULL);
  check_render_dir (dir, frames, w, h);
  for (int i = 0; i < frames; i++) {
    char f[16];
    g_snprintf (f, sizeof (f), "%05d.png", i);
    p = g_build_filename (dir, "pose", f, NULL);
    check_png (p, w, h, 2);
    g_free (p);
  }
  aw_split_seeds (heldout, (uint32_t) k, &ids, &ms);
  p = g_build_filename (dir, "clip.json", NULL);
  g_assert_true (g_file_get_contents (p, &text, NULL, NULL));
  o = parse_object (parser, text);
  g_assert_cmpint (json_object_get_int_member (o, "identity"), ==, ids);
  g_assert_cmpint (json_object_get_int_member (o, "motion"), ==, ms);
  g_assert_cmpint (json_object_get_int_member (o, "fps"), ==, 25);
  g_assert_cmpint (json_object_get_int_member (o, "frames"), ==, frames);
  g_assert_cmpint (json_object_get_int_member (o, "width"), ==, w);
  g_assert_cmpint (json_object_get_int_member (o, "height"), ==, h);
  if (heldout) {
    g_assert_cmpint (ids, ==, 1000000 + k);
    g_assert_cmpint (ms, ==, 2000000 + k);
  }
  g_free (text);
  g_free (p);
  p = g_build_filename (dir, "boxes.jsonl", NULL);
  lines = read_lines (p, &nl);
  g_assert_cmpint (nl, ==, frames);
  for (int i = 0; i < nl; i++) {
    o = parse_object (parser, lines[i]);
    check_box (o, "face", w, h, 0);
    check_box (o, "hand_left", w, h, 1);
    check_box (o, "hand_right", w, h, 1);
  }
  g_strfreev (lines);
  g_free (p);
  g_free (dir);
  g_object_unref (parser);
}

static void
test_dataset (void)
{
  char *out = g_build_filename (tmp, "ds", NULL), *args, *err = NULL;
  int rc;

  args = g_strdup_printf ("dataset --split train --clips 2 --first-clip 3 "
      "--frames 3 --size 80x64 --out %s", out);
  rc = run (args, &err);
  g_free (args);
  if (rc != 0 && strstr (err, "no pose drawing")) {
    g_test_skip ("this build has no pose/draw.c (ap_draw)");
    g_free (err);
    g_free (out);
    return;
  }
  g_assert_cmpint (rc, ==, 0);
  g_free (err);
  check_clip (out, 3, 0, 3, 80, 64);
  check_clip (out, 4, 0, 3, 80, 64);
  {
    char *c2 = g_build_filename (out, "clip_00005", NULL);
    g_assert_false (g_file_test (c2, G_FILE_TEST_EXISTS));
    g_free (c2);
  }
  g_free (out);
  out = g_build_filename (tmp, "ho", NULL);
  args = g_strdup_printf ("dataset --split heldout --clips 1 --first-clip 5 "
      "--frames 2 --size 64x64 --out %s", out);
  g_assert_cmpint (run (args, NULL), ==, 0);
  g_free (args);
  check_clip (out, 5, 1, 2, 64, 64);
  g_free (out);
}

static void
remove_tree (const char *path)
{
  GDir *d = g_dir_open (path, 0, NULL);
  const char *name;
  if (d) {
    while ((name = g_dir_read_name (d))) {
      char *p = g_build_filename (path, name, NULL);
      remove_tree (p);
      g_free (p);
    }
    g_dir_close (d);
  }
  g_remove (path);
}

int
main (int argc, char **argv)
{
  int rc;

  g_test_init (&argc, &argv, NULL);
  if (argc < 2) {
    g_printerr ("usage: test-cli PATH-TO-avatar-world\n");
    return 1;
  }
  tool = argv[1];
  tmp = g_dir_make_tmp ("avatar-world-cli-XXXXXX", NULL);
  g_assert_nonnull (tmp);
  g_test_add_func ("/world/cli/render", test_render);
  g_test_add_func ("/world/cli/bad-arguments", test_bad_arguments);
  g_test_add_func ("/world/cli/dataset", test_dataset);
  rc = g_test_run ();
  remove_tree (tmp);
  g_free (tmp);
  return rc;
}
