/* avatar-rtsp-server: serves a pipeline over RTSP with gst-rtsp-server.
 *
 * The pipeline description is given on the command line and must end in an
 * RTP payloader named pay0 (pay1, ... for more streams), the way
 * gst-rtsp-server's media factories expect:
 *
 *   avatar-rtsp-server --port 8554 -- \
 *     posetestsrc is-live=true ! posemapper ! avatardiffuse ! latentfuse ! \
 *     videoconvert ! x264enc tune=zerolatency ! rtph264pay name=pay0 pt=96
 *
 * then `ffplay rtsp://127.0.0.1:8554/avatar`. gst-rtsp-server gives a
 * pipeline 20 s to produce its first frame; a diffusion pipeline on a CPU
 * may need longer, so the slow part can run as a separate --render
 * pipeline that feeds the served one through intervideosink/intervideosrc
 * (the served stream then runs at its own frame rate, repeating the last
 * avatar frame while the next one renders). By default one pipeline is
 * shared by every client (the diffusion runs once, however many watch) and
 * starts at launch, like a TV channel; clients join it. With --port 0 the
 * system picks a free port. When clients can connect (the shared pipeline
 * has its first frame out) it prints exactly one line
 * `rtsp://HOST:PORT/MOUNT` on stdout, so scripts can wait for that line and
 * read the port from it. SIGINT or SIGTERM stops it cleanly.
 */
#include <gst/gst.h>
#include <gst/rtsp-server/rtsp-server.h>
#include <gst/video/video.h>
#include <glib-unix.h>

#include <stdio.h>
#include <string.h>

typedef struct
{
  GMainLoop *loop;
  GstRTSPServer *server;
  GMutex lock;                  /* medias: client, media and main threads */
  GList *medias;                /* prepared medias (refs), stopped at exit */
  GstRTSPMedia *eager;          /* the shared media started at launch */
  GstRTSPThread *eager_thread;  /* taken by prepare_eager () */
  GstElement *render;           /* --render pipeline, or NULL */
  gchar *url;
  volatile gint ready;          /* the eager media prerolled */
  volatile gint render_ready;   /* the render pipeline's first frame is out */
  gboolean url_printed;
  gint exit_code;
  gint max_clients;             /* stop after this many clients closed; 0 = never */
  gint clients_closed;
} Server;

static GstRTSPFilterResult
remove_client (GstRTSPServer * server, GstRTSPClient * client,
    gpointer user_data)
{
  return GST_RTSP_FILTER_REMOVE;
}

/* Stops serving: closes every client and takes every media pipeline to
 * NULL before the process exits, so no streaming thread (a diffusion step
 * half done) outlives the objects it uses. */
static void
shutdown_server (Server * s)
{
  gst_rtsp_server_client_filter (s->server, remove_client, NULL);
  if (s->eager_thread) {        /* never started */
    gst_rtsp_thread_stop (s->eager_thread);
    s->eager_thread = NULL;
  }
  if (s->eager) {
    gst_rtsp_media_unprepare (s->eager);
    g_object_unref (s->eager);
    s->eager = NULL;
  }
  for (;;) {
    GstRTSPMedia *media = NULL;

    g_mutex_lock (&s->lock);
    if (s->medias) {
      media = s->medias->data;
      s->medias = g_list_delete_link (s->medias, s->medias);
    }
    g_mutex_unlock (&s->lock);
    if (!media)
      break;
    gst_rtsp_media_unprepare (media);
    g_object_unref (media);
  }
}

static gboolean
on_signal (gpointer user_data)
{
  Server *s = user_data;

  g_main_loop_quit (s->loop);
  return G_SOURCE_CONTINUE;     /* removed in main () */
}

static void
on_client_closed (GstRTSPClient * client, gpointer user_data)
{
  Server *s = user_data;

  s->clients_closed++;
  g_printerr ("avatar-rtsp-server: client %d disconnected\n",
      s->clients_closed);
  if (s->max_clients > 0 && s->clients_closed >= s->max_clients)
    g_main_loop_quit (s->loop);
}

static gboolean
unref_later (gpointer media)
{
  g_object_unref (media);
  return G_SOURCE_REMOVE;
}

/* A media that stopped by itself (its last client left) is forgotten. */
static void
on_media_unprepared (GstRTSPMedia * media, gpointer user_data)
{
  Server *s = user_data;
  GList *link;

  g_mutex_lock (&s->lock);
  link = g_list_find (s->medias, media);
  if (link) {
    s->medias = g_list_delete_link (s->medias, link);
    g_idle_add (unref_later, media);    /* not inside its own signal */
  }
  g_mutex_unlock (&s->lock);
}

/* A client joining a running stream can decode from the next key frame
 * only: ask the encoder for one now. The event goes upstream from the
 * payloader to the encoder. */
static void
on_play_request (GstRTSPClient * client, GstRTSPContext * ctx,
    gpointer user_data)
{
  GstElement *element, *pay0;
  GstPad *pad;

  if (!ctx->media)
    return;
  element = gst_rtsp_media_get_element (ctx->media);
  pay0 = gst_bin_get_by_name (GST_BIN (element), "pay0");
  if (pay0 && (pad = gst_element_get_static_pad (pay0, "src"))) {
    gst_pad_send_event (pad, gst_video_event_new_upstream_force_key_unit
        (GST_CLOCK_TIME_NONE, TRUE, 0));
    gst_object_unref (pad);
  }
  if (pay0)
    gst_object_unref (pay0);
  gst_object_unref (element);
}

static void
on_client_connected (GstRTSPServer * server, GstRTSPClient * client,
    gpointer user_data)
{
  GstRTSPConnection *conn = gst_rtsp_client_get_connection (client);

  g_printerr ("avatar-rtsp-server: client connected from %s\n",
      conn ? gst_rtsp_connection_get_ip (conn) : "?");
  g_signal_connect (client, "closed", G_CALLBACK (on_client_closed),
      user_data);
  g_signal_connect (client, "play-request", G_CALLBACK (on_play_request),
      NULL);
}

/* The URL line on stdout means: clients can connect and get frames now
 * (the served pipeline runs, and the render pipeline, if any, has its first
 * frame out). Called in the main thread whenever one of them gets ready. */
static gboolean
print_url (gpointer user_data)
{
  Server *s = user_data;

  if (s->url_printed || (s->eager && !g_atomic_int_get (&s->ready))
      || (s->render && !g_atomic_int_get (&s->render_ready)))
    return G_SOURCE_REMOVE;
  s->url_printed = TRUE;
  printf ("%s\n", s->url);
  fflush (stdout);
  g_printerr ("avatar-rtsp-server: ready at %s\n", s->url);
  return G_SOURCE_REMOVE;
}

static void
on_eager_prepared (GstRTSPMedia * media, gpointer user_data)
{
  Server *s = user_data;

  if (g_atomic_int_compare_and_exchange (&s->ready, 0, 1))
    g_idle_add (print_url, s);
}

static gboolean
eager_failed (gpointer user_data)
{
  Server *s = user_data;

  g_printerr ("avatar-rtsp-server: the served pipeline did not start: it "
      "failed, or had no frame out within gst-rtsp-server's 20 s (run the "
      "slow part with --render)\n");
  s->exit_code = 1;
  g_main_loop_quit (s->loop);
  return G_SOURCE_REMOVE;
}

static void
on_eager_unprepared (GstRTSPMedia * media, gpointer user_data)
{
  Server *s = user_data;

  if (!g_atomic_int_get (&s->ready))
    g_idle_add (eager_failed, s);
}

/* A pipeline error while a client watches: printed here (the client sees
 * the stream end). Called from the thread that posts it. */
static void
on_media_error (GstBus * bus, GstMessage * msg, gpointer user_data)
{
  GError *err = NULL;
  gchar *dbg = NULL;

  gst_message_parse_error (msg, &err, &dbg);
  g_printerr ("avatar-rtsp-server: ERROR from %s: %s\n%s%s",
      GST_OBJECT_NAME (msg->src), err->message, dbg ? dbg : "",
      dbg ? "\n" : "");
  g_clear_error (&err);
  g_free (dbg);
}

static void
on_media_configure (GstRTSPMediaFactory * factory, GstRTSPMedia * media,
    gpointer user_data)
{
  Server *s = user_data;
  GstElement *element = gst_rtsp_media_get_element (media);
  GstElement *top = element;
  GstBus *bus;

  /* The media's element sits in the media's pipeline, whose bus
   * gst-rtsp-server watches itself: a second watch would steal its
   * messages, so listen to the synchronous emission instead. */
  while (GST_OBJECT_PARENT (top))
    top = GST_ELEMENT (GST_OBJECT_PARENT (top));
  bus = gst_element_get_bus (top);
  if (bus) {
    gst_bus_enable_sync_message_emission (bus);
    g_signal_connect (bus, "sync-message::error",
        G_CALLBACK (on_media_error), NULL);
    gst_object_unref (bus);
  }
  gst_object_unref (element);
  g_mutex_lock (&s->lock);
  s->medias = g_list_prepend (s->medias, g_object_ref (media));
  g_mutex_unlock (&s->lock);
  g_signal_connect (media, "unprepared", G_CALLBACK (on_media_unprepared), s);
  g_printerr ("avatar-rtsp-server: pipeline created\n");
}

/* Starts the shared media (once). */
static gboolean
prepare_eager (Server * s)
{
  GstRTSPThread *thread = s->eager_thread;

  if (!s->eager || !thread)
    return TRUE;
  s->eager_thread = NULL;
  g_printerr ("avatar-rtsp-server: starting the served pipeline; the URL is "
      "printed when its first frame is out\n");
  if (!gst_rtsp_media_prepare (s->eager, thread)) {
    g_printerr ("avatar-rtsp-server: the served pipeline could not start\n");
    s->exit_code = 1;
    g_main_loop_quit (s->loop);
    return FALSE;
  }
  return TRUE;
}

/* ---- the --render pipeline ---------------------------------------------- */

static gboolean
render_ready (gpointer user_data)
{
  Server *s = user_data;

  g_printerr ("avatar-rtsp-server: render pipeline: first frame out\n");
  if (prepare_eager (s))
    print_url (s);
  return G_SOURCE_REMOVE;
}

static GstPadProbeReturn
render_first_frame (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  Server *s = user_data;

  if (g_atomic_int_compare_and_exchange (&s->render_ready, 0, 1))
    g_idle_add (render_ready, s);
  return GST_PAD_PROBE_REMOVE;
}

static gboolean
on_render_bus (GstBus * bus, GstMessage * msg, gpointer user_data)
{
  Server *s = user_data;

  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    GError *err = NULL;
    gchar *dbg = NULL;

    gst_message_parse_error (msg, &err, &dbg);
    g_printerr ("avatar-rtsp-server: render pipeline: ERROR from %s: %s\n%s%s",
        GST_OBJECT_NAME (msg->src), err->message, dbg ? dbg : "",
        dbg ? "\n" : "");
    g_clear_error (&err);
    g_free (dbg);
    s->exit_code = 1;
    g_main_loop_quit (s->loop);
  } else if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS) {
    g_printerr ("avatar-rtsp-server: render pipeline: end of stream (the "
        "served stream keeps its last frame)\n");
  }
  return TRUE;
}

/* Builds the render pipeline and watches its sink's first frame. */
static gboolean
start_render (Server * s, const gchar * desc)
{
  GError *err = NULL;
  GstElement *sink = NULL;
  GstIterator *it;
  GValue item = G_VALUE_INIT;
  GstBus *bus;
  GstPad *pad;

  s->render = gst_parse_launch (desc, &err);
  if (!s->render || err) {
    g_printerr ("avatar-rtsp-server: bad --render description: %s\n",
        err ? err->message : "unknown error");
    g_clear_error (&err);
    return FALSE;
  }
  if (!GST_IS_BIN (s->render)) {
    g_printerr ("avatar-rtsp-server: --render needs a pipeline ending in a "
        "sink (e.g. intervideosink channel=avatar)\n");
    return FALSE;
  }
  it = gst_bin_iterate_sinks (GST_BIN (s->render));
  if (gst_iterator_next (it, &item) == GST_ITERATOR_OK) {
    sink = g_value_dup_object (&item);
    g_value_reset (&item);
  }
  gst_iterator_free (it);
  if (!sink || !(pad = gst_element_get_static_pad (sink, "sink"))) {
    g_printerr ("avatar-rtsp-server: the --render pipeline has no sink\n");
    if (sink)
      gst_object_unref (sink);
    return FALSE;
  }
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, render_first_frame, s,
      NULL);
  gst_object_unref (pad);
  gst_object_unref (sink);
  bus = gst_element_get_bus (s->render);
  gst_bus_add_watch (bus, on_render_bus, s);
  gst_object_unref (bus);
  if (gst_element_set_state (s->render,
          GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    g_printerr ("avatar-rtsp-server: the --render pipeline could not "
        "start\n");
    return FALSE;
  }
  return TRUE;
}

int
main (int argc, char **argv)
{
  Server s = { 0 };
  gint port = 8554;
  gchar *address = NULL, *mount = NULL, *render = NULL;
  gboolean not_shared = FALSE, lazy = FALSE;
  gchar **rest = NULL;
  GOptionEntry entries[] = {
    {"port", 'p', 0, G_OPTION_ARG_INT, &port,
        "TCP port to listen on; 0 = a free one (default: 8554)", "PORT"},
    {"address", 'a', 0, G_OPTION_ARG_STRING, &address,
        "Address to listen on (default: 0.0.0.0, every interface)", "ADDR"},
    {"mount", 'm', 0, G_OPTION_ARG_STRING, &mount,
        "Path of the stream in the URL (default: /avatar)", "PATH"},
    {"not-shared", 0, 0, G_OPTION_ARG_NONE, &not_shared,
        "Run one pipeline per client instead of one shared by all", NULL},
    {"render", 'r', 0, G_OPTION_ARG_STRING, &render,
          "A second pipeline, run from launch in this process, that feeds "
          "the served one (e.g. '... ! latentfuse ! intervideosink "
          "channel=avatar' with 'intervideosrc channel=avatar ! ...' "
          "served): the served pipeline then starts at once, however slow "
          "the render is", "DESCRIPTION"},
    {"lazy", 0, 0, G_OPTION_ARG_NONE, &lazy,
          "Start the shared pipeline with the first client, not at launch "
          "(gst-rtsp-server then gives it 20 s to produce its first frame)",
        NULL},
    {"max-clients", 0, 0, G_OPTION_ARG_INT, &s.max_clients,
        "Exit after this many clients have disconnected; 0 = never "
          "(default: 0)", "N"},
    {G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_STRING_ARRAY, &rest, NULL,
        "PIPELINE-DESCRIPTION"},
    {NULL}
  };
  GOptionContext *ctx;
  GError *err = NULL;
  GstRTSPServer *server;
  GstRTSPMountPoints *mounts;
  GstRTSPMediaFactory *factory;
  GstElement *check, *pay0;
  gchar *desc, *service;
  const gchar *host;
  guint server_id, sig_int, sig_term;

  ctx = g_option_context_new ("[--] PIPELINE-DESCRIPTION");
  g_option_context_set_summary (ctx,
      "Serves a GStreamer pipeline ending in an RTP payloader named pay0 "
      "over RTSP.");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, gst_init_get_option_group ());
  if (!g_option_context_parse (ctx, &argc, &argv, &err)) {
    g_printerr ("avatar-rtsp-server: %s\n", err->message);
    return 2;
  }
  g_option_context_free (ctx);
  if (!rest || !rest[0]) {
    g_printerr ("avatar-rtsp-server: no pipeline description given "
        "(see --help)\n");
    return 2;
  }
  if (port < 0 || port > 65535 || s.max_clients < 0) {
    g_printerr ("avatar-rtsp-server: --port must be 0-65535 and "
        "--max-clients >= 0\n");
    return 2;
  }
  if (!mount)
    mount = g_strdup ("/avatar");
  if (mount[0] != '/') {
    g_printerr ("avatar-rtsp-server: --mount must start with '/' (got "
        "'%s')\n", mount);
    return 2;
  }

  /* The factory parses the description only when the first client comes;
   * parse it once now so that a typo fails here, not at connect time. */
  check = gst_parse_launchv ((const gchar **) rest, &err);
  if (!check || err) {
    g_printerr ("avatar-rtsp-server: bad pipeline description: %s\n",
        err ? err->message : "unknown error");
    return 1;
  }
  pay0 = GST_IS_BIN (check) ? gst_bin_get_by_name (GST_BIN (check), "pay0")
      : NULL;
  if (!pay0) {
    g_printerr ("avatar-rtsp-server: the pipeline needs an RTP payloader "
        "named pay0 (e.g. rtph264pay name=pay0 pt=96)\n");
    gst_object_unref (check);
    return 1;
  }
  gst_object_unref (pay0);
  gst_object_unref (check);
  {
    /* gst_rtsp_media_factory_set_launch takes one string, parsed like a
     * single gst-launch argument: quote every word that holds a space. */
    GString *str = g_string_new ("( ");
    for (gchar ** w = rest; *w; w++) {
      if (strchr (*w, ' ') && !strchr (*w, '"')) {
        const gchar *eq = strchr (*w, '=');
        if (eq)
          g_string_append_printf (str, "%.*s\"%s\" ", (int) (eq - *w + 1), *w,
              eq + 1);
        else
          g_string_append_printf (str, "\"%s\" ", *w);
      } else {
        g_string_append_printf (str, "%s ", *w);
      }
    }
    g_string_append (str, ")");
    desc = g_string_free (str, FALSE);
  }

  g_mutex_init (&s.lock);
  s.loop = g_main_loop_new (NULL, FALSE);
  server = s.server = gst_rtsp_server_new ();
  service = g_strdup_printf ("%d", port);
  gst_rtsp_server_set_service (server, service);
  g_free (service);
  gst_rtsp_server_set_address (server, address ? address : "0.0.0.0");
  g_signal_connect (server, "client-connected",
      G_CALLBACK (on_client_connected), &s);

  factory = gst_rtsp_media_factory_new ();
  gst_rtsp_media_factory_set_launch (factory, desc);
  gst_rtsp_media_factory_set_shared (factory, !not_shared);
  g_signal_connect (factory, "media-configure",
      G_CALLBACK (on_media_configure), &s);
  mounts = gst_rtsp_server_get_mount_points (server);
  gst_rtsp_mount_points_add_factory (mounts, mount, factory);
  g_object_unref (mounts);

  server_id = gst_rtsp_server_attach (server, NULL);
  if (server_id == 0) {
    g_printerr ("avatar-rtsp-server: could not listen on %s:%d (port in "
        "use?)\n", address ? address : "0.0.0.0", port);
    return 1;
  }
  sig_int = g_unix_signal_add (SIGINT, on_signal, &s);
  sig_term = g_unix_signal_add (SIGTERM, on_signal, &s);

  host = address && strcmp (address, "0.0.0.0") != 0 ? address : "127.0.0.1";
  s.url = g_strdup_printf ("rtsp://%s:%d%s", host,
      gst_rtsp_server_get_bound_port (server), mount);
  if (render) {
    g_printerr ("avatar-rtsp-server: rendering %s\n", render);
    if (!start_render (&s, render))
      return 1;
  }
  g_printerr ("avatar-rtsp-server: serving %s\n", desc);
  if (!not_shared && !lazy) {
    /* Start the one shared pipeline now, like a TV channel: a client
     * DESCRIBE waits at most 20 s for a pipeline to preroll, and the first
     * frame of a diffusion pipeline on a CPU can take longer than that.
     * The factory keeps this media for every client of the URL; holding it
     * prepared keeps it running between clients. */
    GstRTSPUrl *url = NULL;
    GstRTSPThreadPool *pool = gst_rtsp_server_get_thread_pool (server);
    GstRTSPThread *thread;

    gst_rtsp_url_parse (s.url, &url);
    s.eager = url ? gst_rtsp_media_factory_construct (factory, url) : NULL;
    thread = gst_rtsp_thread_pool_get_thread (pool,
        GST_RTSP_THREAD_TYPE_MEDIA, NULL);
    g_object_unref (pool);
    if (!s.eager || !thread) {
      g_printerr ("avatar-rtsp-server: could not create the media\n");
      return 1;
    }
    gst_rtsp_url_free (url);
    g_signal_connect (s.eager, "prepared", G_CALLBACK (on_eager_prepared), &s);
    g_signal_connect (s.eager, "unprepared", G_CALLBACK (on_eager_unprepared),
        &s);
    s.eager_thread = thread;
    /* With a render pipeline, the served one starts on its first frame
     * (render_ready), so that it prerolls with an avatar frame. */
    if (!s.render && !prepare_eager (&s))
      return 1;
  } else {
    print_url (&s);
  }

  g_main_loop_run (s.loop);
  g_printerr ("avatar-rtsp-server: stopping\n");
  shutdown_server (&s);
  if (s.render) {
    gst_element_set_state (s.render, GST_STATE_NULL);
    gst_object_unref (s.render);
  }

  g_source_remove (sig_int);
  g_source_remove (sig_term);
  g_source_remove (server_id);
  g_object_unref (server);
  g_main_loop_unref (s.loop);
  g_free (desc);
  g_mutex_clear (&s.lock);
  g_free (s.url);
  g_free (render);
  g_free (address);
  g_free (mount);
  g_strfreev (rest);
  return s.exit_code;
}
