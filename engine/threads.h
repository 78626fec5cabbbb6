/* Threading of the engine: its own thread pool.
 *
 * All parallel loops of the CPU ops (im2col, sgemm blocks, norms,
 * attention tiles, element-wise ops) go through ae_parallel_for(). OpenBLAS
 * always runs single-threaded on the calling thread; ae_sgemm splits large
 * products over the pool instead, so the cores are never shared by two
 * pools.
 *
 * Why not OpenMP: libgomp's idle workers spin for a long time by default
 * and the policy (OMP_WAIT_POLICY) can only be set in the environment
 * before libgomp is loaded, which an application embedding the plugin does
 * not do. Inside a GStreamer pipeline on a few cores the spinning workers
 * starved the other streaming threads. The pool's idle workers spin only
 * briefly (AE_SPIN_US, default 50 microseconds: long enough to catch the
 * next op of a forward pass) and then sleep on a condition variable.
 *
 * Environment:
 *   AE_NUM_THREADS  thread count when ae_threads_init() gets n <= 0
 *   AE_SPIN_US      how long (microseconds, 0..1000000) an idle worker, or
 *                   a caller waiting for the workers, spins before it
 *                   sleeps; read at the first parallel call.
 */
#ifndef AE_THREADS_H
#define AE_THREADS_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Most threads the pool runs (callers included). */
#define AE_MAX_THREADS 1024

/* Sets the engine thread count, process-wide; n <= 0 means AE_NUM_THREADS
 * from the environment, else the number of online cores. May be called at
 * any time from any thread: the pool grows or shrinks at its next job.
 * Also puts OpenBLAS on one thread for good. */
void ae_threads_init (int n);

/* Current engine thread count (>= 1). */
int ae_threads_count (void);

/* Body of a parallel loop: handles indices [begin, end) of the loop.
 * thread is 0 for the calling thread and 1 .. width-1 for pool workers;
 * two ranges that run at the same time never get the same thread, so it
 * can index per-thread scratch. The body must accept any sub-range. */
typedef void (*AeRangeFn) (void *ctx, int64_t begin, int64_t end,
    int thread);

/* Runs fn over [0, n) on up to `width` threads, the caller being one of
 * them, and returns when every index is done. width is max_threads when
 * > 0 (1 runs the loop inline: the "if" clause of an OpenMP loop), capped
 * by ae_threads_count() and by the number of ranges.
 *
 * chunk <= 0: static schedule, [0, n) cut into width equal ranges;
 * chunk > 0: dynamic schedule, ranges of chunk indices. Either way ranges
 * are claimed from a shared counter, so a worker the OS has not scheduled
 * yet does not hold up the loop: the caller takes its range.
 *
 * Runs inline on the caller (fn (ctx, 0, n, 0)) when called from inside a
 * parallel loop (nested), or while another application thread's loop owns
 * the pool: several threads may call the engine at once. */
void ae_parallel_for (int64_t n, int64_t chunk, int max_threads,
    AeRangeFn fn, void *ctx);

/* True inside the body of a loop the pool runs (on any of its threads). */
bool ae_in_parallel (void);

/* Joins the pool's workers (also done at exit); the next parallel loop
 * starts them again. Waits for a loop another thread is running; does
 * nothing when called from inside a loop body. */
void ae_threads_shutdown (void);

/* Number of pool workers alive now (the caller not counted): 0 before the
 * first parallel loop and after ae_threads_shutdown(). */
int ae_threads_workers (void);

/* Kept for callers that bracketed sgemm inside their own parallel loops:
 * no-ops, OpenBLAS is always single-threaded. */
void ae_blas_single_begin (void);
void ae_blas_single_end (void);

#ifdef __cplusplus
}
#endif
#endif /* AE_THREADS_H */
