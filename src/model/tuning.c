/* GEMM tuning as the public API offers it (snn_tune*): a workload's matrix products
 * from its layer plan, timed by the tuner (core/tune.c) and stored in the device's
 * tuning file (core/tune_db.c). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "model.h"

void snn_tune_params_default(snn_tune_params *params) {
    if (!params) return;
    memset(params, 0, sizeof *params);
    params->candidates = 8;
    params->runs = 3;
    params->max_cols = 8192;
    params->batch = 32;
    params->store = 1;
}

static void to_result(const snn_tuning *t, snn_tune_result *out) {
    out->gemm = t->impl == SNN_GEMM_NATIVE ? "native" : "clblast";
    out->native_ms = t->native_s * 1e3;
    out->clblast_default_ms = t->clblast_default_s * 1e3;
    out->clblast_tuned_ms = t->clblast_tuned_s * 1e3;
    out->candidates_tried = t->candidates_tried;
    out->candidates_failed = t->candidates_failed;
    out->xgemm[0] = '\0';
    size_t len = 0;
    for (int i = 0; t->has_xgemm && i < SNN_XGEMM_PARAMS && len < sizeof out->xgemm; i++)
        len += (size_t)snprintf(out->xgemm + len, sizeof out->xgemm - len, "%s%s=%zu", i ? " " : "",
                                snn_xgemm_param_names[i], t->xgemm[i]);
}

snn_status snn_tune(snn_context *ctx, const snn_tune_params *params, snn_tune_result *out) {
    SNN_REQUIRE_ARG("snn_tune", ctx);
    SNN_REQUIRE_ARG("snn_tune", out);
    memset(out, 0, sizeof *out);
    snn_tune_params p;
    if (params)
        p = *params;
    else
        snn_tune_params_default(&p);
    if (p.candidates < 0 || p.candidates > 256 || p.runs < 1 || p.runs > 100 || p.max_cols < 64 || p.batch < 1)
        return snn_fail(SNN_ERR_INVALID_ARG,
                        "snn_tune: params need candidates 0..256, runs 1..100, max_cols >= 64 and batch >= 1 "
                        "(got %d, %d, %d, %d)",
                        p.candidates, p.runs, p.max_cols, p.batch);
    snn_model_config workload;
    if (p.workload)
        workload = *p.workload;
    else
        SNN_TRY(snn_model_config_default(&workload, "simple"));
    snn_gemm_shape shapes[SNN_GEMM_MAX_SHAPES];
    size_t count = 0;
    snn_status st = snn_config_gemm_shapes(&workload, (size_t)p.batch, (size_t)p.max_cols, shapes,
                                           SNN_GEMM_MAX_SHAPES, &count);
    if (st == SNN_ERR_INVALID_ARG) return snn_fail_context(st, "snn_tune: params->workload");
    SNN_TRY(st);
    const snn_tune_options o = {p.candidates, p.runs, shapes, count, p.progress, p.user};
    snn_tuning t;
    SNN_TRY(snn_tune_run(ctx, &o, &t));
    to_result(&t, out);
    if (p.store) return snn_tune_save(ctx, &t, out->path, sizeof out->path);
    return snn_tune_path(ctx, out->path, sizeof out->path);
}

snn_status snn_tune_stored(const snn_context *ctx, snn_tune_result *out, int *found) {
    SNN_REQUIRE_ARG("snn_tune_stored", ctx);
    SNN_REQUIRE_ARG("snn_tune_stored", out);
    SNN_REQUIRE_ARG("snn_tune_stored", found);
    memset(out, 0, sizeof *out);
    *found = 0;
    SNN_TRY(snn_tune_path(ctx, out->path, sizeof out->path));
    snn_tuning t;
    SNN_TRY(snn_tune_load(ctx, &t, found));
    if (*found) to_result(&t, out);
    return SNN_OK;
}

snn_status snn_tune_forget(const snn_context *ctx, char *path, size_t len) {
    SNN_REQUIRE_ARG("snn_tune_forget", ctx);
    char where[1200];
    SNN_TRY(snn_tune_path(ctx, where, sizeof where));
    if (path && len) snprintf(path, len, "%s", where);
    if (unlink(where) != 0 && errno != ENOENT)
        return snn_fail(SNN_ERR_IO, "cannot remove %s: %s", where, strerror(errno));
    return SNN_OK;
}
