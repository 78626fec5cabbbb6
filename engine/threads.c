/* Thread counts for OpenMP and OpenBLAS (see threads.h). */
#include <stdlib.h>
#include <unistd.h>

#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "threads.h"

static int ae_n_threads = 0;

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
  ae_n_threads = n;
#ifdef _OPENMP
  omp_set_num_threads (n);
#endif
  /* OpenBLAS always runs on the calling thread; ae_sgemm splits large
   * products over our OpenMP threads instead. Two pools on two cores
   * would fight: OpenBLAS workers spin for a long while after each call,
   * stealing the core from the OpenMP loop that runs next. */
  openblas_set_num_threads (1);
}

int
ae_threads_count (void)
{
  if (ae_n_threads <= 0)
    ae_threads_init (0);
  return ae_n_threads;
}

void
ae_blas_single_begin (void)
{
  openblas_set_num_threads (1);
}

void
ae_blas_single_end (void)
{
  /* OpenBLAS stays single-threaded: see ae_threads_init. */
}
