/* Measuring the per-device GEMM choice (see tune.h). */
#include "tune.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Indices into an Xgemm parameter set, in the order of snn_xgemm_param_names. */
enum { P_GEMMK, P_KREG, P_KWG, P_KWI, P_MDIMA, P_MDIMC, P_MWG, P_NDIMB,
       P_NDIMC, P_NWG, P_SA, P_SB, P_STRM, P_STRN, P_VWM, P_VWN };

/* ---------------------------------------------------------------- measure -- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void say(const snn_tune_options *o, const char *fmt, ...) SNN_PRINTF(2, 3);
static void say(const snn_tune_options *o, const char *fmt, ...) {
    if (!o->progress) return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    o->progress(o->user, line);
}

snn_status snn_gemm_time(snn_context *ctx, const snn_gemm_shape *s, cl_mem a, cl_mem b, cl_mem c, int warmup,
                         int runs, double *median, double *best) {
    if (runs < 1 || warmup < 0) return snn_fail(SNN_ERR_INVALID_ARG, "snn_gemm_time: runs >= 1, warmup >= 0");
    const size_t lda = s->ta ? s->m : s->k, ldb = s->tb ? s->k : s->n;
    double *t = malloc((size_t)runs * sizeof *t);
    if (!t) return snn_fail(SNN_ERR_OUT_OF_MEMORY, "timings");
    for (int r = -warmup; r < runs; r++) {
        const double t0 = now_s();
        snn_status st = snn_gemm(ctx, s->ta, s->tb, s->m, s->n, s->k, 1.0f, a, 0, lda, b, 0, ldb, s->beta, c, 0,
                                 s->n);
        if (st == SNN_OK) st = snn_context_finish(ctx);
        if (st != SNN_OK) {
            free(t);
            return st;
        }
        if (r >= 0) t[r] = now_s() - t0;
    }
    qsort(t, (size_t)runs, sizeof *t, cmp_double);
    *median = runs % 2 ? t[runs / 2] : 0.5 * (t[runs / 2 - 1] + t[runs / 2]);
    *best = t[0];
    free(t);
    return SNN_OK;
}

typedef struct operands {
    cl_mem a, b, c;
} operands;

/* Sum over the shapes of the median time of one product (after a warm-up, which also
 * compiles), with the context's current implementation. */
static snn_status time_shapes(snn_context *ctx, const snn_gemm_shape *shapes, size_t count, const operands *op,
                              int runs, double *total) {
    *total = 0;
    for (size_t i = 0; i < count; i++) {
        double median, best;
        SNN_TRY(snn_gemm_time(ctx, &shapes[i], op->a, op->b, op->c, 1, runs, &median, &best));
        *total += median;
    }
    return SNN_OK;
}

/* A full Xgemm parameter set from the tile sizes (the rest fixed: GEMMK 0, KREG 1,
 * KWI 2, MDIMA = MDIMC, NDIMB = NDIMC, no strided access). */
static void xgemm_set(size_t *p, size_t mwg, size_t nwg, size_t kwg, size_t mdimc, size_t ndimc, size_t vwm,
                      size_t vwn, size_t local) {
    memset(p, 0, SNN_XGEMM_PARAMS * sizeof *p);
    p[P_GEMMK] = 0, p[P_KREG] = 1, p[P_KWI] = 2;
    p[P_MWG] = mwg, p[P_NWG] = nwg, p[P_KWG] = kwg;
    p[P_MDIMC] = p[P_MDIMA] = mdimc;
    p[P_NDIMC] = p[P_NDIMB] = ndimc;
    p[P_VWM] = vwm, p[P_VWN] = vwn;
    p[P_SA] = p[P_SB] = local;
}

/* CLBlast's divisibility rules, and the device's work-group and local-memory limits. */
static int xgemm_valid(const size_t *p, const snn_device_info *info) {
    const size_t threads = p[P_MDIMC] * p[P_NDIMC];
    const size_t lmem = p[P_SA] ? p[P_KWG] * (p[P_MWG] + p[P_NWG]) * sizeof(float) : 0;
    return !(p[P_MWG] % (p[P_MDIMC] * p[P_VWM]) || p[P_NWG] % (p[P_NDIMC] * p[P_VWN]) ||
             p[P_MWG] % (p[P_MDIMA] * p[P_VWM]) || p[P_NWG] % (p[P_NDIMB] * p[P_VWN]) ||
             p[P_KWG] % (threads / p[P_MDIMA]) || p[P_KWG] % (threads / p[P_NDIMB]) || p[P_KWG] % p[P_KWI] ||
             threads > info->max_work_group_size || lmem > info->local_mem_bytes);
}

/* Up to max Xgemm parameter sets that are valid on the device: first a few shapes
 * that suit GPUs (large tiles through local memory) and CPUs (register tiles, no local
 * memory), then sets spread evenly over a grid of tiles with at least 16 results per
 * work-item. Deterministic. Returns how many were written. */
static int xgemm_candidates(const snn_device_info *info, size_t (*out)[SNN_XGEMM_PARAMS], int max) {
    static const size_t picked[][8] = {
        /* MWG NWG KWG MDIMC NDIMC VWM VWN local */
        {64, 64, 32, 16, 16, 2, 2, 1},   {128, 128, 16, 16, 16, 4, 4, 1}, {64, 128, 32, 16, 16, 4, 2, 1},
        {32, 32, 32, 8, 8, 4, 4, 0},     {64, 64, 16, 8, 8, 8, 8, 0},     {128, 64, 32, 16, 8, 8, 8, 1},
        {32, 64, 16, 8, 16, 4, 4, 0},
    };
    static const size_t wg[] = {32, 64, 128}, kwg[] = {16, 32}, dim[] = {8, 16}, vw[] = {2, 4, 8};
    int n = 0;
    size_t p[SNN_XGEMM_PARAMS];
    for (size_t i = 0; i < SNN_ARRAY_LEN(picked) && n < max; i++) {
        const size_t *q = picked[i];
        xgemm_set(p, q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7]);
        if (xgemm_valid(p, info)) memcpy(out[n++], p, sizeof p);
    }
    enum { GRID = 3 * 3 * 2 * 2 * 2 * 3 * 3 * 2 };
    size_t(*grid)[SNN_XGEMM_PARAMS] = malloc(GRID * sizeof *grid);
    if (!grid) return n;
    int g = 0;
    for (size_t a = 0; a < 3; a++)
        for (size_t b = 0; b < 3; b++)
            for (size_t c = 0; c < 2; c++)
                for (size_t d = 0; d < 2; d++)
                    for (size_t e = 0; e < 2; e++)
                        for (size_t f = 0; f < 3; f++)
                            for (size_t h = 0; h < 3; h++)
                                for (size_t local = 0; local < 2; local++) {
                                    xgemm_set(p, wg[a], wg[b], kwg[c], dim[d], dim[e], vw[f], vw[h], local);
                                    if ((wg[a] / dim[d]) * (wg[b] / dim[e]) >= 16 && xgemm_valid(p, info))
                                        memcpy(grid[g++], p, sizeof p);
                                }
    const int rest = max - n < g ? max - n : g;
    for (int i = 0; i < rest; i++) memcpy(out[n++], grid[(size_t)i * (size_t)g / (size_t)rest], sizeof *out);
    free(grid);
    return n;
}

static void format_xgemm(const size_t *p, char *buf, size_t len) {
    snprintf(buf, len, "MWG=%zu NWG=%zu KWG=%zu MDIMC=%zu NDIMC=%zu VWM=%zu VWN=%zu SA=SB=%zu", p[P_MWG], p[P_NWG],
             p[P_KWG], p[P_MDIMC], p[P_NDIMC], p[P_VWM], p[P_VWN], p[P_SA]);
}

snn_status snn_tune_run(snn_context *ctx, const snn_tune_options *o, snn_tuning *out) {
    if (!ctx || !o || !out) return snn_fail(SNN_ERR_INVALID_ARG, "snn_tune_run: NULL argument");
    if (o->runs < 1 || o->candidates < 0 || !o->shapes || o->num_shapes < 1)
        return snn_fail(SNN_ERR_INVALID_ARG, "snn_tune_run: runs >= 1, candidates >= 0 and at least one shape");
    memset(out, 0, sizeof *out);
    const snn_gemm_shape *shapes = o->shapes;
    const size_t count = o->num_shapes;
    size_t na = 0, nb = 0, nc = 0;
    for (size_t i = 0; i < count; i++) {
        if (shapes[i].m * shapes[i].k > na) na = shapes[i].m * shapes[i].k;
        if (shapes[i].k * shapes[i].n > nb) nb = shapes[i].k * shapes[i].n;
        if (shapes[i].m * shapes[i].n > nc) nc = shapes[i].m * shapes[i].n;
    }
    const size_t most = na > nb ? (na > nc ? na : nc) : (nb > nc ? nb : nc);
    float *host = malloc(most * sizeof *host);
    size_t(*cand)[SNN_XGEMM_PARAMS] = o->candidates ? malloc((size_t)o->candidates * sizeof *cand) : NULL;
    operands op = {NULL, NULL, NULL};
    const snn_gemm_impl before = snn_gemm_get_impl(ctx);
    snn_status st = SNN_OK;
    if (!host || (o->candidates && !cand)) {
        st = snn_fail(SNN_ERR_OUT_OF_MEMORY, "tuning buffers");
        goto done;
    }
    uint32_t x = 12345; /* small values away from zero, so no denormals slow anything */
    for (size_t i = 0; i < most; i++) {
        x = x * 1664525u + 1013904223u;
        host[i] = 0.25f + (float)(x >> 8) * (1.0f / 16777216.0f);
    }
    SNN_CHECK_GOTO(st, snn_buffer_create(ctx, na * sizeof(float), &op.a), done);
    SNN_CHECK_GOTO(st, snn_buffer_create(ctx, nb * sizeof(float), &op.b), done);
    SNN_CHECK_GOTO(st, snn_buffer_create(ctx, nc * sizeof(float), &op.c), done);
    SNN_CHECK_GOTO(st, snn_buffer_write(ctx, op.a, 0, na * sizeof(float), host), done);
    SNN_CHECK_GOTO(st, snn_buffer_write(ctx, op.b, 0, nb * sizeof(float), host), done);
    SNN_CHECK_GOTO(st, snn_buffer_write(ctx, op.c, 0, nc * sizeof(float), host), done);

    double flops = 0;
    for (size_t i = 0; i < count; i++) flops += 2.0 * (double)shapes[i].m * (double)shapes[i].n * (double)shapes[i].k;
    say(o, "%zu products of the workload (%.1f GFLOP in all), median of %d runs each", count, flops * 1e-9,
        o->runs);

    SNN_CHECK_GOTO(st, snn_gemm_set_impl(ctx, SNN_GEMM_NATIVE), done);
    SNN_CHECK_GOTO(st, time_shapes(ctx, shapes, count, &op, o->runs, &out->native_s), done);
    say(o, "native (cl/gemm.cl):          %8.1f ms  %7.1f GFLOP/s", out->native_s * 1e3, flops / out->native_s * 1e-9);
    SNN_CHECK_GOTO(st, snn_gemm_set_impl(ctx, SNN_GEMM_CLBLAST), done);
    SNN_CHECK_GOTO(st, time_shapes(ctx, shapes, count, &op, o->runs, &out->clblast_default_s), done);
    say(o, "CLBlast, its own parameters:  %8.1f ms  %7.1f GFLOP/s", out->clblast_default_s * 1e3,
        flops / out->clblast_default_s * 1e-9);

    out->clblast_tuned_s = out->clblast_default_s;
    const int n = xgemm_candidates(&ctx->info, cand, o->candidates);
    for (int i = 0; i < n; i++) {
        char desc[160];
        format_xgemm(cand[i], desc, sizeof desc);
        double t = 0;
        snn_status cs = snn_gemm_apply_xgemm(ctx, cand[i]);
        if (cs == SNN_OK) cs = time_shapes(ctx, shapes, count, &op, o->runs, &t);
        out->candidates_tried++;
        if (cs != SNN_OK) { /* a set the device cannot build or run is skipped, not fatal */
            out->candidates_failed++;
            say(o, "CLBlast candidate %2d/%d: failed (%s)  %s", i + 1, n, snn_status_str(cs), desc);
            snn_clear_error();
            continue;
        }
        say(o, "CLBlast candidate %2d/%d:      %8.1f ms  %7.1f GFLOP/s  %s", i + 1, n, t * 1e3, flops / t * 1e-9,
            desc);
        if (t < out->clblast_tuned_s) {
            out->clblast_tuned_s = t;
            memcpy(out->xgemm, cand[i], sizeof out->xgemm);
            out->has_xgemm = 1;
        }
    }
    if (out->has_xgemm) SNN_CHECK_GOTO(st, snn_gemm_apply_xgemm(ctx, out->xgemm), done);
    out->impl = out->native_s <= out->clblast_tuned_s ? SNN_GEMM_NATIVE : SNN_GEMM_CLBLAST;
done:
    snn_gemm_set_impl(ctx, before);
    snn_buffer_release(&op.a);
    snn_buffer_release(&op.b);
    snn_buffer_release(&op.c);
    free(host);
    free(cand);
    return st;
}
