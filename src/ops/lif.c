/* Leaky integrate-and-fire layers over a chunk of steps, with and without the
 * perturbed trajectory of the Lyapunov estimate. */
#include "ops.h"

snn_status snn_op_lif_forward(snn_context *ctx, const snn_lif_args *a) {
    const size_t M = a->B * a->S;
    size_t global[2] = {M, a->G};
    return snn_launch(ctx, "lif_forward", 2, global, NULL,
                      SNN_ARGS(SNN_ARG_MEM(a->in), SNN_ARG_UINT(a->in_off), SNN_ARG_UINT(a->gstride),
                               SNN_ARG_UINT(a->tstride), SNN_ARG_MEM(a->scale), SNN_ARG_MEM(a->shift),
                               SNN_ARG_FLOAT(a->beta), SNN_ARG_FLOAT(a->thr), SNN_ARG_MEM(a->mem),
                               SNN_ARG_MEM(a->spk), SNN_ARG_UINT(a->spk_gstride), SNN_ARG_UINT(a->G),
                               SNN_ARG_UINT(M), SNN_ARG_UINT(a->T)));
}

snn_status snn_op_lif_lyapunov(snn_context *ctx, const snn_lif_args *a) {
    size_t wg;
    SNN_TRY(snn_kernel_wg(ctx, "lif_lyapunov", 256, &wg));
    size_t global[1] = {a->B * wg}, local[1] = {wg};
    return snn_launch(ctx, "lif_lyapunov", 1, global, local,
                      SNN_ARGS(SNN_ARG_MEM(a->in), SNN_ARG_UINT(a->in_off), SNN_ARG_UINT(a->gstride),
                               SNN_ARG_UINT(a->tstride), SNN_ARG_UINT(a->p_off), SNN_ARG_MEM(a->scale),
                               SNN_ARG_MEM(a->shift), SNN_ARG_FLOAT(a->beta), SNN_ARG_FLOAT(a->thr),
                               SNN_ARG_FLOAT(a->eps), SNN_ARG_MEM(a->mem), SNN_ARG_MEM(a->delta),
                               SNN_ARG_MEM(a->spk), SNN_ARG_UINT(a->spk_gstride), SNN_ARG_UINT(a->G),
                               SNN_ARG_UINT(a->S), SNN_ARG_UINT(a->B), SNN_ARG_UINT(a->T),
                               SNN_ARG_UINT(a->t0), SNN_ARG_MEM(a->sq), SNN_ARG_UINT(a->sq_off),
                               SNN_ARG_LOCAL(wg * sizeof(float))));
}
