/* GEMM through CLBlast, with the one place where tuned parameters are applied. */
#include "gemm.h"

#include <clblast_c.h>
#include <string.h>

snn_status snn_gemm(snn_context *ctx, int trans_a, int trans_b, size_t m, size_t n, size_t k,
                    float alpha, cl_mem a, size_t a_off, size_t lda, cl_mem b, size_t b_off,
                    size_t ldb, float beta, cl_mem c, size_t c_off, size_t ldc) {
    if (m == 0 || n == 0) return SNN_OK;
    CLBlastStatusCode s = CLBlastSgemm(CLBlastLayoutRowMajor,
                                       trans_a ? CLBlastTransposeYes : CLBlastTransposeNo,
                                       trans_b ? CLBlastTransposeYes : CLBlastTransposeNo, m, n, k,
                                       alpha, a, a_off, lda, b, b_off, ldb, beta, c, c_off, ldc,
                                       &ctx->queue, NULL);
    if (s != CLBlastSuccess)
        return snn_fail(s == CLBlastOpenCLOutOfResources || s == CLBlastOpenCLOutOfHostMemory ||
                                s == CLBlastTempBufferAllocFailure
                            ? SNN_ERR_OUT_OF_MEMORY
                            : SNN_ERR_GEMM,
                        "CLBlastSgemm(%zu x %zu x %zu, ta=%d, tb=%d) failed with status %d", m, n, k,
                        trans_a, trans_b, (int)s);
    return SNN_OK;
}

/* Tuned Xgemm parameters for devices that CLBlast's database does not know well.
 * Matched by a substring of the device name; empty for now (see `snncl tune`, planned). */
typedef struct gemm_tuning {
    const char *device_substring;
    const char **names;
    const size_t *values;
    size_t count;
} gemm_tuning;

static const gemm_tuning tunings[] = {{NULL, NULL, NULL, 0}};

snn_status snn_gemm_setup(snn_context *ctx) {
    for (size_t i = 0; tunings[i].device_substring; i++) {
        if (!strstr(ctx->info.name, tunings[i].device_substring)) continue;
        CLBlastStatusCode s = CLBlastOverrideParameters(ctx->device, "Xgemm", CLBlastPrecisionSingle,
                                                        tunings[i].count, tunings[i].names,
                                                        tunings[i].values);
        if (s != CLBlastSuccess)
            snn_log(SNN_LOG_WARN, "tuned GEMM parameters for %s rejected (status %d)", ctx->info.name,
                    (int)s);
    }
    return SNN_OK;
}
