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
 * then `ffplay rtsp://127.0.0.1:8554/avatar`. By default one pipeline is
 * shared by every client (the diffusion runs once, however many watch).
 * With --port 0 the system picks a free port. When the server listens it
 * prints exactly one line `rtsp://HOST:PORT/MOUNT` on stdout, so scripts can
 * wait for that line and read the port from it. SIGINT or SIGTERM stops it.
 */
#include <gst/gst.h>
#include <gst/rtsp-server/rtsp-server.h>
#include <glib-unix.h>

#include <stdio.h>
#include <string.h>

typedef struct
{
  GMainLoop *loop;
  GstRTSPServer *server;
  GList *medias;                /* prepared medias (refs), stopped at exit */
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
  while (s->medias) {
    GstRTSPMedia *media = s->medias->data;

    s->medias = g_list_delete_link (s->medias, s->medias);
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
  GList *link = g_list_find (s->medias, media);

  if (link) {
    s->medias = g_list_delete_link (s->medias, link);
    g_idle_add (unref_later, media);    /* not inside its own signal */
  }
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
  s->medias = g_list_prepend (s->medias, g_object_ref (media));
  g_signal_connect (media, "unprepared", G_CALLBACK (on_media_unprepared), s);
}

int
main (int argc, char **argv)
{
  Server s = { 0 };
  gint port = 8554;
  gchar *address = NULL, *mount = NULL;
  gboolean not_shared = FALSE;
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
  printf ("rtsp://%s:%d%s\n", host, gst_rtsp_server_get_bound_port (server),
      mount);
  fflush (stdout);
  g_printerr ("avatar-rtsp-server: serving %s\n", desc);

  g_main_loop_run (s.loop);
  g_printerr ("avatar-rtsp-server: stopping\n");
  shutdown_server (&s);

  g_source_remove (sig_int);
  g_source_remove (sig_term);
  g_source_remove (server_id);
  g_object_unref (server);
  g_main_loop_unref (s.loop);
  g_free (desc);
  g_free (address);
  g_free (mount);
  g_strfreev (rest);
  return 0;
}
