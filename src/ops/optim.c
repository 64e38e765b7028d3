/* Optimizer steps and gradient norms. */
#include "ops.h"

snn_status snn_op_grad_sumsq(snn_context *ctx, cl_mem g, size_t n, cl_mem norms, size_t slot) {
    size_t wg;
    SNN_TRY(snn_kernel_wg(ctx, "snn_k_grad_sumsq", 256, &wg));
    size_t global[1] = {wg}, local[1] = {wg};
    return snn_launch(ctx, "snn_k_grad_sumsq", 1, global, local,
                      SNN_ARGS(SNN_ARG_MEM(g), SNN_ARG_UINT(n), SNN_ARG_MEM(norms), SNN_ARG_UINT(slot),
                               SNN_ARG_LOCAL(wg * sizeof(float))));
}

snn_status snn_op_adam_update(snn_context *ctx, cl_mem param, cl_mem grad, cl_mem m, cl_mem v, size_t n,
                              const snn_optim_args *a) {
    size_t global[1] = {n};
    return snn_launch(ctx, "snn_k_adam_update", 1, global, NULL,
                      SNN_ARGS(SNN_ARG_MEM(param), SNN_ARG_MEM(grad), SNN_ARG_MEM(m), SNN_ARG_MEM(v),
                               SNN_ARG_UINT(n), SNN_ARG_FLOAT(a->lr), SNN_ARG_FLOAT(a->beta1),
                               SNN_ARG_FLOAT(a->beta2), SNN_ARG_FLOAT(a->eps), SNN_ARG_FLOAT(a->weight_decay),
                               SNN_ARG_FLOAT(a->bc1), SNN_ARG_FLOAT(a->bc2_sqrt), SNN_ARG_MEM(a->norms),
                               SNN_ARG_UINT(a->num_norms), SNN_ARG_FLOAT(a->max_norm)));
}

snn_status snn_op_sgd_update(snn_context *ctx, cl_mem param, cl_mem grad, cl_mem buf, size_t n,
                             const snn_optim_args *a) {
    size_t global[1] = {n};
    return snn_launch(ctx, "snn_k_sgd_update", 1, global, NULL,
                      SNN_ARGS(SNN_ARG_MEM(param), SNN_ARG_MEM(grad), SNN_ARG_MEM(buf), SNN_ARG_UINT(n),
                               SNN_ARG_FLOAT(a->lr), SNN_ARG_FLOAT(a->momentum),
                               SNN_ARG_FLOAT(a->weight_decay), SNN_ARG_UINT(a->first != 0),
                               SNN_ARG_MEM(a->norms), SNN_ARG_UINT(a->num_norms), SNN_ARG_FLOAT(a->max_norm)));
}
