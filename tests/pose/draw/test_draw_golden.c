/* Draws every case of golden/pose in both styles and compares it with the
 * reference PNGs, using the "strict" thresholds of tolerance.json.
 * Skips (77) when AVATAR_SHARED_DIR is absent. DRAW_DUMP_DIR, when set,
 * receives the drawn images. */
#include "avatar-pose.h"
#include "draw-compare.h"

#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>

typedef struct
{
  const char *mode;             /* the key in manifest and tolerance.json */
  const char *suffix;
  ApStyle style;
} StyleCase;

static const StyleCase styles[] = {
  {"dwpose", "dwpose", AP_STYLE_DWPOSE},
  {"mimicmotion", "mimicmotion", AP_STYLE_MIMICMOTION},
};

static JsonNode *
load_json (const char *path)
{
  JsonParser *parser = json_parser_new ();
  GError *error = NULL;
  JsonNode *root = NULL;

  if (json_parser_load_from_file (parser, path, &error))
    root = json_node_copy (json_parser_get_root (parser));
  else {
    printf ("FAIL %s: %s\n", path, error->message);
    g_error_free (error);
  }
  g_object_unref (parser);
  return root;
}

static int
read_frame (const char *path, ApFrame * frame)
{
  gchar *text = NULL;
  gsize len = 0;
  ApIssues issues;
  ApParseResult r;

  if (!g_file_get_contents (path, &text, &len, NULL)) {
    printf ("FAIL %s: cannot read\n", path);
    return -1;
  }
  ap_issues_clear (&issues);
  r = ap_frame_from_json (text, len, 1, frame, &issues);
  g_free (text);
  if (r != AP_FRAME) {
    char msg[256] = "";
    if (issues.n > 0)
      ap_issue_format (&issues.items[0], msg, sizeof (msg));
    printf ("FAIL %s: not parsed: %s\n", path, msg);
    return -1;
  }
  return 0;
}

/* Draws one case in one style; returns 0 when within the thresholds. */
static int
check_case (const char *dir, const char *name, const StyleCase * sc,
    JsonObject * limits, const ApFrame * frame, int width, int height)
{
  gchar *png = g_strdup_printf ("%s/%s.%s.png", dir, name, sc->suffix);
  char *error = NULL;
  int gw, gh, failed = 0;
  uint8_t *golden = draw_read_png (png, &gw, &gh, &error);
  uint8_t *drawn;
  DrawMetrics m;
  const char *dump = g_getenv ("DRAW_DUMP_DIR");

  if (golden == NULL) {
    printf ("FAIL %s\n", error);
    g_free (error);
    g_free (png);
    return 1;
  }
  if (gw != width || gh != height) {
    printf ("FAIL %s: golden is %dx%d, manifest says %dx%d\n", png, gw, gh,
        width, height);
    g_free (golden);
    g_free (png);
    return 1;
  }
  drawn = g_malloc ((size_t) width * height * 3);
  if (ap_draw (frame, sc->style, 0, drawn, width, height, width * 3) != 0) {
    printf ("FAIL %s: ap_draw failed\n", name);
    failed = 1;
  } else {
    draw_compare (drawn, golden, width, height, &m);
    failed = m.frac_gt32 > json_object_get_double_member (limits, "frac_gt32")
        || m.mae > json_object_get_double_member (limits, "mae")
        || m.nbr_unexplained > json_object_get_double_member (limits,
        "nbr_unexplained");
    printf ("%s %-32s %-11s frac_gt32 %.6f mae %.4f nbr_unexplained %.6f"
        " (%ld pixels differ)\n", failed ? "FAIL" : "ok  ", name, sc->mode,
        m.frac_gt32, m.mae, m.nbr_unexplained, m.n_different);
  }
  if (dump != NULL) {
    gchar *out = g_strdup_printf ("%s/%s.%s.png", dump, name, sc->suffix);
    draw_write_png (out, drawn, width, height);
    g_free (out);
  }
  g_free (drawn);
  g_free (golden);
  g_free (png);
  return failed;
}

int
main (void)
{
  const char *shared = g_getenv ("AVATAR_SHARED_DIR");
  gchar *dir, *path;
  JsonNode *manifest, *tolerance;
  JsonArray *cases;
  JsonObject *thresholds;
  int failures = 0, checked = 0;

  if (shared == NULL || !g_file_test (shared, G_FILE_TEST_IS_DIR)) {
    printf ("SKIP: AVATAR_SHARED_DIR (%s) is missing; golden/pose needed\n",
        shared ? shared : "unset");
    return 77;
  }
  dir = g_build_filename (shared, "golden", "pose", NULL);
  path = g_build_filename (dir, "manifest.json", NULL);
  manifest = load_json (path);
  g_free (path);
  path = g_build_filename (dir, "tolerance.json", NULL);
  tolerance = load_json (path);
  g_free (path);
  if (manifest == NULL || tolerance == NULL) {
    printf ("SKIP: %s has no manifest.json/tolerance.json\n", dir);
    g_free (dir);
    return 77;
  }
  cases = json_object_get_array_member (json_node_get_object (manifest),
      "cases");
  thresholds = json_object_get_object_member (json_node_get_object
      (tolerance), "thresholds");

  for (guint i = 0; i < json_array_get_length (cases); i++) {
    JsonObject *c = json_array_get_object_element (cases, i);
    const char *name = json_object_get_string_member (c, "name");
    JsonArray *size = json_object_get_array_member (c, "output_size");
    int width = (int) json_array_get_int_element (size, 0);
    int height = (int) json_array_get_int_element (size, 1);
    ApFrame frame;

    path = g_build_filename (dir, json_object_get_string_member (c, "input"),
        NULL);
    if (read_frame (path, &frame) != 0) {
      failures++;
      g_free (path);
      continue;
    }
    g_free (path);
    for (guint s = 0; s < G_N_ELEMENTS (styles); s++) {
      JsonObject *limits =
          json_object_get_object_member (json_object_get_object_member
          (thresholds, styles[s].mode), "strict");
      failures += check_case (dir, name, &styles[s], limits, &frame, width,
          height);
      checked++;
    }
  }
  printf ("%d images checked against the strict tier, %d failed\n", checked,
      failures);
  json_node_unref (manifest);
  json_node_unref (tolerance);
  g_free (dir);
  return failures == 0 && checked > 0 ? 0 : 1;
}
