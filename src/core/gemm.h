/* Matrix products. Every GEMM in snncl goes through here, so the choice of
 * implementation and per-device tuning lives in one place; the context's `gemm`
 * fields are this file's alone. */
#ifndef SNNCL_GEMM_H
#define SNNCL_GEMM_H

#include "context.h"
#include "tune_db.h"

/* Row-major C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C, with element offsets
 * and leading dimensions as in BLAS. trans_a/trans_b: nonzero transposes. beta = 0
 * never reads C. Asynchronous (in queue order); results are the same from run to run. */
snn_status snn_gemm(snn_context *ctx, int trans_a, int trans_b, size_t m, size_t n, size_t k,
                    float alpha, cl_mem a, size_t a_off, size_t lda, cl_mem b, size_t b_off,
                    size_t ldb, float beta, cl_mem c, size_t c_off, size_t ldc);

/* Chooses the native kernels' register blocking for the context's device and writes
 * the program build options that set it (called once by snn_context_create, before
 * the program is built). */
void snn_gemm_build_options(snn_context *ctx, char *options, size_t size);

/* Chooses the context's implementation (called once by snn_context_create): `gemm`
 * ("clblast", "native", "auto"; NULL or "": $SNNCL_GEMM where the context reads the
 * environment) forces one; otherwise the device's stored tuning (src/core/tune.h,
 * written by `snncl tune`; SNNCL_TUNING=0 ignores it), else snn_gemm_default_impl.
 * With clblast_tuning, a stored tuning also hands its parameters to CLBlast. */
snn_status snn_gemm_setup(snn_context *ctx, const char *gemm, int clblast_tuning);

/* The implementation a device gets without $SNNCL_GEMM or a tuning: native on CPUs,
 * CLBlast elsewhere. */
snn_gemm_impl snn_gemm_default_impl(const snn_context *ctx);

/* Forces an implementation for the context's later snn_gemm calls (SNN_GEMM_AUTO:
 * back to the tuned or default choice). For tests and benchmarks. */
snn_status snn_gemm_set_impl(snn_context *ctx, snn_gemm_impl impl);
snn_gemm_impl snn_gemm_get_impl(const snn_context *ctx);
/* "auto", "clblast", "native". */
const char *snn_gemm_impl_name(snn_gemm_impl impl);

/* Applies Xgemm parameters to CLBlast for the context's device (from then on, in
 * this process: CLBlast keeps them per device, process-wide). */
snn_status snn_gemm_apply_xgemm(snn_context *ctx, const size_t xgemm[SNN_XGEMM_PARAMS]);

/* Releases the native path's scratch (snn_context_free). */
void snn_gemm_release(snn_context *ctx);

#endif
