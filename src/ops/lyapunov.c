/* The last step of the Benettin estimate: per-sample exponents from divergences. */
#include "ops.h"

snn_status snn_op_lyapunov_finish(snn_context *ctx, cl_mem sq, cl_mem lambda, size_t L, size_t T,
                                  size_t B, float eps) {
    size_t global[1] = {B};
    return snn_launch(ctx, "snn_k_lyapunov_finish", 1, global, NULL,
                      SNN_ARGS(SNN_ARG_MEM(sq), SNN_ARG_MEM(lambda), SNN_ARG_UINT(L), SNN_ARG_UINT(T),
                               SNN_ARG_UINT(B), SNN_ARG_FLOAT(eps)));
}

snn_status snn_op_lyapunov_grad(snn_context *ctx, cl_mem sq, cl_mem lambda, cl_mem gdiv, cl_mem out,
                                size_t L, size_t T, size_t B, float eps, float weight, float target,
                                const float *mean) {
    size_t global[1] = {1};
    return snn_launch(ctx, "snn_k_lyapunov_grad", 1, global, NULL,
                      SNN_ARGS(SNN_ARG_MEM(sq), SNN_ARG_MEM(lambda), SNN_ARG_MEM(gdiv), SNN_ARG_MEM(out),
                               SNN_ARG_UINT(L), SNN_ARG_UINT(T), SNN_ARG_UINT(B), SNN_ARG_FLOAT(eps),
                               SNN_ARG_FLOAT(weight), SNN_ARG_FLOAT(target), SNN_ARG_INT(mean != NULL),
                               SNN_ARG_FLOAT(mean ? *mean : 0.0f)));
}
