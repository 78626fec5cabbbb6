/* The shared engine (gstavatarcontext.h, docs/shared-engine.md).
 *
 * A process-wide registry maps a model folder's real path to the one
 * GstAvatarEngine that holds its loaded AeAvatarModel. The registry holds
 * weak references only: the model is freed when the last element (or
 * application) that uses it lets go, and loaded again by the next one.
 * The GstContext "gst-avatar.engine" carries an engine between the
 * elements of a pipeline and the application, so that an application can
 * keep a model loaded across pipeline restarts or hand it to several
 * pipelines. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "gstavatarcontext.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

GST_DEBUG_CATEGORY_STATIC (gst_avatar_engine_debug);
#define GST_CAT_DEFAULT gst_avatar_engine_debug

struct _GstAvatarEngine
{
  GstObject parent;

  gchar *path;                  /* real path of the model folder */
  AeAvatarModel *model;         /* one reference, ours */
};

G_DEFINE_TYPE (GstAvatarEngine, gst_avatar_engine, GST_TYPE_OBJECT);

/* real path -> GWeakRef * to the engine. */
static GMutex registry_lock;
static GHashTable *registry;
static guint n_alive;

static void
weak_ref_free (gpointer p)
{
  g_weak_ref_clear (p);
  g_free (p);
}

static void
gst_avatar_engine_finalize (GObject * object)
{
  GstAvatarEngine *self = GST_AVATAR_ENGINE (object);

  GST_INFO_OBJECT (self, "unloading model %s", self->path);
  if (self->model)
    ae_avatar_model_unref (self->model);
  g_free (self->path);
  g_mutex_lock (&registry_lock);
  n_alive--;
  g_mutex_unlock (&registry_lock);
  G_OBJECT_CLASS (gst_avatar_engine_parent_class)->finalize (object);
}

static void
gst_avatar_engine_class_init (GstAvatarEngineClass * klass)
{
  G_OBJECT_CLASS (klass)->finalize = gst_avatar_engine_finalize;
  GST_DEBUG_CATEGORY_INIT (gst_avatar_engine_debug, "avatarengine", 0,
      "gst-avatar shared engine");
}

static void
gst_avatar_engine_init (GstAvatarEngine * self)
{
}

gchar *
gst_avatar_default_model_dir (void)
{
  const gchar *env = g_getenv (GST_AVATAR_MODEL_ENV);

  if (env != NULL && env[0] != '\0')
    return g_strdup (env);
#ifdef AVATAR_SOURCE_MODEL_DIR
  if (g_file_test (AVATAR_SOURCE_MODEL_DIR, G_FILE_TEST_IS_DIR))
    return g_strdup (AVATAR_SOURCE_MODEL_DIR);
#endif
#ifdef AVATAR_INSTALL_MODEL_DIR
  return g_strdup (AVATAR_INSTALL_MODEL_DIR);
#else
  return g_strdup ("models/avatar-default");
#endif
}

GstAvatarEngine *
gst_avatar_engine_obtain (const gchar * dir, GError ** error)
{
  GstAvatarEngine *engine = NULL;
  GWeakRef *ref;
  AeAvatarModel *model = NULL;
  AeError err;
  char *real;

  if (dir == NULL || dir[0] == '\0') {
    g_set_error (error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND,
        "no model folder given");
    return NULL;
  }
  real = realpath (dir, NULL);
  if (real == NULL) {
    g_set_error (error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND,
        "model folder '%s': %s", dir, g_strerror (errno));
    return NULL;
  }
  if (!g_file_test (real, G_FILE_TEST_IS_DIR)) {
    g_set_error (error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND,
        "model folder '%s' is not a folder", dir);
    free (real);
    return NULL;
  }

  /* Loading under the lock: two elements asking for one model at once
   * load it once. */
  g_mutex_lock (&registry_lock);
  if (registry == NULL)
    registry = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
        weak_ref_free);
  ref = g_hash_table_lookup (registry, real);
  if (ref != NULL)
    engine = g_weak_ref_get (ref);
  if (engine != NULL) {
    GST_DEBUG_OBJECT (engine, "sharing loaded model %s", real);
    g_mutex_unlock (&registry_lock);
    free (real);
    return engine;
  }

  if (ae_avatar_model_load (&model, real, &err) != 0) {
    g_mutex_unlock (&registry_lock);
    g_set_error (error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_OPEN_READ,
        "model folder '%s': %s", dir, err.msg);
    free (real);
    return NULL;
  }
  engine = g_object_new (GST_TYPE_AVATAR_ENGINE, NULL);
  gst_object_ref_sink (engine);
  engine->path = g_strdup (real);
  engine->model = model;
  n_alive++;
  ref = g_new0 (GWeakRef, 1);
  g_weak_ref_init (ref, engine);
  g_hash_table_replace (registry, g_strdup (real), ref);
  g_mutex_unlock (&registry_lock);
  GST_INFO_OBJECT (engine, "loaded model %s", real);
  free (real);
  return engine;
}

const gchar *
gst_avatar_engine_get_path (GstAvatarEngine * engine)
{
  g_return_val_if_fail (GST_IS_AVATAR_ENGINE (engine), NULL);
  return engine->path;
}

AeAvatarModel *
gst_avatar_engine_get_model (GstAvatarEngine * engine)
{
  g_return_val_if_fail (GST_IS_AVATAR_ENGINE (engine), NULL);
  return engine->model;
}

guint
gst_avatar_engine_count_loaded (void)
{
  guint n;

  g_mutex_lock (&registry_lock);
  n = n_alive;
  g_mutex_unlock (&registry_lock);
  return n;
}

/* ---- GstContext ---------------------------------------------------------- */

GstContext *
gst_avatar_engine_context_new (GstAvatarEngine * engine)
{
  GstContext *context = gst_context_new (GST_AVATAR_ENGINE_CONTEXT_TYPE,
      FALSE);
  GstStructure *s = gst_context_writable_structure (context);

  gst_structure_set (s, "engine", GST_TYPE_AVATAR_ENGINE, engine,
      "path", G_TYPE_STRING, engine->path, NULL);
  return context;
}

GstAvatarEngine *
gst_avatar_engine_context_get (GstContext * context)
{
  const GstStructure *s;
  GstAvatarEngine *engine = NULL;

  if (context == NULL || g_strcmp0 (gst_context_get_context_type (context),
          GST_AVATAR_ENGINE_CONTEXT_TYPE) != 0)
    return NULL;
  s = gst_context_get_structure (context);
  if (!gst_structure_get (s, "engine", GST_TYPE_AVATAR_ENGINE, &engine,
          NULL))
    return NULL;
  return engine;
}

void
gst_avatar_engine_handle_set_context (GstElement * element,
    GstContext * context, GstAvatarEngine ** slot)
{
  GstAvatarEngine *engine = gst_avatar_engine_context_get (context);

  if (engine == NULL)
    return;
  GST_DEBUG_OBJECT (element, "engine of %s from a context", engine->path);
  GST_OBJECT_LOCK (element);
  gst_object_replace ((GstObject **) slot, GST_OBJECT (engine));
  GST_OBJECT_UNLOCK (element);
  gst_object_unref (engine);
}

gboolean
gst_avatar_engine_handle_context_query (GstElement * element,
    GstQuery * query, GstAvatarEngine ** slot)
{
  const gchar *type;
  GstContext *old, *context;
  GstAvatarEngine *engine = NULL;

  if (GST_QUERY_TYPE (query) != GST_QUERY_CONTEXT)
    return FALSE;
  if (!gst_query_parse_context_type (query, &type)
      || g_strcmp0 (type, GST_AVATAR_ENGINE_CONTEXT_TYPE) != 0)
    return FALSE;
  GST_OBJECT_LOCK (element);
  if (*slot != NULL)
    engine = gst_object_ref (*slot);
  GST_OBJECT_UNLOCK (element);
  if (engine == NULL)
    return FALSE;
  gst_query_parse_context (query, &old);
  if (old != NULL) {
    context = gst_context_copy (old);
    gst_structure_set (gst_context_writable_structure (context),
        "engine", GST_TYPE_AVATAR_ENGINE, engine,
        "path", G_TYPE_STRING, engine->path, NULL);
  } else {
    context = gst_avatar_engine_context_new (engine);
  }
  gst_query_set_context (query, context);
  gst_context_unref (context);
  GST_LOG_OBJECT (element, "answered a context query with %s",
      engine->path);
  gst_object_unref (engine);
  return TRUE;
}

/* Asks the peers of all of element's pads; the engine of real_path one
 * of them answered with (new reference), or NULL. */
static GstAvatarEngine *
query_peers (GstElement * element, const gchar * real_path)
{
  GstQuery *query = gst_query_new_context (GST_AVATAR_ENGINE_CONTEXT_TYPE);
  GstAvatarEngine *found = NULL;
  GList *pads;

  GST_OBJECT_LOCK (element);
  pads = g_list_copy (element->pads);
  for (GList * l = pads; l; l = l->next)
    gst_object_ref (l->data);
  GST_OBJECT_UNLOCK (element);
  for (GList * l = pads; l && found == NULL; l = l->next) {
    GstContext *context = NULL;
    if (!gst_pad_peer_query (l->data, query))
      continue;
    gst_query_parse_context (query, &context);
    found = gst_avatar_engine_context_get (context);
    if (found != NULL && strcmp (found->path, real_path) != 0)
      gst_clear_object (&found);
  }
  g_list_free_full (pads, gst_object_unref);
  gst_query_unref (query);
  return found;
}

/* A new reference to *slot if it is the engine of real_path. */
static GstAvatarEngine *
slot_get (GstElement * element, GstAvatarEngine ** slot,
    const gchar * real_path)
{
  GstAvatarEngine *engine = NULL;

  GST_OBJECT_LOCK (element);
  if (*slot != NULL && strcmp ((*slot)->path, real_path) == 0)
    engine = gst_object_ref (*slot);
  GST_OBJECT_UNLOCK (element);
  return engine;
}

gboolean
gst_avatar_engine_ensure (GstElement * element, const gchar * dir,
    GstAvatarEngine ** given, GstAvatarEngine ** out, GError ** error)
{
  GstAvatarEngine *engine;
  gboolean announce = FALSE;
  char *real;

  if (dir == NULL || dir[0] == '\0') {
    g_set_error (error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND,
        "no model folder given");
    return FALSE;
  }
  real = realpath (dir, NULL);
  if (real == NULL) {
    g_set_error (error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND,
        "model folder '%s': %s", dir, g_strerror (errno));
    return FALSE;
  }

  /* 1. Given already (set_context), 2. a neighbour has it, or the bin or
   * the application answers NEED_CONTEXT (calling set_context now). */
  engine = slot_get (element, given, real);
  if (engine == NULL) {
    /* A context set earlier is kept by the element across stop/start. */
    GstContext *context = gst_element_get_context (element,
        GST_AVATAR_ENGINE_CONTEXT_TYPE);
    engine = gst_avatar_engine_context_get (context);
    if (context)
      gst_context_unref (context);
    if (engine != NULL && strcmp (engine->path, real) != 0)
      gst_clear_object (&engine);
  }
  if (engine == NULL)
    engine = query_peers (element, real);
  if (engine == NULL) {
    gst_element_post_message (element,
        gst_message_new_need_context (GST_OBJECT (element),
            GST_AVATAR_ENGINE_CONTEXT_TYPE));
    engine = slot_get (element, given, real);
  }
  /* 3. The registry (loads it if nobody has), and tell the others. */
  if (engine == NULL) {
    engine = gst_avatar_engine_obtain (dir, error);
    if (engine == NULL) {
      free (real);
      return FALSE;
    }
    announce = TRUE;
  }
  GST_OBJECT_LOCK (element);
  gst_object_replace ((GstObject **) out, GST_OBJECT (engine));
  GST_OBJECT_UNLOCK (element);
  if (announce)
    gst_element_post_message (element,
        gst_message_new_have_context (GST_OBJECT (element),
            gst_avatar_engine_context_new (engine)));
  GST_DEBUG_OBJECT (element, "using engine of %s", real);
  gst_object_unref (engine);
  free (real);
  return TRUE;
}
