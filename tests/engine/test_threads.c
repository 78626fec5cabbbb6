/* The engine's thread pool (engine/threads.c): every index of a parallel
 * loop runs exactly once whatever n, chunk and thread count; ranges that
 * run at the same time have different thread numbers below the width;
 * nested loops run inline; several application threads may run loops at
 * once while another changes the thread count; shutdown and restart; idle
 * workers sleep instead of spinning. Registered twice: with the default
 * spin and with AE_SPIN_US=0 (every wait goes to sleep). */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "test_util.h"
#include "threads.h"

typedef struct {
  atomic_int *count;            /* per index */
  atomic_int busy[AE_MAX_THREADS];      /* per thread number: in a range */
  atomic_int seen[AE_MAX_THREADS];      /* per thread number: ran a range */
  atomic_int bad;               /* ranges breaking a rule */
  int64_t n, chunk;
  int width;                    /* thread numbers must stay below it */
  int sleep_us;                 /* per range, to let workers join */
  int worker_sleep_us;          /* more for ranges on workers */
} Loop;

static void
sleep_us (int us)
{
  struct timespec ts = { us / 1000000, (long) (us % 1000000) * 1000 };

  nanosleep (&ts, NULL);
}

static void
count_range (void *ctx, int64_t begin, int64_t end, int thread)
{
  Loop *l = ctx;
  bool whole = begin == 0 && end == l->n && thread == 0;

  if (thread < 0 || thread >= l->width || begin < 0 || end > l->n
      || begin >= end)
    atomic_fetch_add (&l->bad, 1);
  else if (atomic_exchange (&l->busy[thread], 1) != 0)
    atomic_fetch_add (&l->bad, 1);      /* two ranges on one thread number */
  /* A dynamic range is at most chunk long (unless the loop ran inline). */
  if (l->chunk > 0 && end - begin > l->chunk && !whole)
    atomic_fetch_add (&l->bad, 1);
  /* Work first, count last: a caller returning before its workers are
   * done sees indices not counted yet. */
  if (l->sleep_us)
    sleep_us (l->sleep_us);
  if (l->worker_sleep_us && thread > 0)
    sleep_us (l->worker_sleep_us);
  for (int64_t i = begin; i < end && i < l->n; i++)
    atomic_fetch_add (&l->count[i], 1);
  if (thread >= 0 && thread < l->width) {
    atomic_store (&l->seen[thread], 1);
    atomic_store (&l->busy[thread], 0);
  }
}

static Loop *
loop_new (int64_t n, int64_t chunk, int width)
{
  Loop *l = g_new0 (Loop, 1);

  l->count = g_new0 (atomic_int, n ? n : 1);
  l->n = n;
  l->chunk = chunk;
  l->width = width;
  return l;
}

static void
loop_free (Loop * l)
{
  g_free (l->count);
  g_free (l);
}

/* Runs one loop and returns how many thread numbers took part, or -1 when
 * an index ran other than once or a range broke a rule. */
static int
run_loop_slow (int64_t n, int64_t chunk, int max_threads, int sleep,
    int worker_sleep)
{
  /* max_threads > 0 bounds the thread numbers even while another thread
   * changes the count. */
  int width = max_threads > 0 ? max_threads : ae_threads_count ();
  Loop *l;
  int ok = 1, used = 0;

  l = loop_new (n, chunk, width);
  l->sleep_us = sleep;
  l->worker_sleep_us = worker_sleep;
  ae_parallel_for (n, chunk, max_threads, count_range, l);
  for (int64_t i = 0; i < n; i++)
    if (atomic_load (&l->count[i]) != 1)
      ok = 0;
  for (int t = 0; t < width; t++)
    used += atomic_load (&l->seen[t]);
  if (atomic_load (&l->bad) != 0)
    ok = 0;
  loop_free (l);
  return ok ? used : -1;
}

static int
run_loop (int64_t n, int64_t chunk, int max_threads, int sleep)
{
  return run_loop_slow (n, chunk, max_threads, sleep, 0);
}

static void
test_coverage (void)
{
  const int64_t ns[] = { 0, 1, 2, 3, 7, 64, 1000, 100003 };
  const int64_t chunks[] = { 0, 1, 3, 64 };
  const int threads[] = { 1, 2, 3, 4, 8 };
  const int maxes[] = { 0, 1, 2 };

  for (size_t ti = 0; ti < G_N_ELEMENTS (threads); ti++) {
    ae_threads_init (threads[ti]);
    for (size_t ni = 0; ni < G_N_ELEMENTS (ns); ni++)
      for (size_t ci = 0; ci < G_N_ELEMENTS (chunks); ci++)
        for (size_t mi = 0; mi < G_N_ELEMENTS (maxes); mi++) {
          int used = run_loop (ns[ni], chunks[ci], maxes[mi], 0);
          CHECK (used >= 0, "threads %d n %lld chunk %lld max %d: an index "
              "ran other than once or a range broke a rule", threads[ti],
              (long long) ns[ni], (long long) chunks[ci], maxes[mi]);
          CHECK (maxes[mi] != 1 || used <= 1, "max_threads 1 used %d "
              "threads", used);
        }
    /* The workers exist and take ranges: 32 ranges of 2 ms each leave
     * them 64 ms to wake up even on a loaded machine. */
    if (threads[ti] > 1) {
      int used = run_loop (32, 1, 0, 2000);
      CHECK (ae_threads_workers () == threads[ti] - 1, "%d workers for %d "
          "threads", ae_threads_workers (), threads[ti]);
      CHECK (used >= 2, "%d threads: only %d took part", threads[ti], used);
      /* Ranges on workers take 20 ms: the caller finishes the others long
       * before and must wait for them. */
      CHECK (run_loop_slow (16, 1, 0, 1000, 20000) >= 1, "%d threads: the "
          "caller returned before its workers were done", threads[ti]);
    }
  }
}

typedef struct {
  atomic_int count[16][100];
  atomic_int outer_flag_bad;
} Nested;

static void
inner_range (void *ctx, int64_t begin, int64_t end, int thread)
{
  atomic_int *row = ctx;

  for (int64_t i = begin; i < end; i++)
    atomic_fetch_add (&row[i], 1);
}

static void
outer_range (void *ctx, int64_t begin, int64_t end, int thread)
{
  Nested *nd = ctx;

  if (!ae_in_parallel ())
    atomic_fetch_add (&nd->outer_flag_bad, 1);
  for (int64_t o = begin; o < end; o++) {
    /* 1 ms per range: the caller, not only the workers, takes some. */
    sleep_us (1000);
    ae_parallel_for (100, 7, 0, inner_range, nd->count[o]);
  }
}

static void
test_nested (void)
{
  Nested *nd = g_new0 (Nested, 1);
  int bad = 0;

  ae_threads_init (3);
  CHECK (!ae_in_parallel (), "in a parallel loop outside of any");
  ae_parallel_for (16, 1, 0, outer_range, nd);
  for (int o = 0; o < 16; o++)
    for (int i = 0; i < 100; i++)
      bad += atomic_load (&nd->count[o][i]) != 1;
  CHECK (bad == 0, "nested: %d indices ran other than once", bad);
  CHECK (atomic_load (&nd->outer_flag_bad) == 0, "ae_in_parallel() false "
      "in a pool loop body");
  CHECK (!ae_in_parallel (), "still in a parallel loop after it");
  g_free (nd);
}

/* Application threads running loops at once (the elements' streaming
 * threads share one engine), one of them changing the thread count. */
typedef struct {
  int id;
  atomic_int failures;
  atomic_bool *stop;
} AppThread;

static void *
app_loops (void *arg)
{
  AppThread *a = arg;

  for (int it = 0; it < 300; it++) {
    int64_t n = 1 + (it * 37 + a->id * 101) % 5000;
    int64_t chunk = (it + a->id) % 3 == 0 ? 0 : 1 + it % 17;
    if (run_loop (n, chunk, it % 5 == 4 ? 2 : 4, 0) < 0)
      atomic_fetch_add (&a->failures, 1);
  }
  return NULL;
}

static void *
app_resize (void *arg)
{
  AppThread *a = arg;

  for (int it = 0; !atomic_load (a->stop); it++) {
    ae_threads_init (1 + it % 4);
    sleep_us (200);
  }
  return NULL;
}

static void
test_concurrent (void)
{
  enum { N_APP = 4 };
  AppThread apps[N_APP + 1];
  pthread_t tids[N_APP + 1];
  atomic_bool stop = false;

  ae_threads_init (3);
  for (int i = 0; i <= N_APP; i++) {
    apps[i].id = i;
    atomic_init (&apps[i].failures, 0);
    apps[i].stop = &stop;
    REQUIRE (pthread_create (&tids[i], NULL, i < N_APP ? app_loops :
            app_resize, &apps[i]) == 0, "pthread_create");
  }
  for (int i = 0; i < N_APP; i++)
    pthread_join (tids[i], NULL);
  atomic_store (&stop, true);
  pthread_join (tids[N_APP], NULL);
  for (int i = 0; i < N_APP; i++)
    CHECK (atomic_load (&apps[i].failures) == 0, "application thread %d: "
        "%d loops wrong", i, atomic_load (&apps[i].failures));
}

static void
test_resize_shutdown (void)
{
  ae_threads_init (4);
  CHECK (run_loop (1000, 10, 0, 0) >= 1, "4 threads");
  CHECK (ae_threads_workers () == 3, "%d workers for 4 threads",
      ae_threads_workers ());
  ae_threads_init (2);
  CHECK (ae_threads_workers () <= 1, "%d workers left after init (2)",
      ae_threads_workers ());
  CHECK (run_loop (1000, 0, 0, 0) >= 1, "2 threads");
  CHECK (ae_threads_workers () == 1, "%d workers for 2 threads",
      ae_threads_workers ());
  ae_threads_shutdown ();
  CHECK (ae_threads_workers () == 0, "%d workers after shutdown",
      ae_threads_workers ());
  ae_threads_shutdown ();       /* twice is harmless */
  ae_threads_init (3);
  CHECK (run_loop (32, 1, 0, 2000) >= 2, "no worker took part after "
      "shutdown and re-init");
  CHECK (ae_threads_workers () == 2, "%d workers for 3 threads",
      ae_threads_workers ());
  ae_threads_init (1);
  CHECK (ae_threads_workers () == 0, "%d workers left for 1 thread",
      ae_threads_workers ());
  CHECK (run_loop (1000, 1, 0, 0) == 1, "1 thread");
}

static double
cpu_seconds (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

/* The point of the pool: between loops its workers sleep. With libgomp's
 * default policy 3 idle workers burnt about 3 CPU-seconds per second. */
static void
test_idle_sleeps (void)
{
  double t0, used;

  ae_threads_init (4);
  CHECK (run_loop (100000, 0, 0, 0) >= 1, "4 threads");
  t0 = cpu_seconds ();
  sleep_us (300000);
  used = cpu_seconds () - t0;
  printf ("idle pool, 3 workers: %.1f ms CPU in 300 ms\n", used * 1e3);
  CHECK (used < 0.03, "idle workers used %.1f ms CPU in 300 ms", used * 1e3);
}

int
main (void)
{
  test_coverage ();
  test_nested ();
  test_concurrent ();
  test_resize_shutdown ();
  test_idle_sleeps ();
  ae_threads_shutdown ();
  return test_finish ("test_threads");
}
