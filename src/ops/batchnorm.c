/* BatchNorm in training mode: batch statistics, running estimates, backward. */
#include "ops.h"

snn_status snn_op_bn_stats(snn_context *ctx, cl_mem z, size_t C, size_t R, size_t M, cl_mem gamma,
                           cl_mem beta, cl_mem mean, cl_mem rstd, cl_mem var_unbiased, cl_mem scale,
                           cl_mem shift) {
    size_t wg;
    SNN_TRY(snn_group_wg(ctx, "snn_k_bn_stats", 256, &wg));
    size_t global[1] = {C * R * wg}, local[1] = {wg};
    return snn_launch(ctx, "snn_k_bn_stats", 1, global, local,
                      SNN_ARGS(SNN_ARG_MEM(z), SNN_ARG_UINT(C), SNN_ARG_UINT(R), SNN_ARG_UINT(M),
                               SNN_ARG_MEM(gamma), SNN_ARG_MEM(beta), SNN_ARG_MEM(mean), SNN_ARG_MEM(rstd),
                               SNN_ARG_MEM(var_unbiased), SNN_ARG_MEM(scale), SNN_ARG_MEM(shift),
                               SNN_ARG_LOCAL(wg * sizeof(float))));
}

snn_status snn_op_bn_running_update(snn_context *ctx, cl_mem mean, cl_mem var_unbiased,
                                    cl_mem running_mean, cl_mem running_var, size_t C, size_t P,
                                    size_t T, size_t Pz, size_t Tz, float momentum) {
    size_t global[1] = {C};
    return snn_launch(ctx, "snn_k_bn_running_update", 1, global, NULL,
                      SNN_ARGS(SNN_ARG_MEM(mean), SNN_ARG_MEM(var_unbiased), SNN_ARG_MEM(running_mean),
                               SNN_ARG_MEM(running_var), SNN_ARG_UINT(C), SNN_ARG_UINT(P), SNN_ARG_UINT(T),
                               SNN_ARG_UINT(Pz), SNN_ARG_UINT(Tz), SNN_ARG_FLOAT(momentum)));
}

snn_status snn_op_bn_moments(snn_context *ctx, cl_mem z, size_t C, size_t R, size_t M, cl_mem moments) {
    size_t wg;
    SNN_TRY(snn_group_wg(ctx, "snn_k_bn_moments", 256, &wg));
    size_t global[1] = {C * R * wg}, local[1] = {wg};
    return snn_launch(ctx, "snn_k_bn_moments", 1, global, local,
                      SNN_ARGS(SNN_ARG_MEM(z), SNN_ARG_UINT(C), SNN_ARG_UINT(R), SNN_ARG_UINT(M),
                               SNN_ARG_MEM(moments), SNN_ARG_LOCAL(wg * sizeof(float))));
}

snn_status snn_op_bn_tables(snn_context *ctx, cl_mem stats, size_t C, size_t R, double N, cl_mem gamma,
                            cl_mem beta, cl_mem mean, cl_mem rstd, cl_mem var_unbiased, cl_mem scale,
                            cl_mem shift) {
    size_t global[1] = {C * R};
    return snn_launch(ctx, "snn_k_bn_tables", 1, global, NULL,
                      SNN_ARGS(SNN_ARG_MEM(stats), SNN_ARG_UINT(C), SNN_ARG_UINT(R), SNN_ARG_FLOAT((float)N),
                               SNN_ARG_MEM(gamma), SNN_ARG_MEM(beta), SNN_ARG_MEM(mean), SNN_ARG_MEM(rstd),
                               SNN_ARG_MEM(var_unbiased), SNN_ARG_MEM(scale), SNN_ARG_MEM(shift)));
}

/* d gamma and d beta from the per-block sums in partial (R, C, 2). */
static snn_status param_grads(snn_context *ctx, cl_mem partial, cl_mem dgamma, cl_mem dbeta, size_t C, size_t R) {
    size_t gc[1] = {C};
    return snn_launch(ctx, "snn_k_bn_param_grad", 1, gc, NULL,
                      SNN_ARGS(SNN_ARG_MEM(partial), SNN_ARG_MEM(dgamma), SNN_ARG_MEM(dbeta), SNN_ARG_UINT(C),
                               SNN_ARG_UINT(R)));
}

/* The arguments every backward kernel takes, in order: its block's data and tables,
 * (gamma,) then the shapes. */
#define BN_BLOCK_ARGS SNN_ARG_MEM(g), SNN_ARG_MEM(z), SNN_ARG_MEM(mean), SNN_ARG_MEM(rstd)
#define BN_SHAPE_ARGS                                                                                        \
    SNN_ARG_UINT(C), SNN_ARG_UINT(P), SNN_ARG_UINT(T), SNN_ARG_UINT(Pz), SNN_ARG_UINT(Tz), SNN_ARG_UINT(M)

snn_status snn_op_bn_backward(snn_context *ctx, cl_mem g, cl_mem z, cl_mem mean, cl_mem rstd,
                              cl_mem gamma, size_t C, size_t P, size_t T, size_t Pz, size_t Tz,
                              size_t M, cl_mem partial, cl_mem dgamma, cl_mem dbeta) {
    size_t wg;
    SNN_TRY(snn_group_wg(ctx, "snn_k_bn_backward", 256, &wg));
    size_t global[1] = {C * P * T * wg}, local[1] = {wg};
    SNN_TRY(snn_launch(ctx, "snn_k_bn_backward", 1, global, local,
                       SNN_ARGS(BN_BLOCK_ARGS, SNN_ARG_MEM(gamma), BN_SHAPE_ARGS,
                                SNN_ARG_MEM(partial), SNN_ARG_LOCAL(wg * sizeof(float)))));
    return param_grads(ctx, partial, dgamma, dbeta, C, P * T);
}

snn_status snn_op_bn_backward_sums(snn_context *ctx, cl_mem g, cl_mem z, cl_mem mean, cl_mem rstd, size_t C,
                                   size_t P, size_t T, size_t Pz, size_t Tz, size_t M, cl_mem partial) {
    size_t wg;
    SNN_TRY(snn_group_wg(ctx, "snn_k_bn_backward_sums", 256, &wg));
    size_t global[1] = {C * P * T * wg}, local[1] = {wg};
    return snn_launch(ctx, "snn_k_bn_backward_sums", 1, global, local,
                      SNN_ARGS(BN_BLOCK_ARGS, BN_SHAPE_ARGS, SNN_ARG_MEM(partial),
                               SNN_ARG_LOCAL(wg * sizeof(float))));
}

snn_status snn_op_bn_backward_apply(snn_context *ctx, cl_mem g, cl_mem z, cl_mem mean, cl_mem rstd,
                                    cl_mem gamma, size_t C, size_t P, size_t T, size_t Pz, size_t Tz, size_t M,
                                    cl_mem means, cl_mem partial, cl_mem dgamma, cl_mem dbeta) {
    size_t wg;
    SNN_TRY(snn_group_wg(ctx, "snn_k_bn_backward_apply", 256, &wg));
    size_t global[1] = {C * P * T * wg}, local[1] = {wg};
    SNN_TRY(snn_launch(ctx, "snn_k_bn_backward_apply", 1, global, local,
                       SNN_ARGS(BN_BLOCK_ARGS, SNN_ARG_MEM(gamma), BN_SHAPE_ARGS,
                                SNN_ARG_MEM(means))));
    return param_grads(ctx, partial, dgamma, dbeta, C, P * T);
}

snn_status snn_op_sum_blocks(snn_context *ctx, cl_mem in, cl_mem out, size_t C, size_t R, size_t X) {
    size_t global[1] = {C * X};
    return snn_launch(ctx, "snn_k_sum_blocks", 1, global, NULL,
                      SNN_ARGS(SNN_ARG_MEM(in), SNN_ARG_MEM(out), SNN_ARG_UINT(C), SNN_ARG_UINT(R),
                               SNN_ARG_UINT(X)));
}
