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
  openblas_set_num_threads (n);
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
  openblas_set_num_threads (ae_threads_count ());
}
