/* Matrix products. Every GEMM in snncl goes through here, so the choice of
 * implementation and per-device tuning lives in one place. */
#ifndef SNNCL_GEMM_H
#define SNNCL_GEMM_H

#include "context.h"

/* Row-major C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C, with element offsets
 * and leading dimensions as in BLAS. trans_a/trans_b: nonzero transposes. */
snn_status snn_gemm(snn_context *ctx, int trans_a, int trans_b, size_t m, size_t n, size_t k,
                    float alpha, cl_mem a, size_t a_off, size_t lda, cl_mem b, size_t b_off,
                    size_t ldb, float beta, cl_mem c, size_t c_off, size_t ldc);

/* Applies per-device tuned GEMM parameters (called once by snn_context_create). */
snn_status snn_gemm_setup(snn_context *ctx);

#endif
