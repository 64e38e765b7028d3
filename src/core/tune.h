/* The GEMM tuner: times both implementations of snn_gemm (the kernels of cl/gemm.cl
 * and CLBlast, with candidate Xgemm parameters) on products the caller gives (a
 * workload's, from its layer plan: snn_model_gemm_shapes). `snncl tune` stores the
 * result with snn_tune_save (tune_db.h); every context made afterwards on that device
 * reads it back in snn_gemm_setup. */
#ifndef SNNCL_TUNE_H
#define SNNCL_TUNE_H

#include "gemm.h"
#include "tune_db.h"

/* One matrix product: C[m,n] = op(A) op(B) (+ beta C), as snn_gemm takes it. */
typedef struct snn_gemm_shape {
    char name[32];
    int ta, tb;
    size_t m, n, k;
    float beta;
} snn_gemm_shape;

enum { SNN_GEMM_MAX_SHAPES = 64 };

/* Median and best seconds of one snn_gemm (and a finish) of the shape on row-major
 * operands a, b, c, after `warmup` untimed runs, with the context's current
 * implementation. For snn_tune_run and bench_gemm. */
snn_status snn_gemm_time(snn_context *ctx, const snn_gemm_shape *s, cl_mem a, cl_mem b, cl_mem c, int warmup,
                         int runs, double *median, double *best);

typedef struct snn_tune_options {
    int candidates;  /* CLBlast parameter sets to try besides its own (0: none) */
    int runs;        /* timed runs per product (median), after one warm-up */
    /* The products to time: a workload's, from its layer plan (snn_model_gemm_shapes). */
    const snn_gemm_shape *shapes;
    size_t num_shapes;
    /* Called with one line of progress at a time; may be NULL. */
    void (*progress)(void *user, const char *line);
    void *user;
} snn_tune_options;

/* Times both implementations and the candidate CLBlast parameters on the given
 * products. Leaves CLBlast with the best parameters found (or the last candidate's
 * when its own were best: CLBlast cannot restore them), so a context that tuned
 * should be freed afterwards; the stored result applies to contexts made later. */
snn_status snn_tune_run(snn_context *ctx, const snn_tune_options *options, snn_tuning *out);

#endif
