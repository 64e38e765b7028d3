/* Measuring and storing the per-device GEMM choice (see tune.h). */
#include "tune.h"

#include <clblast_c.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gemm.h"

/* ----------------------------------------------------------------- shapes -- */

/* Columns per product as src/ops/conv.c chunks them: whole images, im2col within 64 MiB. */
static size_t conv_cols(size_t K, size_t HW, size_t cap) {
    size_t images = ((size_t)64 << 20) / (K * HW * sizeof(float));
    if (images < 1) images = 1;
    size_t cols = images * HW;
    return cols < cap ? cols : (cap / HW ? cap / HW : 1) * HW;
}

size_t snn_gemm_model_shapes(snn_gemm_shape *s, size_t max_cols) {
    /* simple model: 3 -> 64 at 32x32, 64 -> 128 at 16x16, 128 -> 256 at 8x8 */
    static const size_t cin[3] = {3, 64, 128}, cout[3] = {64, 128, 256}, hw[3] = {1024, 256, 64};
    size_t n = 0;
    for (int l = 0; l < 3; l++) {
        const size_t K = 9 * cin[l], P = conv_cols(K, hw[l], max_cols);
        s[n] = (snn_gemm_shape){"", 0, 0, cout[l], P, K, 0.0f};
        snprintf(s[n++].name, sizeof s->name, "conv%d-forward", l + 1);
    }
    for (int l = 0; l < 3; l++) {
        const size_t K = 9 * cin[l], P = conv_cols(K, hw[l], max_cols);
        s[n] = (snn_gemm_shape){"", 0, 1, cout[l], K, P, 1.0f};
        snprintf(s[n++].name, sizeof s->name, "conv%d-wgrad", l + 1);
    }
    for (int l = 1; l < 3; l++) { /* the first layer's input needs no gradient */
        const size_t K = 9 * cin[l], P = conv_cols(K, hw[l], max_cols);
        s[n] = (snn_gemm_shape){"", 1, 0, K, P, cout[l], 0.0f};
        snprintf(s[n++].name, sizeof s->name, "conv%d-igrad", l + 1);
    }
    /* the readout of 256*4*4 features at B = 32 */
    s[n++] = (snn_gemm_shape){"linear-forward", 0, 1, 32, 10, 4096, 1.0f};
    s[n++] = (snn_gemm_shape){"linear-wgrad", 1, 0, 10, 4096, 32, 0.0f};
    s[n++] = (snn_gemm_shape){"linear-igrad", 0, 0, 32, 4096, 10, 0.0f};
    return n;
}

/* ------------------------------------------------------------------- file -- */

const char *const snn_xgemm_param_names[SNN_XGEMM_PARAMS] = {
    "GEMMK", "KREG", "KWG", "KWI", "MDIMA", "MDIMC", "MWG", "NDIMB",
    "NDIMC", "NWG",  "SA",  "SB",  "STRM",  "STRN",  "VWM", "VWN"};
enum { P_GEMMK, P_KREG, P_KWG, P_KWI, P_MDIMA, P_MDIMC, P_MWG, P_NDIMB,
       P_NDIMC, P_NWG, P_SA, P_SB, P_STRM, P_STRN, P_VWM, P_VWN };

static uint64_t fnv1a(uint64_t h, const char *s) {
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return (h ^ '\n') * 0x100000001b3ull;
}

static snn_status cache_dir(char *buf, size_t len) {
    const char *dir = getenv("SNNCL_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int n;
    if (dir && *dir)
        n = snprintf(buf, len, "%s", dir);
    else if (xdg && *xdg)
        n = snprintf(buf, len, "%s/snncl", xdg);
    else if (home && *home)
        n = snprintf(buf, len, "%s/.cache/snncl", home);
    else
        return snn_fail(SNN_ERR_IO, "no cache directory: set SNNCL_CACHE_DIR, XDG_CACHE_HOME or HOME");
    if (n < 0 || (size_t)n >= len) return snn_fail(SNN_ERR_IO, "cache directory path too long");
    return SNN_OK;
}

snn_status snn_tune_path(const snn_device_info *info, char *buf, size_t len) {
    char dir[1024];
    SNN_TRY(cache_dir(dir, sizeof dir));
    uint64_t h = 0xcbf29ce484222325ull;
    h = fnv1a(h, info->platform);
    h = fnv1a(h, info->name);
    h = fnv1a(h, info->driver_version);
    h = fnv1a(h, snn_version());
    int n = snprintf(buf, len, "%s/tune-%016llx.json", dir, (unsigned long long)h);
    if (n < 0 || (size_t)n >= len) return snn_fail(SNN_ERR_IO, "tuning file path too long");
    return SNN_OK;
}

static int same_string(const cJSON *root, const char *key, const char *want) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    return cJSON_IsString(v) && strcmp(v->valuestring, want) == 0;
}

static double number_or(const cJSON *root, const char *key, double fallback) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    return cJSON_IsNumber(v) ? v->valuedouble : fallback;
}

/* Parses the text of a tuning file for the device. */
static snn_status parse_tuning(const char *path, const char *text, const snn_device_info *info,
                               snn_tuning *t) {
    cJSON *root = cJSON_Parse(text);
    snn_status st = SNN_OK;
    if (!cJSON_IsObject(root)) {
        st = snn_fail(SNN_ERR_FORMAT, "%s: not a JSON object", path);
        goto done;
    }
    if (!same_string(root, "platform", info->platform) || !same_string(root, "device", info->name) ||
        !same_string(root, "driver", info->driver_version) ||
        !same_string(root, "snncl_version", snn_version())) {
        st = snn_fail(SNN_ERR_FORMAT, "%s: a tuning of another device, driver or snncl version", path);
        goto done;
    }
    memset(t, 0, sizeof *t);
    const cJSON *gemm = cJSON_GetObjectItemCaseSensitive(root, "gemm");
    if (cJSON_IsString(gemm) && strcmp(gemm->valuestring, "native") == 0)
        t->impl = SNN_GEMM_NATIVE;
    else if (cJSON_IsString(gemm) && strcmp(gemm->valuestring, "clblast") == 0)
        t->impl = SNN_GEMM_CLBLAST;
    else {
        st = snn_fail(SNN_ERR_FORMAT, "%s: \"gemm\" must be \"native\" or \"clblast\"", path);
        goto done;
    }
    const cJSON *xgemm = cJSON_GetObjectItemCaseSensitive(root, "xgemm");
    if (xgemm && !cJSON_IsNull(xgemm)) {
        for (int i = 0; i < SNN_XGEMM_PARAMS; i++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(xgemm, snn_xgemm_param_names[i]);
            if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 4096 ||
                v->valuedouble != (double)(size_t)v->valuedouble) {
                st = snn_fail(SNN_ERR_FORMAT, "%s: xgemm.%s must be an integer in [0, 4096]", path,
                              snn_xgemm_param_names[i]);
                goto done;
            }
            t->xgemm[i] = (size_t)v->valuedouble;
        }
        t->has_xgemm = 1;
    }
    t->native_s = number_or(root, "native_ms", 0) * 1e-3;
    t->clblast_default_s = number_or(root, "clblast_default_ms", 0) * 1e-3;
    t->clblast_tuned_s = number_or(root, "clblast_tuned_ms", 0) * 1e-3;
    t->candidates_tried = (int)number_or(root, "candidates_tried", 0);
    t->candidates_failed = (int)number_or(root, "candidates_failed", 0);
done:
    cJSON_Delete(root);
    return st;
}

snn_status snn_tune_load(const snn_device_info *info, snn_tuning *t, int *found) {
    *found = 0;
    char path[1200];
    SNN_TRY(snn_tune_path(info, path, sizeof path));
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) return SNN_OK;
        return snn_fail(SNN_ERR_IO, "%s: %s", path, strerror(errno));
    }
    char text[8192];
    size_t n = fread(text, 1, sizeof text - 1, f);
    const int too_long = n == sizeof text - 1 && fgetc(f) != EOF;
    fclose(f);
    if (too_long) return snn_fail(SNN_ERR_FORMAT, "%s: larger than a tuning file can be", path);
    text[n] = '\0';
    SNN_TRY(parse_tuning(path, text, info, t));
    *found = 1;
    return SNN_OK;
}

static snn_status make_dirs(char *path) {
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        int r = mkdir(path, 0755);
        *p = '/';
        if (r != 0 && errno != EEXIST) return snn_fail(SNN_ERR_IO, "cannot create %s: %s", path, strerror(errno));
    }
    return SNN_OK;
}

snn_status snn_tune_save(const snn_device_info *info, const snn_tuning *t, char *path, size_t len) {
    SNN_TRY(snn_tune_path(info, path, len));
    SNN_TRY(make_dirs(path));
    cJSON *root = cJSON_CreateObject();
    if (!root) return snn_fail(SNN_ERR_OUT_OF_MEMORY, "tuning JSON");
    cJSON_AddStringToObject(root, "snncl_version", snn_version());
    cJSON_AddStringToObject(root, "platform", info->platform);
    cJSON_AddStringToObject(root, "device", info->name);
    cJSON_AddStringToObject(root, "driver", info->driver_version);
    cJSON_AddStringToObject(root, "gemm", snn_gemm_impl_name(t->impl));
    if (t->has_xgemm) {
        cJSON *x = cJSON_AddObjectToObject(root, "xgemm");
        for (int i = 0; x && i < SNN_XGEMM_PARAMS; i++)
            cJSON_AddNumberToObject(x, snn_xgemm_param_names[i], (double)t->xgemm[i]);
    } else {
        cJSON_AddNullToObject(root, "xgemm");
    }
    cJSON_AddNumberToObject(root, "native_ms", t->native_s * 1e3);
    cJSON_AddNumberToObject(root, "clblast_default_ms", t->clblast_default_s * 1e3);
    cJSON_AddNumberToObject(root, "clblast_tuned_ms", t->clblast_tuned_s * 1e3);
    cJSON_AddNumberToObject(root, "candidates_tried", t->candidates_tried);
    cJSON_AddNumberToObject(root, "candidates_failed", t->candidates_failed);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return snn_fail(SNN_ERR_OUT_OF_MEMORY, "tuning JSON");

    char tmp[1300];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    snn_status st = SNN_OK;
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        st = snn_fail(SNN_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    } else {
        const size_t n = strlen(text);
        const int ok = fwrite(text, 1, n, f) == n && fputc('\n', f) != EOF;
        if (fclose(f) != 0 || !ok)
            st = snn_fail(SNN_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
        else if (rename(tmp, path) != 0)
            st = snn_fail(SNN_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        if (st != SNN_OK) unlink(tmp);
    }
    cJSON_free(text);
    return st;
}

snn_status snn_tune_apply_xgemm(snn_context *ctx, const size_t xgemm[SNN_XGEMM_PARAMS]) {
    CLBlastStatusCode s = CLBlastOverrideParameters(ctx->device, "Xgemm", CLBlastPrecisionSingle,
                                                    SNN_XGEMM_PARAMS, (const char **)snn_xgemm_param_names,
                                                    xgemm);
    if (s != CLBlastSuccess)
        return snn_fail(SNN_ERR_GEMM, "CLBlast rejected the Xgemm parameters (status %d)", (int)s);
    return SNN_OK;
}

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
    if (o->runs < 1 || o->candidates < 0 || o->max_cols < 64)
        return snn_fail(SNN_ERR_INVALID_ARG, "snn_tune_run: runs >= 1, candidates >= 0 and max_cols >= 64");
    memset(out, 0, sizeof *out);
    snn_gemm_shape shapes[SNN_GEMM_MAX_SHAPES];
    const size_t count = snn_gemm_model_shapes(shapes, o->max_cols);
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
    const snn_gemm_impl before = ctx->gemm_impl;
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
    say(o, "%zu products of the simple model (%.1f GFLOP in all), median of %d runs each", count, flops * 1e-9,
        o->runs);

    ctx->gemm_impl = SNN_GEMM_NATIVE;
    SNN_CHECK_GOTO(st, time_shapes(ctx, shapes, count, &op, o->runs, &out->native_s), done);
    say(o, "native (cl/gemm.cl):          %8.1f ms  %7.1f GFLOP/s", out->native_s * 1e3, flops / out->native_s * 1e-9);
    ctx->gemm_impl = SNN_GEMM_CLBLAST;
    SNN_CHECK_GOTO(st, time_shapes(ctx, shapes, count, &op, o->runs, &out->clblast_default_s), done);
    say(o, "CLBlast, its own parameters:  %8.1f ms  %7.1f GFLOP/s", out->clblast_default_s * 1e3,
        flops / out->clblast_default_s * 1e-9);

    out->clblast_tuned_s = out->clblast_default_s;
    const int n = xgemm_candidates(&ctx->info, cand, o->candidates);
    for (int i = 0; i < n; i++) {
        char desc[160];
        format_xgemm(cand[i], desc, sizeof desc);
        double t = 0;
        snn_status cs = snn_tune_apply_xgemm(ctx, cand[i]);
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
    if (out->has_xgemm) SNN_CHECK_GOTO(st, snn_tune_apply_xgemm(ctx, out->xgemm), done);
    out->impl = out->native_s <= out->clblast_tuned_s ? SNN_GEMM_NATIVE : SNN_GEMM_CLBLAST;
done:
    ctx->gemm_impl = before;
    snn_buffer_release(&op.a);
    snn_buffer_release(&op.b);
    snn_buffer_release(&op.c);
    free(host);
    free(cand);
    return st;
}
