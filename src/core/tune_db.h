/* Per-device GEMM tuning on disk: which implementation snn_gemm uses on a device and,
 * for CLBlast, its Xgemm kernel parameters, as `snncl tune` measured them (tune.h).
 * Paths, reading and writing only; gemm.c applies what it reads. */
#ifndef SNNCL_TUNE_DB_H
#define SNNCL_TUNE_DB_H

#include "context.h"

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

/* The context's device's tuning file: <dir>/tune-<16 hex digits>.json, the digits a
 * hash of the platform, device name, driver version and snncl version (a new driver or
 * release re-tunes). dir: snn_context_params.tuning_dir, else (where the context reads
 * the environment) $SNNCL_CACHE_DIR, $XDG_CACHE_HOME/snncl or $HOME/.cache/snncl;
 * SNN_ERR_IO when there is none. */
snn_status snn_tune_path(const snn_context *ctx, char *buf, size_t len);

/* Reads the device's tuning file. *found = 0 (and SNN_OK) when there is none;
 * SNN_ERR_FORMAT for a file that is not a tuning of this device. */
snn_status snn_tune_load(const snn_context *ctx, snn_tuning *t, int *found);

/* Writes the tuning file (temporary file and rename, creating the directory); path
 * receives where. */
snn_status snn_tune_save(const snn_context *ctx, const snn_tuning *t, char *path, size_t len);

#endif
