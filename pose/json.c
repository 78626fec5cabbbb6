/* avatar-pose: OpenPose JSON frames -> ApFrame, and back.
 *
 * The rules for bad input (which problems drop a frame and which only turn
 * a part or a point into "missing") are listed in docs/pose-json.md; keep
 * the two in step.
 */
#include "avatar-pose.h"

#include <glib.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* BODY_25 indices that make COCO-18 (SPEC section 2), then the feet. */
static const int body25_to_coco[AP_BODY_N] = {
  0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18
};

#define BODY25_MIDHIP 8
#define BODY25_FEET0 19

/* Where issues go while one object is read. */
typedef struct {
  ApIssues *issues;
  long line;
  int datagram;
} Ctx;

#define ISSUE(ctx, field, ...) \
  ap_issues_add ((ctx)->issues, (ctx)->line, (ctx)->datagram, field, __VA_ARGS__)

static const char *
node_kind (JsonNode * node)
{
  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    return "null";
  if (JSON_NODE_HOLDS_OBJECT (node))
    return "an object";
  if (JSON_NODE_HOLDS_ARRAY (node))
    return "an array";
  switch (json_node_get_value_type (node)) {
    case G_TYPE_STRING:
      return "a string";
    case G_TYPE_BOOLEAN:
      return "a boolean";
    default:
      return "a number";
  }
}

/* TRUE when node is a JSON number; non-finite values (1e999 overflows)
 * are returned as they are, for the caller to judge. */
static gboolean
node_number (JsonNode * node, double *out)
{
  GType type;

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node))
    return FALSE;
  type = json_node_get_value_type (node);
  if (type == G_TYPE_INT64)
    *out = (double) json_node_get_int (node);
  else if (type == G_TYPE_DOUBLE)
    *out = json_node_get_double (node);
  else
    return FALSE;
  return TRUE;
}

/* Reads n_points x,y,c triples; a bad triple becomes a missing point
 * (0,0,0) with an issue. */
static void
read_points (Ctx * ctx, JsonArray * array, const char *name, int person,
    ApPoint * out, int n_points)
{
  static const char *const coord[3] = { "x", "y", "c" };
  char field[64];

  for (int i = 0; i < n_points; i++) {
    double v[3];
    const char *problem = NULL;
    int bad = -1;

    for (int k = 0; k < 3 && problem == NULL; k++) {
      JsonNode *node = json_array_get_element (array, i * 3 + k);
      bad = i * 3 + k;
      if (!node_number (node, &v[k]))
        problem = node_kind (node);
      else if (!isfinite (v[k]))
        problem = "a non-finite number";
      else if (fabs (v[k]) > AP_MAX_COORD)
        problem = "a number too large";
      else if (k == 2 && v[k] < 0.0)
        problem = "a negative confidence";
    }
    if (problem != NULL) {
      snprintf (field, sizeof (field), "people[%d].%s[%d]", person, name, bad);
      ISSUE (ctx, field, "%s is %s: point %d treated as missing",
          coord[bad % 3], problem, i);
      out[i].x = out[i].y = out[i].c = 0.0f;
      continue;
    }
    out[i].x = (float) v[0];
    out[i].y = (float) v[1];
    out[i].c = (float) v[2];
  }
}

/* Looks up one keypoint array. Returns it when it has one of the allowed
 * lengths (in numbers), NULL when absent, empty or bad (bad: with an
 * issue). *length gets its length. */
static JsonArray *
get_part (Ctx * ctx, JsonObject * obj, const char *name, int person,
    gboolean required, int len_a, int len_b, int *length)
{
  JsonNode *node = json_object_get_member (obj, name);
  char field[64];
  JsonArray *array;
  int len;

  snprintf (field, sizeof (field), "people[%d].%s", person, name);
  if (node == NULL || JSON_NODE_HOLDS_NULL (node)) {
    if (required)
      ISSUE (ctx, field, "missing: part treated as missing");
    return NULL;
  }
  if (!JSON_NODE_HOLDS_ARRAY (node)) {
    ISSUE (ctx, field, "is %s, not an array: part treated as missing",
        node_kind (node));
    return NULL;
  }
  array = json_node_get_array (node);
  len = (int) json_array_get_length (array);
  if (len == 0)
    return NULL;
  if (len != len_a && len != len_b) {
    if (len_a == len_b)
      ISSUE (ctx, field, "has %d numbers, not %d: part treated as missing",
          len, len_a);
    else
      ISSUE (ctx, field, "has %d numbers, not %d or %d: part treated as "
          "missing", len, len_a, len_b);
    return NULL;
  }
  *length = len;
  return array;
}

static void
read_body (Ctx * ctx, JsonObject * obj, int index, ApPerson * person)
{
  ApPoint body25[25];
  JsonArray *array;
  int len = 0;

  array = get_part (ctx, obj, "pose_keypoints_2d", index, TRUE,
      AP_BODY_N * 3, 25 * 3, &len);
  if (array == NULL)
    return;
  person->parts |= AP_PART_BODY;
  if (len == AP_BODY_N * 3) {
    read_points (ctx, array, "pose_keypoints_2d", index, person->body,
        AP_BODY_N);
    return;
  }
  read_points (ctx, array, "pose_keypoints_2d", index, body25, 25);
  for (int i = 0; i < AP_BODY_N; i++)
    person->body[i] = body25[body25_to_coco[i]];
  for (int i = 0; i < AP_FEET_N; i++)
    person->feet[i] = body25[BODY25_FEET0 + i];
  person->parts |= AP_PART_FEET;
}

static void
read_person (Ctx * ctx, JsonObject * obj, int index, ApPerson * person)
{
  static const char *const hand_names[2] = {
    "hand_left_keypoints_2d", "hand_right_keypoints_2d"
  };
  static const unsigned hand_parts[2] = {
    AP_PART_HAND_LEFT, AP_PART_HAND_RIGHT
  };
  JsonArray *array;
  int len = 0;

  memset (person, 0, sizeof (*person));
  read_body (ctx, obj, index, person);

  array = get_part (ctx, obj, "face_keypoints_2d", index, FALSE, 68 * 3,
      70 * 3, &len);
  if (array != NULL) {
    person->n_face = len / 3;
    read_points (ctx, array, "face_keypoints_2d", index, person->face,
        person->n_face);
    person->parts |= AP_PART_FACE;
  }
  for (int h = 0; h < 2; h++) {
    array = get_part (ctx, obj, hand_names[h], index, FALSE, AP_HAND_N * 3,
        AP_HAND_N * 3, &len);
    if (array == NULL)
      continue;
    read_points (ctx, array, hand_names[h], index, person->hand[h],
        AP_HAND_N);
    person->parts |= hand_parts[h];
  }
}

static float
box_area (const ApPerson * person)
{
  float box[4];

  if (ap_person_box (person, box) < 2)
    return 0.0f;
  return (box[2] - box[0]) * (box[3] - box[1]);
}

/* Adds person to the frame. Beyond AP_MAX_PEOPLE the smallest person (by
 * confident-keypoint box) gives way, so "largest" still finds the largest;
 * the kept people stay in input order. */
static void
add_person (ApFrame * frame, float areas[AP_MAX_PEOPLE],
    const ApPerson * person)
{
  float area = box_area (person);
  int smallest = 0;

  if (frame->n_people < AP_MAX_PEOPLE) {
    areas[frame->n_people] = area;
    frame->people[frame->n_people++] = *person;
    return;
  }
  for (int i = 1; i < AP_MAX_PEOPLE; i++)
    if (areas[i] < areas[smallest])
      smallest = i;
  if (area <= areas[smallest])
    return;
  for (int i = smallest; i < AP_MAX_PEOPLE - 1; i++) {
    frame->people[i] = frame->people[i + 1];
    areas[i] = areas[i + 1];
  }
  frame->people[AP_MAX_PEOPLE - 1] = *person;
  areas[AP_MAX_PEOPLE - 1] = area;
}

static void
read_people (Ctx * ctx, JsonArray * people, ApFrame * frame)
{
  float areas[AP_MAX_PEOPLE];
  int n = (int) json_array_get_length (people);
  ApPerson person;
  char field[64];

  for (int i = 0; i < n; i++) {
    JsonNode *node = json_array_get_element (people, i);
    if (!JSON_NODE_HOLDS_OBJECT (node)) {
      snprintf (field, sizeof (field), "people[%d]", i);
      ISSUE (ctx, field, "is %s, not an object: person skipped",
          node_kind (node));
      continue;
    }
    read_person (ctx, json_node_get_object (node), i, &person);
    /* A person without a single usable part draws nothing; the issues
     * above already say why when it was an error. */
    if (person.parts == 0)
      continue;
    add_person (frame, areas, &person);
  }
  if (n > AP_MAX_PEOPLE)
    ISSUE (ctx, "people", "%d people: kept the %d largest", n,
        AP_MAX_PEOPLE);
}

/* canvas_width / canvas_height: a missing one is expected (plain OpenPose
 * omits them) and yields *dflt; a bad one is an error. Either way an
 * issue is added only when warn is set or the value was bad. */
static gboolean
read_canvas (Ctx * ctx, JsonObject * root, const char *name, int *out,
    int dflt)
{
  JsonNode *node = json_object_get_member (root, name);
  double v;

  *out = dflt;
  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    return FALSE;
  if (!node_number (node, &v)) {
    ISSUE (ctx, name, "is %s, not a number: using %d", node_kind (node),
        dflt);
    return TRUE;
  }
  if (!(v >= 1.0 && v <= AP_MAX_CANVAS) || v != floor (v)) {
    ISSUE (ctx, name, "%g is not a whole number in 1..%d: using %d", v,
        AP_MAX_CANVAS, dflt);
    return TRUE;
  }
  *out = (int) v;
  return TRUE;
}

static void
read_time (Ctx * ctx, JsonObject * root, ApFrame * frame)
{
  JsonNode *node = json_object_get_member (root, "time");
  double v;

  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    return;
  if (!node_number (node, &v)) {
    ISSUE (ctx, "time", "is %s, not a number: ignored", node_kind (node));
    return;
  }
  if (!isfinite (v) || v < 0.0 || v > 1.0e9) {
    ISSUE (ctx, "time", "%g is not a time in seconds: ignored", v);
    return;
  }
  frame->has_time = 1;
  frame->time_s = v;
}

/* json-glib reads integers into 64 bits and silently wraps longer ones, so
 * a 30-digit coordinate would come out small and wrong. Returns a copy of
 * text in which every integer of more than 15 digits is followed by "e0",
 * which json-glib reads as a double (then found too large), or NULL when
 * there is none. */
static GString *
widen_long_integers (const char *text, size_t len)
{
  GString *out = NULL;
  gboolean in_string = FALSE, escape = FALSE;
  size_t done = 0;

  for (size_t i = 0; i < len; i++) {
    char c = text[i];
    size_t end;
    if (in_string) {
      if (escape)
        escape = FALSE;
      else if (c == '\\')
        escape = TRUE;
      else if (c == '"')
        in_string = FALSE;
      continue;
    }
    if (c == '"') {
      in_string = TRUE;
      continue;
    }
    if (!g_ascii_isdigit (c) || (i > 0 && (g_ascii_isalnum (text[i - 1])
                || text[i - 1] == '.')))
      continue;
    for (end = i; end < len && g_ascii_isdigit (text[end]); end++);
    if (end - i > 15 && (end == len || (text[end] != '.' && text[end] != 'e'
                && text[end] != 'E'))) {
      if (out == NULL)
        out = g_string_sized_new (len + 16);
      g_string_append_len (out, text + done, end - done);
      g_string_append (out, "e0");
      done = end;
    }
    i = end - 1;
  }
  if (out != NULL)
    g_string_append_len (out, text + done, len - done);
  return out;
}

/* The whole of one object. *canvas holds the canvas to use when the object
 * has none and gets the one it has. */
static ApParseResult
parse_object (const char *text, size_t len, long line, int datagram,
    int canvas[2], gboolean warn_canvas, gboolean * canvas_missing,
    ApFrame * frame, ApIssues * issues)
{
  Ctx ctx = { issues, line, datagram };
  JsonParser *parser;
  GString *wide;
  JsonNode *root, *people;
  GError *error = NULL;
  gboolean have_w, have_h;
  ApParseResult res = AP_DROPPED;

  ap_frame_init (frame);
  if (text == NULL || len == 0) {
    /* an empty datagram: json-glib refuses NULL data with a critical */
    ISSUE (&ctx, "", "empty: frame dropped");
    return AP_DROPPED;
  }
  parser = json_parser_new_immutable ();
  wide = widen_long_integers (text, len);
  if (wide != NULL) {
    text = wide->str;
    len = wide->len;
  }
  if (len > G_MAXSSIZE || !json_parser_load_from_data (parser, text,
          (gssize) len, &error)) {
    ISSUE (&ctx, "", "not valid JSON (%s): frame dropped",
        error ? error->message : "too long");
    goto out;
  }
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root)) {
    ISSUE (&ctx, "", "not a JSON object: frame dropped");
    goto out;
  }
  people = json_object_get_member (json_node_get_object (root), "people");
  if (people == NULL || !JSON_NODE_HOLDS_ARRAY (people)) {
    ISSUE (&ctx, "people", "%s: frame dropped", people == NULL ? "missing"
        : (JSON_NODE_HOLDS_NULL (people) ? "is null" : "is not an array"));
    goto out;
  }

  have_w = read_canvas (&ctx, json_node_get_object (root), "canvas_width",
      &frame->canvas_width, canvas[0]);
  have_h = read_canvas (&ctx, json_node_get_object (root), "canvas_height",
      &frame->canvas_height, canvas[1]);
  *canvas_missing = !have_w || !have_h;
  if (*canvas_missing && warn_canvas)
    ISSUE (&ctx, have_w ? "canvas_height" : "canvas_width",
        "missing: using %dx%d", frame->canvas_width, frame->canvas_height);
  canvas[0] = frame->canvas_width;
  canvas[1] = frame->canvas_height;

  read_time (&ctx, json_node_get_object (root), frame);
  read_people (&ctx, json_node_get_array (people), frame);
  res = AP_FRAME;
out:
  g_clear_error (&error);
  g_object_unref (parser);
  if (wide != NULL)
    g_string_free (wide, TRUE);
  return res;
}

ApParseResult
ap_frame_from_json (const char *text, size_t len, long line, ApFrame * frame,
    ApIssues * issues)
{
  int canvas[2] = { AP_DEFAULT_CANVAS_WIDTH, AP_DEFAULT_CANVAS_HEIGHT };
  gboolean canvas_missing;

  ap_issues_clear (issues);
  return parse_object (text, len, line, 0, canvas, TRUE, &canvas_missing,
      frame, issues);
}

/* ---- The stream parser -------------------------------------------------- */

typedef struct {
  GBytes *data;                 /* NULL: the datagram was too long */
  size_t len;
  long number;
} Datagram;

struct ApParser {
  size_t max_object_bytes;

  /* Stream mode: pushed bytes not yet scanned, from in_pos on. */
  GByteArray *in;
  size_t in_pos;
  /* The object being collected (at most max_object_bytes of it). */
  GByteArray *obj;
  gboolean in_object, in_string, escape;
  gboolean skipping;            /* overlong or too deep: reported, ignored */
  int depth;
  guint32 brackets;             /* bit d-1 set: level d opened with '[' */
  long line, obj_line;
  gboolean col0;                /* the next byte starts a line */
  guint64 offset;               /* bytes scanned since the start */
  gboolean garbage_reported;    /* this line's stray text was reported */
  gboolean finished;

  /* Datagram mode. */
  GQueue datagrams;
  long n_datagrams;

  int canvas[2];                /* the last canvas seen */
  gboolean canvas_warned;       /* a missing canvas is reported once */
};

ApParser *
ap_parser_new (size_t max_object_bytes)
{
  ApParser *p = g_new0 (ApParser, 1);

  p->max_object_bytes = max_object_bytes ? max_object_bytes :
      AP_DEFAULT_MAX_OBJECT_BYTES;
  p->in = g_byte_array_new ();
  p->obj = g_byte_array_new ();
  g_queue_init (&p->datagrams);
  ap_parser_reset (p);
  return p;
}

static void
datagram_free (gpointer data)
{
  Datagram *d = data;

  if (d->data)
    g_bytes_unref (d->data);
  g_free (d);
}

void
ap_parser_reset (ApParser * p)
{
  g_byte_array_set_size (p->in, 0);
  g_byte_array_set_size (p->obj, 0);
  p->in_pos = 0;
  p->in_object = p->in_string = p->escape = p->skipping = FALSE;
  p->depth = 0;
  p->line = 1;
  p->obj_line = 1;
  p->col0 = TRUE;
  p->offset = 0;
  p->garbage_reported = FALSE;
  p->finished = FALSE;
  g_queue_clear_full (&p->datagrams, datagram_free);
  p->n_datagrams = 0;
  p->canvas[0] = AP_DEFAULT_CANVAS_WIDTH;
  p->canvas[1] = AP_DEFAULT_CANVAS_HEIGHT;
  p->canvas_warned = FALSE;
}

void
ap_parser_free (ApParser * p)
{
  if (p == NULL)
    return;
  g_queue_clear_full (&p->datagrams, datagram_free);
  g_byte_array_unref (p->in);
  g_byte_array_unref (p->obj);
  g_free (p);
}

void
ap_parser_push (ApParser * p, const char *data, size_t len)
{
  /* Drop what was scanned already, so the buffer only holds what the
   * caller pushed since it last drained the parser. */
  if (p->in_pos > 0) {
    g_byte_array_remove_range (p->in, 0, (guint) p->in_pos);
    p->in_pos = 0;
  }
  while (len > 0) {
    guint n = (guint) MIN (len, (size_t) G_MAXINT);
    g_byte_array_append (p->in, (const guint8 *) data, n);
    data += n;
    len -= n;
  }
}

void
ap_parser_push_datagram (ApParser * p, const char *data, size_t len)
{
  Datagram *d = g_new0 (Datagram, 1);

  d->number = ++p->n_datagrams;
  d->len = len;
  if (len <= p->max_object_bytes)
    d->data = g_bytes_new (data, len);
  g_queue_push_tail (&p->datagrams, d);
}

void
ap_parser_finish (ApParser * p)
{
  p->finished = TRUE;
}

static ApParseResult
parse_collected (ApParser * p, const char *text, size_t len, long line,
    int datagram, ApFrame * frame, ApIssues * issues)
{
  gboolean canvas_missing = FALSE;
  ApParseResult res;

  res = parse_object (text, len, line, datagram, p->canvas,
      !p->canvas_warned, &canvas_missing, frame, issues);
  if (canvas_missing)
    p->canvas_warned = TRUE;
  return res;
}

static gboolean
is_space (guint8 c)
{
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* One datagram must hold exactly one object and nothing else but
 * whitespace. */
static ApParseResult
next_datagram (ApParser * p, ApFrame * frame, ApIssues * issues)
{
  Datagram *d = g_queue_pop_head (&p->datagrams);
  ApParseResult res = AP_DROPPED;

  ap_frame_init (frame);
  if (d->data == NULL) {
    ap_issues_add (issues, d->number, 1, "", "datagram of %zu bytes is "
        "longer than %zu: frame dropped", d->len, p->max_object_bytes);
  } else {
    gsize size;
    const char *text = g_bytes_get_data (d->data, &size);
    gsize end = 0;
    int depth = 0;
    gboolean in_string = FALSE, escape = FALSE, trailing = FALSE;

    /* Refuse deep nesting before json-glib recurses into it, and text
     * after the first object (json-glib would read past it). */
    for (gsize i = 0; i < size && depth <= AP_MAX_DEPTH; i++) {
      char c = text[i];
      if (end > 0) {
        trailing |= !is_space ((guint8) c);
      } else if (in_string) {
        if (escape)
          escape = FALSE;
        else if (c == '\\')
          escape = TRUE;
        else if (c == '"')
          in_string = FALSE;
      } else if (c == '"') {
        in_string = TRUE;
      } else if (c == '{' || c == '[') {
        depth++;
      } else if ((c == '}' || c == ']') && --depth == 0) {
        end = i + 1;
      }
    }
    if (depth > AP_MAX_DEPTH)
      ap_issues_add (issues, d->number, 1, "", "JSON nested deeper than %d: "
          "frame dropped", AP_MAX_DEPTH);
    else if (trailing)
      ap_issues_add (issues, d->number, 1, "", "text after the first JSON "
          "object: frame dropped");
    else
      res = parse_collected (p, text, size, d->number, 1, frame, issues);
  }
  datagram_free (d);
  return res;
}

static void
object_start (ApParser * p)
{
  p->in_object = TRUE;
  p->in_string = p->escape = p->skipping = FALSE;
  p->depth = 0;
  p->brackets = 0;
  p->obj_line = p->line;
  g_byte_array_set_size (p->obj, 0);
}

static void
object_end (ApParser * p)
{
  p->in_object = FALSE;
  p->skipping = FALSE;
  g_byte_array_set_size (p->obj, 0);
}

/* Scans one byte inside an object. Returns TRUE when it closed the
 * object. May add an issue (and set skipping) for an object that grew too
 * long or too deep. */
static gboolean
scan_object_byte (ApParser * p, guint8 c, ApIssues * issues)
{
  if (!p->skipping) {
    if (p->obj->len >= p->max_object_bytes) {
      ap_issues_add (issues, p->obj_line, 0, "", "object longer than %zu "
          "bytes: frame dropped", p->max_object_bytes);
      p->skipping = TRUE;
      g_byte_array_set_size (p->obj, 0);
    } else {
      g_byte_array_append (p->obj, &c, 1);
    }
  }
  if (p->in_string) {
    if (p->escape)
      p->escape = FALSE;
    else if (c == '\\')
      p->escape = TRUE;
    else if (c == '"')
      p->in_string = FALSE;
    return FALSE;
  }
  if (c == '"') {
    p->in_string = TRUE;
  } else if (c == '{' || c == '[') {
    if (++p->depth > AP_MAX_DEPTH && !p->skipping) {
      ap_issues_add (issues, p->obj_line, 0, "", "JSON nested deeper than "
          "%d: frame dropped", AP_MAX_DEPTH);
      p->skipping = TRUE;
      g_byte_array_set_size (p->obj, 0);
    } else if (p->depth <= AP_MAX_DEPTH) {
      guint32 bit = 1u << (p->depth - 1);
      p->brackets = c == '[' ? (p->brackets | bit) : (p->brackets & ~bit);
    }
  } else if (c == '}' || c == ']') {
    /* A close that does not match its open breaks the object for good;
     * counting on would swallow the lines after it. */
    if (!p->skipping && p->depth <= AP_MAX_DEPTH
        && ((p->brackets >> (p->depth - 1)) & 1) != (c == ']')) {
      ap_issues_add (issues, p->obj_line, 0, "", "not valid JSON ('%c' "
          "closes a '%c'): frame dropped", c, c == ']' ? '{' : '[');
      p->skipping = TRUE;
      g_byte_array_set_size (p->obj, 0);
      p->depth = 1;             /* end the object here, */
      p->garbage_reported = TRUE;       /* and skip the rest of the line */
    }
    if (--p->depth == 0)
      return TRUE;
  }
  return FALSE;
}

/* Stream mode: scans until a result is ready. */
static ApParseResult
next_stream (ApParser * p, ApFrame * frame, ApIssues * issues)
{
  static const guint8 bom[3] = { 0xef, 0xbb, 0xbf };

  while (p->in_pos < p->in->len) {
    guint8 c = p->in->data[p->in_pos];
    gboolean col0 = p->col0;

    /* Editors on Windows start files with a UTF-8 byte order mark. */
    if (p->offset < 3 && c == bom[p->offset] && !p->in_object) {
      p->offset++;
      p->in_pos++;
      continue;
    }
    p->offset = 3;
    if (!p->in_object) {
      p->in_pos++;
      p->col0 = (c == '\n');
      if (c == '\n') {
        p->line++;
        p->garbage_reported = FALSE;
      }
      if (c == '{') {
        object_start (p);
        scan_object_byte (p, c, issues);
      } else if (!is_space (c) && !p->garbage_reported) {
        p->garbage_reported = TRUE;
        ap_issues_add (issues, p->line, 0, "", "text outside a JSON object "
            "(byte 0x%02x): skipped to the next line or object", c);
        return AP_DROPPED;
      }
      continue;
    }

    /* A '{' at the start of a line while an object is still open: that
     * object was cut short (a truncated JSON Lines record). Strings cannot
     * hold raw newlines, so no valid object looks like this unless it was
     * pretty-printed with nested objects at column 0. */
    if (col0 && c == '{') {
      gboolean reported = p->skipping;
      long line = p->obj_line;
      object_end (p);
      if (!reported) {
        ap_issues_add (issues, line, 0, "", "object not closed before the "
            "next line's object: frame dropped");
        return AP_DROPPED;
      }
      continue;
    }

    p->in_pos++;
    p->col0 = (c == '\n');
    if (c == '\n') {
      p->line++;
      p->garbage_reported = FALSE;
    }
    if (scan_object_byte (p, c, issues)) {
      ApParseResult res = AP_DROPPED;
      if (!p->skipping)
        res = parse_collected (p, (const char *) p->obj->data, p->obj->len,
            p->obj_line, 0, frame, issues);
      object_end (p);
      if (res == AP_FRAME || issues->n_total > 0)
        return res;
      continue;                 /* reported when it began skipping */
    }
    if (issues->n_total > 0)
      return AP_DROPPED;        /* just started skipping: report it now */
  }

  if (p->finished && p->in_object) {
    gboolean reported = p->skipping;
    long line = p->obj_line;
    object_end (p);
    if (!reported) {
      ap_issues_add (issues, line, 0, "", "object not closed at the end of "
          "the stream: frame dropped");
      return AP_DROPPED;
    }
  }
  return AP_NEED_DATA;
}

ApParseResult
ap_parser_next (ApParser * p, ApFrame * frame, ApIssues * issues)
{
  ap_issues_clear (issues);
  if (!g_queue_is_empty (&p->datagrams))
    return next_datagram (p, frame, issues);
  ap_frame_init (frame);
  return next_stream (p, frame, issues);
}

/* ---- Writing ------------------------------------------------------------ */

/* Shortest of %.6g and %.9g that reads back as the same float. */
static void
append_number (GString * s, float v)
{
  char buf[G_ASCII_DTOSTR_BUF_SIZE];

  if (!isfinite (v))
    v = 0.0f;
  g_ascii_formatd (buf, sizeof (buf), "%.6g", v);
  if ((float) g_ascii_strtod (buf, NULL) != v)
    g_ascii_formatd (buf, sizeof (buf), "%.9g", v);
  g_string_append (s, buf);
}

static void
append_points (GString * s, const char *name, const ApPoint * points, int n,
    gboolean present)
{
  g_string_append_printf (s, "\"%s\":[", name);
  for (int i = 0; present && i < n; i++) {
    if (i > 0)
      g_string_append_c (s, ',');
    append_number (s, points[i].x);
    g_string_append_c (s, ',');
    append_number (s, points[i].y);
    g_string_append_c (s, ',');
    append_number (s, points[i].c);
  }
  g_string_append_c (s, ']');
}

/* BODY_25 order back from COCO-18 + feet; MidHip is the hips' midpoint,
 * as OpenPose defines it, or missing when a hip is. */
static void
body25_from (const ApPerson * person, ApPoint out[25])
{
  const ApPoint *rh = &person->body[AP_RHIP], *lh = &person->body[AP_LHIP];

  for (int i = 0; i < AP_BODY_N; i++)
    out[body25_to_coco[i]] = person->body[i];
  for (int i = 0; i < AP_FEET_N; i++)
    out[BODY25_FEET0 + i] = person->feet[i];
  memset (&out[BODY25_MIDHIP], 0, sizeof (ApPoint));
  if (rh->c > 0.0f && lh->c > 0.0f) {
    out[BODY25_MIDHIP].x = (rh->x + lh->x) / 2.0f;
    out[BODY25_MIDHIP].y = (rh->y + lh->y) / 2.0f;
    out[BODY25_MIDHIP].c = rh->c < lh->c ? rh->c : lh->c;
  }
}

char *
ap_frame_to_json (const ApFrame * frame)
{
  GString *s = g_string_new ("{\"version\":1.3");
  ApPoint body25[25];

  g_string_append_printf (s, ",\"canvas_width\":%d,\"canvas_height\":%d",
      frame->canvas_width, frame->canvas_height);
  if (frame->has_time && isfinite (frame->time_s)) {
    char buf[G_ASCII_DTOSTR_BUF_SIZE];
    g_string_append_printf (s, ",\"time\":%s",
        g_ascii_dtostr (buf, sizeof (buf), frame->time_s));
  }
  g_string_append (s, ",\"people\":[");
  for (int i = 0; i < frame->n_people && i < AP_MAX_PEOPLE; i++) {
    const ApPerson *p = &frame->people[i];
    gboolean body = (p->parts & AP_PART_BODY) != 0;
    int n_face = (p->n_face == 68 || p->n_face == 70) ? p->n_face : 0;

    g_string_append (s, i > 0 ? ",{" : "{");
    if (body && (p->parts & AP_PART_FEET)) {
      body25_from (p, body25);
      append_points (s, "pose_keypoints_2d", body25, 25, TRUE);
    } else {
      append_points (s, "pose_keypoints_2d", p->body, AP_BODY_N, body);
    }
    g_string_append_c (s, ',');
    append_points (s, "face_keypoints_2d", p->face, n_face,
        (p->parts & AP_PART_FACE) != 0);
    g_string_append_c (s, ',');
    append_points (s, "hand_left_keypoints_2d", p->hand[AP_LEFT], AP_HAND_N,
        (p->parts & AP_PART_HAND_LEFT) != 0);
    g_string_append_c (s, ',');
    append_points (s, "hand_right_keypoints_2d", p->hand[AP_RIGHT],
        AP_HAND_N, (p->parts & AP_PART_HAND_RIGHT) != 0);
    g_string_append_c (s, '}');
  }
  g_string_append (s, "]}");
  return g_string_free (s, FALSE);
}
