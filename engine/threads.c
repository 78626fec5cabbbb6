/* The engine's thread pool (see threads.h).
 *
 * One job at a time. The owner (the application thread whose
 * ae_parallel_for got the pool) writes the job, then opens it by making
 * `gen` odd. Workers attach (`joined`), claim ranges from `next` until none
 * is left, and detach. When the owner finds no range left it closes the
 * job (`gen` even) and waits until no worker is attached; only then may the
 * job be rewritten. A worker attaches before it checks that the job it saw
 * is still open; the owner closes before it reads `joined`. Both use
 * sequentially consistent atomics, so either the owner sees the worker
 * attached (and waits for it) or the worker sees the job closed (and
 * backs off): a worker never touches a finished job.
 *
 * Sleeping: an idle worker spins for spin_ns, then registers in `sleepers`
 * under the lock and waits on `wake`; the owner broadcasts only when
 * `sleepers` is not 0. The owner waiting for workers does the same with
 * `owner_waiting` and `done`. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "threads.h"

#define AE_SPIN_US_DEFAULT 50

typedef struct {
  pthread_t tid;
  int index;                    /* the `thread` its ranges get, >= 1 */
  atomic_bool quit;
} Worker;

/* Written by the owner while no worker is attached. */
typedef struct {
  AeRangeFn fn;
  void *ctx;
  int64_t n;
  int64_t chunk;                /* <= 0: n_ranges equal ranges */
  int64_t n_ranges;
  int width;                    /* threads 0 .. width-1 take part */
} Job;

static struct {
  pthread_mutex_t lock;
  pthread_cond_t wake;          /* idle workers wait here */
  pthread_cond_t done;          /* the owner waits here for detaches */
  atomic_uint_fast64_t gen;     /* odd: job open */
  atomic_int_fast64_t next;     /* next range to claim */
  atomic_int joined;            /* workers attached to the job */
  atomic_int sleepers;
  atomic_bool owner_waiting;
  atomic_bool busy;             /* an application thread owns the pool */
  atomic_int n_workers;
  Job job;
  Worker **workers;             /* owner only */
  int cap_workers;
  int64_t spin_ns;
} pool = {
  .lock = PTHREAD_MUTEX_INITIALIZER,
  .wake = PTHREAD_COND_INITIALIZER,
  .done = PTHREAD_COND_INITIALIZER,
};

static atomic_int ae_n_threads;
static _Thread_local bool in_parallel;
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static bool pool_acquire (void);
static void pool_release (void);
static void stop_last_worker (void);

static void
blas_single (void)
{
  /* OpenBLAS always runs on the calling thread; ae_sgemm splits large
   * products over our threads instead. Two pools on two cores would
   * fight: OpenBLAS workers spin for a long while after each call. */
  openblas_set_num_threads (1);
}

void
ae_threads_init (int n)
{
  if (n <= 0) {
    const char *env = getenv ("AE_NUM_THREADS");
    n = env ? atoi (env) : 0;
  }
  if (n <= 0)
    n = (int) sysconf (_SC_NPROCESSORS_ONLN);
  if (n <= 0)
    n = 1;
  if (n > AE_MAX_THREADS)
    n = AE_MAX_THREADS;
  atomic_store (&ae_n_threads, n);
  pthread_once (&blas_once, blas_single);
  /* Fewer threads: let the surplus workers go now, unless a loop is
   * running (then the next loop does it). */
  if (!in_parallel && pool_acquire ()) {
    while (atomic_load (&pool.n_workers) > n - 1)
      stop_last_worker ();
    pool_release ();
  }
}

int
ae_threads_count (void)
{
  int n = atomic_load (&ae_n_threads);

  if (n <= 0) {
    ae_threads_init (0);
    n = atomic_load (&ae_n_threads);
  }
  return n;
}

bool
ae_in_parallel (void)
{
  return in_parallel;
}

int
ae_threads_workers (void)
{
  return atomic_load (&pool.n_workers);
}

static inline void
cpu_relax (void)
{
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause ();
#elif defined(__aarch64__)
  __asm__ __volatile__ ("yield");
#endif
}

static int64_t
now_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Spins up to pool.spin_ns until done (ctx) is true; false if it is not. */
static bool
spin_until (bool (*done) (void *), void *ctx)
{
  int64_t end;

  if (done (ctx))
    return true;
  if (pool.spin_ns <= 0)
    return false;
  end = now_ns () + pool.spin_ns;
  for (unsigned i = 1;; i++) {
    cpu_relax ();
    if (done (ctx))
      return true;
    /* The clock costs tens of ns: look at it every 32 pauses. */
    if (i % 32 == 0 && now_ns () >= end)
      return false;
  }
}

/* ---- workers ---- */

typedef struct {
  const Worker *w;
  uint_fast64_t seen;
  uint_fast64_t found;           /* the open gen that ended the wait */
} WaitJob;

static bool
job_ready (void *p)
{
  WaitJob *wj = p;
  uint_fast64_t g = atomic_load (&pool.gen);

  wj->found = g;
  return ((g & 1) && g != wj->seen) || atomic_load (&wj->w->quit);
}

/* Waits for an open job other than `seen` (or quit); returns the gen it
 * found open. Not a fresh load: by now that job may be closed, and a
 * worker that checked itself in against a closed gen would read a job
 * that its owner is free to rewrite. */
static uint_fast64_t
wait_job (const Worker * w, uint_fast64_t seen)
{
  WaitJob wj = { w, seen, 0 };

  if (!spin_until (job_ready, &wj)) {
    pthread_mutex_lock (&pool.lock);
    atomic_fetch_add (&pool.sleepers, 1);
    while (!job_ready (&wj))
      pthread_cond_wait (&pool.wake, &pool.lock);
    atomic_fetch_sub (&pool.sleepers, 1);
    pthread_mutex_unlock (&pool.lock);
  }
  return wj.found;
}

static void
range_of (const Job * job, int64_t r, int64_t * begin, int64_t * end)
{
  if (job->chunk > 0) {
    *begin = r * job->chunk;
    *end = job->n - *begin < job->chunk ? job->n : *begin + job->chunk;
  } else {
    *begin = r * job->n / job->n_ranges;
    *end = (r + 1) * job->n / job->n_ranges;
  }
}

static void
run_ranges (const Job * job, int thread)
{
  for (;;) {
    int64_t r = atomic_fetch_add_explicit (&pool.next, 1,
        memory_order_relaxed);
    int64_t begin, end;

    if (r >= job->n_ranges)
      return;
    range_of (job, r, &begin, &end);
    job->fn (job->ctx, begin, end, thread);
  }
}

static void
detach (void)
{
  if (atomic_fetch_sub (&pool.joined, 1) == 1
      && atomic_load (&pool.owner_waiting)) {
    pthread_mutex_lock (&pool.lock);
    pthread_cond_broadcast (&pool.done);
    pthread_mutex_unlock (&pool.lock);
  }
}

static void *
worker_main (void *arg)
{
  Worker *w = arg;
  uint_fast64_t seen = 0;

  /* Engine calls made by a loop body on a worker run inline. */
  in_parallel = true;
  for (;;) {
    uint_fast64_t g = wait_job (w, seen);

    if (atomic_load (&w->quit))
      return NULL;
    seen = g;
    atomic_fetch_add (&pool.joined, 1);
    /* Still the job we saw? Else it may be finished (or rewritten). */
    if (atomic_load (&pool.gen) == g && w->index < pool.job.width)
      run_ranges (&pool.job, w->index);
    detach ();
  }
}

/* ---- the pool, owner side ---- */

static void
wake_workers (void)
{
  pthread_mutex_lock (&pool.lock);
  pthread_cond_broadcast (&pool.wake);
  pthread_mutex_unlock (&pool.lock);
}

static bool
start_worker (void)
{
  int n = atomic_load (&pool.n_workers);
  Worker *w;

  if (n == pool.cap_workers) {
    int cap = pool.cap_workers ? 2 * pool.cap_workers : 8;
    Worker **ws = realloc (pool.workers, (size_t) cap * sizeof *ws);
    if (ws == NULL)
      return false;
    pool.workers = ws;
    pool.cap_workers = cap;
  }
  w = calloc (1, sizeof *w);
  if (w == NULL)
    return false;
  w->index = n + 1;
  atomic_init (&w->quit, false);
  if (pthread_create (&w->tid, NULL, worker_main, w) != 0) {
    free (w);
    return false;
  }
  pool.workers[n] = w;
  atomic_store (&pool.n_workers, n + 1);
  return true;
}

static void
stop_last_worker (void)
{
  int n = atomic_load (&pool.n_workers);
  Worker *w = pool.workers[n - 1];

  atomic_store (&w->quit, true);
  wake_workers ();
  pthread_join (w->tid, NULL);
  free (w);
  atomic_store (&pool.n_workers, n - 1);
}

static bool
pool_acquire (void)
{
  return !atomic_exchange_explicit (&pool.busy, true, memory_order_acquire);
}

static void
pool_release (void)
{
  atomic_store_explicit (&pool.busy, false, memory_order_release);
}

static void
shutdown_at_exit (void)
{
  /* A loop still running in another thread keeps its workers: they end
   * with the process. */
  if (in_parallel || !pool_acquire ())
    return;
  while (atomic_load (&pool.n_workers) > 0)
    stop_last_worker ();
  pool_release ();
}

static void
pool_setup (void)
{
  const char *env = getenv ("AE_SPIN_US");
  long us = AE_SPIN_US_DEFAULT;

  if (env && *env) {
    char *end;
    long v = strtol (env, &end, 10);
    if (*end == '\0' && v >= 0 && v <= 1000000)
      us = v;
  }
  pool.spin_ns = (int64_t) us * 1000;
  atexit (shutdown_at_exit);
}

/* Matches the workers to ae_threads_count() (owner only); returns the
 * width a job can have now. */
static int
pool_resize (int width)
{
  int want = ae_threads_count () - 1;

  pthread_once (&pool_once, pool_setup);
  while (atomic_load (&pool.n_workers) > want)
    stop_last_worker ();
  while (atomic_load (&pool.n_workers) < want && start_worker ())
    continue;
  if (width > atomic_load (&pool.n_workers) + 1)
    width = atomic_load (&pool.n_workers) + 1;
  return width;
}

static bool
none_joined (void *unused)
{
  return atomic_load (&pool.joined) == 0;
}

static void
wait_detached (void)
{
  if (spin_until (none_joined, NULL))
    return;
  pthread_mutex_lock (&pool.lock);
  atomic_store (&pool.owner_waiting, true);
  while (atomic_load (&pool.joined) > 0)
    pthread_cond_wait (&pool.done, &pool.lock);
  atomic_store (&pool.owner_waiting, false);
  pthread_mutex_unlock (&pool.lock);
}

/* Runs one job on the pool the caller owns. */
static void
run_job (int64_t n, int64_t chunk, int width, AeRangeFn fn, void *ctx)
{
  uint_fast64_t g = atomic_load (&pool.gen);

  pool.job.fn = fn;
  pool.job.ctx = ctx;
  pool.job.n = n;
  pool.job.chunk = chunk;
  pool.job.n_ranges = chunk > 0 ? (n + chunk - 1) / chunk :
      (n < width ? n : width);
  pool.job.width = width;
  atomic_store_explicit (&pool.next, 0, memory_order_relaxed);
  atomic_store (&pool.gen, g + 1);      /* open */
  if (atomic_load (&pool.sleepers) > 0)
    wake_workers ();
  in_parallel = true;
  run_ranges (&pool.job, 0);
  in_parallel = false;
  atomic_store (&pool.gen, g + 2);      /* closed */
  wait_detached ();
}

void
ae_parallel_for (int64_t n, int64_t chunk, int max_threads, AeRangeFn fn,
    void *ctx)
{
  int width = ae_threads_count ();
  int64_t n_ranges;

  if (n <= 0)
    return;
  if (max_threads > 0 && max_threads < width)
    width = max_threads;
  n_ranges = chunk > 0 ? (n + chunk - 1) / chunk : n;
  if (width > n_ranges)
    width = (int) n_ranges;
  if (width > 1 && !in_parallel && pool_acquire ()) {
    width = pool_resize (width);
    if (width > 1) {
      run_job (n, chunk, width, fn, ctx);
      pool_release ();
      return;
    }
    pool_release ();
  }
  fn (ctx, 0, n, 0);
}

void
ae_threads_shutdown (void)
{
  if (in_parallel)
    return;
  while (!pool_acquire ()) {
    struct timespec ts = { 0, 100000 };
    nanosleep (&ts, NULL);
  }
  while (atomic_load (&pool.n_workers) > 0)
    stop_last_worker ();
  pool_release ();
}

void
ae_blas_single_begin (void)
{
  ae_threads_count ();          /* first use sets OpenBLAS to 1 thread */
}

void
ae_blas_single_end (void)
{
}
