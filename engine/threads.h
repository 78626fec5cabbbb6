/* Threading policy of the engine.
 *
 * Our own loops (im2col, norms, attention tiles, element-wise ops) use
 * OpenMP. Large sgemm calls are made from outside parallel regions and use
 * OpenBLAS' own threads. Code that calls sgemm from inside an OpenMP region
 * (attention tiles) brackets it with ae_blas_single_begin()/end() so the two
 * thread pools never oversubscribe the cores. */
#ifndef AE_THREADS_H
#define AE_THREADS_H

#ifdef __cplusplus
extern "C" {
#endif

/* Sets the thread count for OpenMP and OpenBLAS; n <= 0 means
 * AE_NUM_THREADS from the environment, else the number of online cores. */
void ae_threads_init (int n);

/* Current engine thread count (>= 1). */
int ae_threads_count (void);

/* Switch OpenBLAS to 1 thread (for sgemm inside our parallel loops) and
 * back to ae_threads_count(). */
void ae_blas_single_begin (void);
void ae_blas_single_end (void);

#ifdef __cplusplus
}
#endif
#endif /* AE_THREADS_H */
