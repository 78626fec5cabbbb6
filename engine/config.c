/* config.json helpers on json-glib (see config.h). */
#include <math.h>
#include <string.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include "config.h"

struct AeConfig
{
  char *path;
  JsonParser *parser;
  JsonObject *root;
};

static int
finish_load (AeConfig * cfg, AeConfig ** out, AeError * err)
{
  JsonNode *root = json_parser_get_root (cfg->parser);

  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root)) {
    ae_error (err, "%s: top level is not a JSON object", cfg->path);
    ae_config_free (cfg);
    return -1;
  }
  cfg->root = json_node_get_object (root);
  *out = cfg;
  return 0;
}

int
ae_config_load (AeConfig ** out, const char *path, AeError * err)
{
  AeConfig *cfg;
  GError *gerr = NULL;

  *out = NULL;
  cfg = g_new0 (AeConfig, 1);
  cfg->path = g_strdup (path);
  cfg->parser = json_parser_new ();
  if (!json_parser_load_from_file (cfg->parser, path, &gerr)) {
    ae_error (err, "%s: cannot read JSON: %s", path, gerr->message);
    g_error_free (gerr);
    ae_config_free (cfg);
    return -1;
  }
  return finish_load (cfg, out, err);
}

int
ae_config_load_data (AeConfig ** out, const char *name, const char *json,
    AeError * err)
{
  AeConfig *cfg;
  GError *gerr = NULL;

  *out = NULL;
  cfg = g_new0 (AeConfig, 1);
  cfg->path = g_strdup (name);
  cfg->parser = json_parser_new ();
  if (!json_parser_load_from_data (cfg->parser, json, -1, &gerr)) {
    ae_error (err, "%s: cannot parse JSON: %s", name, gerr->message);
    g_error_free (gerr);
    ae_config_free (cfg);
    return -1;
  }
  return finish_load (cfg, out, err);
}

void
ae_config_free (AeConfig * cfg)
{
  if (cfg == NULL)
    return;
  if (cfg->parser)
    g_object_unref (cfg->parser);
  g_free (cfg->path);
  g_free (cfg);
}

const char *
ae_config_path (const AeConfig * cfg)
{
  return cfg->path;
}

/* The member, or NULL when missing or JSON null. */
static JsonNode *
member (const AeConfig * cfg, const char *key)
{
  JsonNode *node;

  if (!json_object_has_member (cfg->root, key))
    return NULL;
  node = json_object_get_member (cfg->root, key);
  return JSON_NODE_HOLDS_NULL (node) ? NULL : node;
}

bool
ae_config_has (const AeConfig * cfg, const char *key)
{
  return member (cfg, key) != NULL;
}

static const char *
node_kind (JsonNode * node)
{
  if (JSON_NODE_HOLDS_OBJECT (node))
    return "object";
  if (JSON_NODE_HOLDS_ARRAY (node))
    return "array";
  if (JSON_NODE_HOLDS_NULL (node))
    return "null";
  switch (json_node_get_value_type (node)) {
    case G_TYPE_INT64:
      return "integer";
    case G_TYPE_DOUBLE:
      return "number";
    case G_TYPE_BOOLEAN:
      return "boolean";
    case G_TYPE_STRING:
      return "string";
    default:
      return "value";
  }
}

static int
missing (const AeConfig * cfg, const char *key, AeError * err)
{
  return ae_error (err, "%s: field '%s': missing", cfg->path, key);
}

static int
wrong_type (const AeConfig * cfg, const char *key, const char *want,
    JsonNode * node, AeError * err)
{
  return ae_error (err, "%s: field '%s': expected %s, found %s", cfg->path,
      key, want, node_kind (node));
}

static int
node_int (JsonNode * node, int64_t * out)
{
  if (!JSON_NODE_HOLDS_VALUE (node))
    return -1;
  if (json_node_get_value_type (node) == G_TYPE_INT64) {
    *out = json_node_get_int (node);
    return 0;
  }
  if (json_node_get_value_type (node) == G_TYPE_DOUBLE) {
    double d = json_node_get_double (node);
    if (d == floor (d) && fabs (d) < 9.0e15) {
      *out = (int64_t) d;
      return 0;
    }
  }
  return -1;
}

int
ae_config_get_int (const AeConfig * cfg, const char *key, int64_t * out,
    AeError * err)
{
  JsonNode *node = member (cfg, key);

  if (node == NULL)
    return missing (cfg, key, err);
  if (node_int (node, out) < 0)
    return wrong_type (cfg, key, "an integer", node, err);
  return 0;
}

int
ae_config_get_int_or (const AeConfig * cfg, const char *key, int64_t def,
    int64_t * out, AeError * err)
{
  if (member (cfg, key) == NULL) {
    *out = def;
    return 0;
  }
  return ae_config_get_int (cfg, key, out, err);
}

int
ae_config_get_float (const AeConfig * cfg, const char *key, double *out,
    AeError * err)
{
  JsonNode *node = member (cfg, key);
  GType type;

  if (node == NULL)
    return missing (cfg, key, err);
  type = JSON_NODE_HOLDS_VALUE (node) ? json_node_get_value_type (node) : 0;
  if (type == G_TYPE_DOUBLE)
    *out = json_node_get_double (node);
  else if (type == G_TYPE_INT64)
    *out = (double) json_node_get_int (node);
  else
    return wrong_type (cfg, key, "a number", node, err);
  return 0;
}

int
ae_config_get_float_or (const AeConfig * cfg, const char *key, double def,
    double *out, AeError * err)
{
  if (member (cfg, key) == NULL) {
    *out = def;
    return 0;
  }
  return ae_config_get_float (cfg, key, out, err);
}

int
ae_config_get_bool (const AeConfig * cfg, const char *key, bool * out,
    AeError * err)
{
  JsonNode *node = member (cfg, key);

  if (node == NULL)
    return missing (cfg, key, err);
  if (!JSON_NODE_HOLDS_VALUE (node)
      || json_node_get_value_type (node) != G_TYPE_BOOLEAN)
    return wrong_type (cfg, key, "a boolean", node, err);
  *out = json_node_get_boolean (node);
  return 0;
}

int
ae_config_get_bool_or (const AeConfig * cfg, const char *key, bool def,
    bool * out, AeError * err)
{
  if (member (cfg, key) == NULL) {
    *out = def;
    return 0;
  }
  return ae_config_get_bool (cfg, key, out, err);
}

int
ae_config_get_string (const AeConfig * cfg, const char *key,
    const char **out, AeError * err)
{
  JsonNode *node = member (cfg, key);

  if (node == NULL)
    return missing (cfg, key, err);
  if (!JSON_NODE_HOLDS_VALUE (node)
      || json_node_get_value_type (node) != G_TYPE_STRING)
    return wrong_type (cfg, key, "a string", node, err);
  *out = json_node_get_string (node);
  return 0;
}

int
ae_config_get_string_or (const AeConfig * cfg, const char *key,
    const char *def, const char **out, AeError * err)
{
  if (member (cfg, key) == NULL) {
    *out = def;
    return 0;
  }
  return ae_config_get_string (cfg, key, out, err);
}

int
ae_config_get_int_list (const AeConfig * cfg, const char *key,
    int64_t * out, int max, int *n, bool scalar_ok, AeError * err)
{
  JsonNode *node = member (cfg, key);
  JsonArray *arr;
  guint len;

  *n = 0;
  if (node == NULL)
    return missing (cfg, key, err);
  if (scalar_ok && node_int (node, &out[0]) == 0 && max >= 1) {
    *n = 1;
    return 0;
  }
  if (!JSON_NODE_HOLDS_ARRAY (node))
    return wrong_type (cfg, key, scalar_ok ? "an integer or a list of "
        "integers" : "a list of integers", node, err);
  arr = json_node_get_array (node);
  len = json_array_get_length (arr);
  if (len > (guint) max)
    return ae_error (err, "%s: field '%s': %u entries, at most %d supported",
        cfg->path, key, len, max);
  for (guint i = 0; i < len; i++)
    if (node_int (json_array_get_element (arr, i), &out[i]) < 0)
      return ae_error (err, "%s: field '%s'[%u]: expected an integer, found "
          "%s", cfg->path, key, i, node_kind (json_array_get_element (arr,
                  i)));
  *n = (int) len;
  return 0;
}

int
ae_config_get_string_list (const AeConfig * cfg, const char *key,
    const char **out, int max, int *n, AeError * err)
{
  JsonNode *node = member (cfg, key);
  JsonArray *arr;
  guint len;

  *n = 0;
  if (node == NULL)
    return missing (cfg, key, err);
  if (!JSON_NODE_HOLDS_ARRAY (node))
    return wrong_type (cfg, key, "a list of strings", node, err);
  arr = json_node_get_array (node);
  len = json_array_get_length (arr);
  if (len > (guint) max)
    return ae_error (err, "%s: field '%s': %u entries, at most %d supported",
        cfg->path, key, len, max);
  for (guint i = 0; i < len; i++) {
    JsonNode *el = json_array_get_element (arr, i);
    if (!JSON_NODE_HOLDS_VALUE (el)
        || json_node_get_value_type (el) != G_TYPE_STRING)
      return ae_error (err, "%s: field '%s'[%u]: expected a string, found %s",
          cfg->path, key, i, node_kind (el));
    out[i] = json_node_get_string (el);
  }
  *n = (int) len;
  return 0;
}

int
ae_config_get_float_list (const AeConfig * cfg, const char *key,
    double *out, int max, int *n, AeError * err)
{
  JsonNode *node = member (cfg, key);
  JsonArray *arr;
  guint len;

  *n = 0;
  if (node == NULL)
    return missing (cfg, key, err);
  if (!JSON_NODE_HOLDS_ARRAY (node))
    return wrong_type (cfg, key, "a list of numbers", node, err);
  arr = json_node_get_array (node);
  len = json_array_get_length (arr);
  if (len > (guint) max)
    return ae_error (err, "%s: field '%s': %u entries, at most %d supported",
        cfg->path, key, len, max);
  for (guint i = 0; i < len; i++) {
    JsonNode *el = json_array_get_element (arr, i);
    GType type = JSON_NODE_HOLDS_VALUE (el) ? json_node_get_value_type (el)
        : G_TYPE_INVALID;
    if (type == G_TYPE_DOUBLE)
      out[i] = json_node_get_double (el);
    else if (type == G_TYPE_INT64)
      out[i] = (double) json_node_get_int (el);
    else
      return ae_error (err, "%s: field '%s'[%u]: expected a number, found %s",
          cfg->path, key, i, node_kind (el));
  }
  *n = (int) len;
  return 0;
}
