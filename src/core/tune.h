/* Per-device GEMM tuning: which implementation snn_gemm uses (the kernels of
 * cl/gemm.cl or CLBlast) and, for CLBlast, its Xgemm kernel parameters. `snncl tune`
 * measures them with snn_tune_run and stores them with snn_tune_save; every context
 * made afterwards on that device, driver and snncl version reads them back in
 * snn_gemm_setup. Without a stored tuning a context uses snn_gemm_default_impl. */
#ifndef SNNCL_TUNE_H
#define SNNCL_TUNE_H

#include "context.h"

/* One matrix product: C[m,n] = op(A) op(B) (+ beta C), as snn_gemm takes it. */
typedef struct snn_gemm_shape {
    char name[32];
    int ta, tb;
    size_t m, n, k;
    float beta;
} snn_gemm_shape;

enum { SNN_GEMM_MAX_SHAPES = 16 };

/* The products of the default workload (the simple model, 64-128-256 channels at
 * 32x32): forward, weight and input gradients of the convolutions, with at most
 * max_cols columns each, and the readout's. Returns how many (<= SNN_GEMM_MAX_SHAPES). */
size_t snn_gemm_model_shapes(snn_gemm_shape *out, size_t max_cols);

/* Median and best seconds of one snn_gemm (and a finish) of the shape on row-major
 * operands a, b, c, after `warmup` untimed runs, with the context's current
 * implementation. For snn_tune_run and bench_gemm. */
snn_status snn_gemm_time(snn_context *ctx, const snn_gemm_shape *s, cl_mem a, cl_mem b, cl_mem c, int warmup,
                         int runs, double *median, double *best);

/* CLBlast's Xgemm parameters, in the order of snn_xgemm_param_names. */
enum { SNN_XGEMM_PARAMS = 16 };
extern const char *const snn_xgemm_param_names[SNN_XGEMM_PARAMS];

typedef struct snn_tuning {
    snn_gemm_impl impl;               /* the faster implementation on this device */
    int has_xgemm;                    /* xgemm beat CLBlast's own parameters */
    size_t xgemm[SNN_XGEMM_PARAMS];
    /* Sums over the shapes of the median time of one product, in seconds. */
    double native_s, clblast_default_s, clblast_tuned_s;
    int candidates_tried, candidates_failed;
} snn_tuning;

/* The device's tuning file: <dir>/tune-<16 hex digits>.json, the digits a hash of the
 * platform, device name, driver version and snncl version (a new driver or release
 * re-tunes). dir: $SNNCL_CACHE_DIR, else $XDG_CACHE_HOME/snncl, else $HOME/.cache/snncl. */
snn_status snn_tune_path(const snn_device_info *info, char *buf, size_t len);

/* Reads the device's tuning file. *found = 0 (and SNN_OK) when there is none;
 * SNN_ERR_FORMAT for a file that is not a tuning of this device. */
snn_status snn_tune_load(const snn_device_info *info, snn_tuning *t, int *found);

/* Writes the tuning file (temporary file and rename, creating the directory); path
 * receives where. */
snn_status snn_tune_save(const snn_device_info *info, const snn_tuning *t, char *path, size_t len);

/* Applies Xgemm parameters to CLBlast for the context's device (from then on, in
 * this process). */
snn_status snn_tune_apply_xgemm(snn_context *ctx, const size_t xgemm[SNN_XGEMM_PARAMS]);

typedef struct snn_tune_options {
    int candidates;  /* CLBlast parameter sets to try besides its own (0: none) */
    int runs;        /* timed runs per product (median), after one warm-up */
    size_t max_cols; /* see snn_gemm_model_shapes */
    /* Called with one line of progress at a time; may be NULL. */
    void (*progress)(void *user, const char *line);
    void *user;
} snn_tune_options;

/* Times both implementations and the candidate CLBlast parameters on the model's
 * products. Leaves CLBlast with the best parameters found (or the last candidate's
 * when its own were best: CLBlast cannot restore them), so a context that tuned
 * should be freed afterwards; the stored result applies to contexts made later. */
snn_status snn_tune_run(snn_context *ctx, const snn_tune_options *options, snn_tuning *out);

#endif
