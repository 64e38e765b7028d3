/* GEMM through CLBlast or the hand-written kernels of cl/gemm.cl ("native"), chosen per
 * context, and the one place where tuned CLBlast parameters are applied. */
#include "gemm.h"

#include "tune_db.h"

#include "fault.h"
#include "snn_constants.h"

#include <clblast_c.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- CLBlast -- */

static snn_status gemm_clblast(snn_context *ctx, int trans_a, int trans_b, size_t m, size_t n, size_t k,
                               float alpha, cl_mem a, size_t a_off, size_t lda, cl_mem b, size_t b_off,
                               size_t ldb, float beta, cl_mem c, size_t c_off, size_t ldc) {
    const double t0 = snn_profile_start(ctx);
    /* CLBlast reports OpenCL errors under their own codes, so an injected one passes as is. */
    CLBlastStatusCode s = (CLBlastStatusCode)snn_fault_hit(SNN_FAULT_LAUNCH);
    if (s == CLBlastSuccess)
        s = CLBlastSgemm(CLBlastLayoutRowMajor, trans_a ? CLBlastTransposeYes : CLBlastTransposeNo,
                         trans_b ? CLBlastTransposeYes : CLBlastTransposeNo, m, n, k, alpha, a, a_off, lda, b,
                         b_off, ldb, beta, c, c_off, ldc, &ctx->queue, NULL);
    if (s != CLBlastSuccess)
        return snn_fail_cl(s == CLBlastOpenCLOutOfResources || s == CLBlastOpenCLOutOfHostMemory ||
                                   s == CLBlastTempBufferAllocFailure
                               ? SNN_ERR_OUT_OF_MEMORY
                               : SNN_ERR_GEMM,
                           (int)s, "CLBlastSgemm(%zu x %zu x %zu, ta=%d, tb=%d) failed with status %d (%s)", m, n,
                           k, trans_a, trans_b, (int)s,
                           (int)s > -1000 ? snn_cl_error_name((cl_int)s) : "CLBlast's own code");
    snn_profile_stop(ctx, SNN_PROFILE_GEMM, t0);
    return SNN_OK;
}

/* ----------------------------------------------------------------- native -- */

/* Register blocking of cl/gemm.cl's kernels, per device. The accumulators (gemm_cols:
 * SNN_GEMM_RM x SNN_GEMM_CV float16; gemm_dot: SNN_GEMM_DI x SNN_GEMM_DJ float16)
 * should fill most of the vector registers without spilling. Measured with bench_gemm
 * on PoCL 3.1: the defaults 8 x 2 and 2 x 8 (16 of AVX-512's 32 registers of 16
 * floats) on Skylake; on Zen (AVX2: 16 registers of 8 floats, where the defaults
 * need 32 and spill) 6 x 1 and 1 x 6, 12 registers: gemm_cols 1.3-1.5x and gemm_dot
 * 1.1-1.4x faster there than the defaults. */
void snn_gemm_build_options(snn_context *ctx, char *options, size_t size) {
    cl_uint width = 0;
    if (clGetDeviceInfo(ctx->device, CL_DEVICE_NATIVE_VECTOR_WIDTH_FLOAT, sizeof width, &width, NULL) != CL_SUCCESS)
        width = 0;
    const int narrow = ctx->info.type == SNN_DEVICE_CPU && width > 0 && width < 16;
    ctx->gemm.cols_rm = narrow ? 6 : SNN_GEMM_RM;
    ctx->gemm.cols_cv = narrow ? 1 : SNN_GEMM_CV;
    ctx->gemm.dot_di = narrow ? 1 : SNN_GEMM_DI;
    ctx->gemm.dot_dj = narrow ? 6 : SNN_GEMM_DJ;
    snprintf(options, size, " -DSNN_GEMM_RM=%u -DSNN_GEMM_CV=%u -DSNN_GEMM_DI=%u -DSNN_GEMM_DJ=%u",
             ctx->gemm.cols_rm, ctx->gemm.cols_cv, ctx->gemm.dot_di, ctx->gemm.dot_dj);
}

/* Work-group shapes, measured with bench_gemm on PoCL 3.1 (2-core AVX-512): gemm_cols
 * one strip of 32 columns x 16 row blocks (the strip of B serves 128 rows while in
 * cache); gemm_dot 8 x 2 blocks (16 x 16 of C). */
enum { COLS_L0 = 1, COLS_L1 = 16, DOT_L0 = 8, DOT_L1 = 2 };

/* gemm_dot splits the reduction into slices (summed by gemm_sum in a fixed order) when
 * C alone gives fewer than DOT_MIN_GROUPS_PER_CU work-groups per compute unit; slices
 * are at least DOT_MIN_SLICE long and their partial products at most DOT_MAX_SCRATCH. */
enum { DOT_MIN_GROUPS_PER_CU = 4, DOT_MIN_SLICE = 2048 };
#define DOT_MAX_SCRATCH ((size_t)64 << 20)

static size_t ceil_div(size_t a, size_t b) { return (a + b - 1) / b; }
static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

/* The element just past a rows x cols matrix at off with leading dimension ld, or
 * SIZE_MAX on overflow. rows, cols >= 1. */
static size_t matrix_end(size_t off, size_t rows, size_t cols, size_t ld) {
    if (rows - 1 > (SIZE_MAX - off - cols) / (ld ? ld : 1)) return SIZE_MAX;
    return off + (rows - 1) * ld + cols;
}

/* Checks an operand stored as rows x cols (ld >= cols) against its buffer; *end gets
 * the element just past it. */
static snn_status check_operand(const char *name, cl_mem mem, size_t off, size_t rows, size_t cols,
                                size_t ld, size_t *end) {
    if (ld < cols || ld == 0)
        return snn_fail(SNN_ERR_INVALID_ARG, "snn_gemm: leading dimension of %s is %zu, below %zu", name,
                        ld, cols);
    *end = matrix_end(off, rows, cols, ld);
    size_t bytes = 0;
    cl_int err = clGetMemObjectInfo(mem, CL_MEM_SIZE, sizeof bytes, &bytes, NULL);
    if (err != CL_SUCCESS) return snn_cl_check(err, "clGetMemObjectInfo(snn_gemm operand)");
    if (*end == SIZE_MAX || *end > bytes / sizeof(float))
        return snn_fail(SNN_ERR_INVALID_ARG,
                        "snn_gemm: %s (%zu x %zu at offset %zu, ld %zu) exceeds its buffer of %zu bytes",
                        name, rows, cols, off, ld, bytes);
    return SNN_OK;
}

static snn_status reserve_scratch(snn_context *ctx, size_t floats) {
    return snn_dbuf_reserve(ctx, &ctx->gemm.ws, floats * sizeof(float));
}

/* Work-group of gemm_cols or gemm_dot: (l0, l1), shrunk only to the kernel's limit, and
 * global rounded up to it. The same shape for every matrix size: PoCL compiles a kernel
 * anew for each work-group size (about a second), and items outside C cost little. */
static snn_status launch_shape(snn_context *ctx, const char *kernel, size_t blocks0, size_t blocks1,
                               size_t l0, size_t l1, size_t global[2], size_t local[2]) {
    cl_kernel k;
    size_t max_wg = 1;
    SNN_TRY(snn_kernel_get(ctx, kernel, &k, &max_wg));
    while (l0 * l1 > max_wg && l1 > 1) l1 = (l1 + 1) / 2;
    while (l0 * l1 > max_wg && l0 > 1) l0 = (l0 + 1) / 2;
    local[0] = l0;
    local[1] = l1;
    global[0] = ceil_div(blocks0, l0) * l0;
    global[1] = ceil_div(blocks1, l1) * l1;
    return SNN_OK;
}

/* op(B) = B: gemm_cols, op(A)(i, p) = A[a_off + i * a_si + p * a_sp]. */
static snn_status native_cols(snn_context *ctx, size_t m, size_t n, size_t k, float alpha, cl_mem a,
                              size_t a_off, size_t a_si, size_t a_sp, cl_mem b, size_t b_off, size_t ldb,
                              float beta, cl_mem c, size_t c_off, size_t ldc) {
    size_t global[2], local[2];
    SNN_TRY(launch_shape(ctx, "snn_k_gemm_cols", ceil_div(n, 16 * (size_t)ctx->gemm.cols_cv),
                         ceil_div(m, ctx->gemm.cols_rm), COLS_L0, COLS_L1, global, local));
    return snn_launch(ctx, "snn_k_gemm_cols", 2, global, local,
                      SNN_ARGS(SNN_ARG_UINT(m), SNN_ARG_UINT(n), SNN_ARG_UINT(0), SNN_ARG_UINT(k),
                               SNN_ARG_FLOAT(alpha), SNN_ARG_MEM(a), SNN_ARG_UINT(a_off),
                               SNN_ARG_UINT(a_si), SNN_ARG_UINT(a_sp), SNN_ARG_MEM(b),
                               SNN_ARG_UINT(b_off), SNN_ARG_UINT(ldb), SNN_ARG_FLOAT(beta),
                               SNN_ARG_MEM(c), SNN_ARG_UINT(c_off), SNN_ARG_UINT(ldc)));
}

/* C = alpha * (sum of `slices` dense m x n partial products in part) + beta * C. */
static snn_status native_sum(snn_context *ctx, size_t m, size_t n, size_t slices, float alpha, cl_mem part,
                             float beta, cl_mem c, size_t c_off, size_t ldc) {
    size_t wg;
    SNN_TRY(snn_kernel_wg(ctx, "snn_k_gemm_sum", 64, &wg));
    size_t global[2] = {ceil_div(n, wg) * wg, m}, local[2] = {wg, 1};
    return snn_launch(ctx, "snn_k_gemm_sum", 2, global, local,
                      SNN_ARGS(SNN_ARG_UINT(m), SNN_ARG_UINT(n), SNN_ARG_UINT(slices), SNN_ARG_FLOAT(alpha),
                               SNN_ARG_MEM(part), SNN_ARG_FLOAT(beta), SNN_ARG_MEM(c), SNN_ARG_UINT(c_off),
                               SNN_ARG_UINT(ldc)));
}

/* op(A) = A, op(B) = B^T: gemm_dot, with the reduction in slices when C is small. */
static snn_status native_dot(snn_context *ctx, size_t m, size_t n, size_t k, float alpha, cl_mem a,
                             size_t a_off, size_t lda, cl_mem b, size_t b_off, size_t ldb, float beta,
                             cl_mem c, size_t c_off, size_t ldc) {
    size_t g2[2], l2[2];
    SNN_TRY(launch_shape(ctx, "snn_k_gemm_dot", ceil_div(m, ctx->gemm.dot_di), ceil_div(n, ctx->gemm.dot_dj), DOT_L0, DOT_L1, g2, l2));
    const size_t groups = (g2[0] / l2[0]) * (g2[1] / l2[1]);
    const size_t want = DOT_MIN_GROUPS_PER_CU * (size_t)(ctx->info.compute_units ? ctx->info.compute_units : 1);
    size_t slices = 1, ks = k;
    if (groups < want && k >= 2 * DOT_MIN_SLICE) {
        slices = min_sz(ceil_div(want, groups), k / DOT_MIN_SLICE);
        const size_t scratch = min_sz(DOT_MAX_SCRATCH, ctx->info.max_alloc_bytes);
        slices = min_sz(slices, scratch / (m * n * sizeof(float)));
        if (slices > 1) {
            ks = ceil_div(ceil_div(k, slices), 16) * 16; /* whole float16 steps in every slice */
            slices = ceil_div(k, ks);
        }
        if (slices * m * n > UINT32_MAX) slices = 1;
    }
    if (slices <= 1) {
        size_t global[3] = {g2[0], g2[1], 1}, local[3] = {l2[0], l2[1], 1};
        return snn_launch(ctx, "snn_k_gemm_dot", 3, global, local,
                          SNN_ARGS(SNN_ARG_UINT(m), SNN_ARG_UINT(n), SNN_ARG_UINT(0), SNN_ARG_UINT(k),
                                   SNN_ARG_UINT(k), SNN_ARG_FLOAT(alpha), SNN_ARG_MEM(a),
                                   SNN_ARG_UINT(a_off), SNN_ARG_UINT(lda), SNN_ARG_MEM(b),
                                   SNN_ARG_UINT(b_off), SNN_ARG_UINT(ldb), SNN_ARG_FLOAT(beta),
                                   SNN_ARG_MEM(c), SNN_ARG_UINT(c_off), SNN_ARG_UINT(ldc), SNN_ARG_UINT(0)));
    }
    SNN_TRY(reserve_scratch(ctx, slices * m * n));
    cl_mem part = ctx->gemm.ws.mem;
    size_t global[3] = {g2[0], g2[1], slices}, local[3] = {l2[0], l2[1], 1};
    SNN_TRY(snn_launch(ctx, "snn_k_gemm_dot", 3, global, local,
                       SNN_ARGS(SNN_ARG_UINT(m), SNN_ARG_UINT(n), SNN_ARG_UINT(0), SNN_ARG_UINT(k),
                                SNN_ARG_UINT(ks), SNN_ARG_FLOAT(1.0f), SNN_ARG_MEM(a), SNN_ARG_UINT(a_off),
                                SNN_ARG_UINT(lda), SNN_ARG_MEM(b), SNN_ARG_UINT(b_off), SNN_ARG_UINT(ldb),
                                SNN_ARG_FLOAT(0.0f), SNN_ARG_MEM(part), SNN_ARG_UINT(0), SNN_ARG_UINT(n),
                                SNN_ARG_UINT(m * n))));
    return native_sum(ctx, m, n, slices, alpha, part, beta, c, c_off, ldc);
}

static snn_status gemm_native(snn_context *ctx, int trans_a, int trans_b, size_t m, size_t n, size_t k,
                              float alpha, cl_mem a, size_t a_off, size_t lda, cl_mem b, size_t b_off,
                              size_t ldb, float beta, cl_mem c, size_t c_off, size_t ldc) {
    if (!trans_a && trans_b)
        return native_dot(ctx, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta, c, c_off, ldc);
    if (trans_b) { /* (1, 1): B (n x k) transposed into scratch (k x n) */
        SNN_TRY(reserve_scratch(ctx, k * n));
        size_t wg;
        SNN_TRY(snn_kernel_wg(ctx, "snn_k_gemm_transpose", 64, &wg));
        size_t global[2] = {ceil_div(k, wg) * wg, n}, local[2] = {wg, 1};
        SNN_TRY(snn_launch(ctx, "snn_k_gemm_transpose", 2, global, local,
                           SNN_ARGS(SNN_ARG_UINT(n), SNN_ARG_UINT(k), SNN_ARG_MEM(b), SNN_ARG_UINT(b_off),
                                    SNN_ARG_UINT(ldb), SNN_ARG_MEM(ctx->gemm.ws.mem), SNN_ARG_UINT(0),
                                    SNN_ARG_UINT(n))));
        b = ctx->gemm.ws.mem;
        b_off = 0;
        ldb = n;
    }
    return native_cols(ctx, m, n, k, alpha, a, a_off, trans_a ? 1 : lda, trans_a ? lda : 1, b, b_off, ldb,
                       beta, c, c_off, ldc);
}

/* ----------------------------------------------------------------- choice -- */

static snn_status gemm(snn_context *ctx, int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha,
                       cl_mem a, size_t a_off, size_t lda, cl_mem b, size_t b_off, size_t ldb, float beta, cl_mem c,
                       size_t c_off, size_t ldc) {
    if (m == 0 || n == 0) return SNN_OK;
    if (k == 0) { /* C = beta * C, as BLAS (CLBlast rejects k = 0): a sum of no slices */
        size_t c_end;
        SNN_TRY(check_operand("C", c, c_off, m, n, ldc, &c_end));
        if (c_end <= UINT32_MAX) return native_sum(ctx, m, n, 0, alpha, c, beta, c, c_off, ldc);
        return gemm_clblast(ctx, trans_a, trans_b, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta, c,
                            c_off, ldc);
    }
    if (ctx->gemm.impl != SNN_GEMM_NATIVE)
        return gemm_clblast(ctx, trans_a, trans_b, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta, c,
                            c_off, ldc);
    /* The kernels index with 32 bits: larger operands, and a transposed copy of B (the
     * (1, 1) case) too large for scratch, go to CLBlast. */
    size_t a_end, b_end, c_end;
    SNN_TRY(check_operand("A", a, a_off, trans_a ? k : m, trans_a ? m : k, lda, &a_end));
    SNN_TRY(check_operand("B", b, b_off, trans_b ? n : k, trans_b ? k : n, ldb, &b_end));
    SNN_TRY(check_operand("C", c, c_off, m, n, ldc, &c_end));
    if (a_end > UINT32_MAX || b_end > UINT32_MAX || c_end > UINT32_MAX ||
        (trans_a && trans_b && (k * n > UINT32_MAX || k * n * sizeof(float) > ctx->info.max_alloc_bytes)))
        return gemm_clblast(ctx, trans_a, trans_b, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta, c,
                            c_off, ldc);
    return gemm_native(ctx, trans_a, trans_b, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta, c, c_off,
                       ldc);
}

/* The native path's scratch is the context's: one product at a time. */
snn_status snn_gemm(snn_context *ctx, int trans_a, int trans_b, size_t m, size_t n, size_t k,
                    float alpha, cl_mem a, size_t a_off, size_t lda, cl_mem b, size_t b_off,
                    size_t ldb, float beta, cl_mem c, size_t c_off, size_t ldc) {
    SNN_LOCK(ctx);
    const snn_status st = gemm(ctx, trans_a, trans_b, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta, c, c_off, ldc);
    SNN_UNLOCK(ctx);
    return st;
}

const char *snn_gemm_impl_name(snn_gemm_impl impl) {
    switch (impl) {
    case SNN_GEMM_AUTO:
        return "auto";
    case SNN_GEMM_CLBLAST:
        return "clblast";
    case SNN_GEMM_NATIVE:
        return "native";
    }
    return "unknown";
}

snn_gemm_impl snn_gemm_default_impl(const snn_context *ctx) {
    /* Without a measurement, by device type: the native kernels beat CLBlast 3-8x on
     * PoCL; GPUs keep CLBlast's tuned kernels. `snncl tune` measures instead. */
    return ctx->info.type == SNN_DEVICE_CPU ? SNN_GEMM_NATIVE : SNN_GEMM_CLBLAST;
}

snn_status snn_gemm_set_impl(snn_context *ctx, snn_gemm_impl impl) {
    if (impl != SNN_GEMM_AUTO && impl != SNN_GEMM_CLBLAST && impl != SNN_GEMM_NATIVE)
        return snn_fail(SNN_ERR_INVALID_ARG, "snn_gemm_set_impl: unknown implementation %d", (int)impl);
    ctx->gemm.impl = impl == SNN_GEMM_AUTO ? ctx->gemm.auto_impl : impl;
    return SNN_OK;
}

snn_gemm_impl snn_gemm_get_impl(const snn_context *ctx) { return ctx->gemm.impl; }

/* The stored tuning of this device (tune.h), if any: its implementation becomes what
 * AUTO means; with clblast_tuning its Xgemm parameters go to CLBlast (used for every
 * product when CLBlast is chosen, and for operands too large for the native kernels
 * otherwise). Without them, AUTO compares the native kernels with CLBlast's own
 * parameters, as the tuner measured both. A bad or foreign file is reported and
 * ignored: the defaults still work. */
static void apply_stored_tuning(snn_context *ctx, int clblast_tuning) {
    snn_tuning t;
    int found = 0;
    char path[1200] = "";
    if (snn_tune_path(ctx, path, sizeof path) != SNN_OK) { /* no directory to look in */
        snn_clear_error();
        return;
    }
    if (snn_tune_load(ctx, &t, &found) != SNN_OK) {
        snn_log(SNN_LOG_WARN, "ignoring the GEMM tuning: %s (run `snncl tune` again)", snn_last_error());
        snn_clear_error();
        return;
    }
    if (!found) return;
    if (t.has_xgemm && clblast_tuning && snn_gemm_apply_xgemm(ctx, t.xgemm) != SNN_OK) {
        snn_log(SNN_LOG_WARN, "ignoring the GEMM tuning %s: %s", path, snn_last_error());
        snn_clear_error();
        return;
    }
    ctx->gemm.auto_impl = t.impl;
    if (t.has_xgemm && !clblast_tuning && t.native_s > 0 && t.clblast_default_s > 0)
        ctx->gemm.auto_impl = t.native_s <= t.clblast_default_s ? SNN_GEMM_NATIVE : SNN_GEMM_CLBLAST;
    ctx->gemm.reason = "snncl tune";
}

snn_status snn_gemm_setup(snn_context *ctx, const char *gemm, int clblast_tuning) {
    ctx->gemm.auto_impl = snn_gemm_default_impl(ctx);
    ctx->gemm.reason = "device-type default";
    const char *tuning = ctx->use_env ? getenv("SNNCL_TUNING") : NULL;
    if (!tuning || strcmp(tuning, "0") != 0) apply_stored_tuning(ctx, clblast_tuning);
    const char *source = "params->gemm";
    if ((!gemm || !*gemm) && ctx->use_env) {
        gemm = getenv("SNNCL_GEMM");
        source = "SNNCL_GEMM";
    }
    snn_gemm_impl impl = SNN_GEMM_AUTO;
    if (gemm && *gemm) {
        if (strcmp(gemm, "clblast") == 0)
            impl = SNN_GEMM_CLBLAST;
        else if (strcmp(gemm, "native") == 0)
            impl = SNN_GEMM_NATIVE;
        else if (strcmp(gemm, "auto") != 0 && source[0] == 'p')
            return snn_fail(SNN_ERR_INVALID_ARG, "params->gemm is '%s', not clblast, native or auto", gemm);
        else if (strcmp(gemm, "auto") != 0)
            snn_log(SNN_LOG_WARN, "SNNCL_GEMM=%s is not clblast, native or auto; using the default", gemm);
    }
    SNN_TRY(snn_gemm_set_impl(ctx, impl));
    if (impl != SNN_GEMM_AUTO) ctx->gemm.reason = source;
    snn_log(SNN_LOG_INFO, "GEMM: %s (%s)", snn_gemm_impl_name(ctx->gemm.impl), ctx->gemm.reason);
    return SNN_OK;
}

void snn_gemm_release(snn_context *ctx) { snn_dbuf_release(&ctx->gemm.ws); }

snn_status snn_gemm_apply_xgemm(snn_context *ctx, const size_t xgemm[SNN_XGEMM_PARAMS]) {
    CLBlastStatusCode s = CLBlastOverrideParameters(ctx->device, "Xgemm", CLBlastPrecisionSingle,
                                                    SNN_XGEMM_PARAMS, (const char **)snn_xgemm_param_names,
                                                    xgemm);
    if (s != CLBlastSuccess)
        return snn_fail_cl(SNN_ERR_GEMM, (int)s, "CLBlast rejected the Xgemm parameters (status %d)", (int)s);
    return SNN_OK;
}

snn_status snn_context_gemm_info(const snn_context *ctx, const char **impl, const char **reason) {
    SNN_REQUIRE_ARG("snn_context_gemm_info", ctx);
    if (impl) *impl = snn_gemm_impl_name(ctx->gemm.impl);
    if (reason) *reason = ctx->gemm.reason;
    return SNN_OK;
}
