/* The shared engine: one loaded model per model folder per process, found
 * by the elements of a pipeline through a GstContext of type
 * "gst-avatar.engine" (as GL and VA elements share a display).
 * See docs/shared-engine.md. */
#ifndef GST_AVATAR_CONTEXT_H
#define GST_AVATAR_CONTEXT_H

#include <gst/gst.h>
#include "avatar-model.h"

G_BEGIN_DECLS

#define GST_AVATAR_ENGINE_CONTEXT_TYPE "gst-avatar.engine"

/* Environment variable naming the default model folder. */
#define GST_AVATAR_MODEL_ENV "GST_AVATAR_MODEL_DIR"

#define GST_TYPE_AVATAR_ENGINE (gst_avatar_engine_get_type ())
G_DECLARE_FINAL_TYPE (GstAvatarEngine, gst_avatar_engine, GST,
    AVATAR_ENGINE, GstObject)

/* The folder used when an element's `model` property is unset:
 * $GST_AVATAR_MODEL_DIR, else the source tree's models/avatar-default
 * when it exists (uninstalled builds), else the installed
 * DATADIR/gst-avatar/models/avatar-default. Newly allocated. */
gchar *gst_avatar_default_model_dir (void);

/* The engine of the model in `dir` (any spelling of the path: the key is
 * its real path): the process's one if it is already loaded, else loaded
 * now. NULL with error (GST_RESOURCE_ERROR, naming the folder and what was
 * wrong) when the folder is missing or not a valid model. */
GstAvatarEngine *gst_avatar_engine_obtain (const gchar * dir,
    GError ** error);

/* The model folder's real path (the registry key). */
const gchar *gst_avatar_engine_get_path (GstAvatarEngine * engine);

/* The loaded model; valid as long as the engine is. */
AeAvatarModel *gst_avatar_engine_get_model (GstAvatarEngine * engine);

/* Number of engines alive in the process (tests). */
guint gst_avatar_engine_count_loaded (void);

/* A context of type GST_AVATAR_ENGINE_CONTEXT_TYPE (not persistent)
 * holding engine in the field "engine". */
GstContext *gst_avatar_engine_context_new (GstAvatarEngine * engine);

/* The engine in a context of our type (new reference), or NULL. */
GstAvatarEngine *gst_avatar_engine_context_get (GstContext * context);

/* For an element's set_context: stores the engine of a context of our
 * type (NULL clears nothing: other contexts are ignored) in *slot, under
 * the element's object lock. The path is checked when the engine is
 * needed (gst_avatar_engine_ensure). */
void gst_avatar_engine_handle_set_context (GstElement * element,
    GstContext * context, GstAvatarEngine ** slot);

/* For an element's pad query function: answers a context query of our
 * type with the engine in *slot (read under the element's object lock);
 * FALSE (not answered) for other queries or without an engine. */
gboolean gst_avatar_engine_handle_context_query (GstElement * element,
    GstQuery * query, GstAvatarEngine ** slot);

/* What an element calls before it needs the model in `dir`:
 * 1. *given holds the engine of that real path (set_context by the
 *    application or the bin), or the element keeps such a context from
 *    an earlier run: take it;
 * 2. else a context query to the peers of every pad, then a NEED_CONTEXT
 *    message (the application or the bin may answer with set_context,
 *    which fills *given);
 * 3. else the process registry (loading the model if nobody has), and a
 *    HAVE_CONTEXT message so that the bin gives it to the others.
 * The engine found replaces *out (under the element's object lock: pad
 * queries read it). *given is only written by set_context, so a context
 * arriving later never swaps the engine of a running element. FALSE with
 * error (path named) when the model cannot be loaded. */
gboolean gst_avatar_engine_ensure (GstElement * element, const gchar * dir,
    GstAvatarEngine ** given, GstAvatarEngine ** out, GError ** error);

G_END_DECLS
#endif /* GST_AVATAR_CONTEXT_H */
