/* Leaky integrate-and-fire layers over a chunk of steps, with and without the
 * perturbed trajectory of the Lyapunov estimate, and their backward passes. */
#include "ops.h"

snn_status snn_op_lif_forward(snn_context *ctx, const snn_lif_args *a) {
    const size_t M = a->B * a->S;
    size_t global[2] = {M, a->G};
    return snn_launch(ctx, a->record ? "snn_k_lif_forward_record" : "snn_k_lif_forward", 2, global, NULL,
                      SNN_ARGS(SNN_ARG_MEM(a->in), SNN_ARG_UINT(a->in_off), SNN_ARG_UINT(a->gstride),
                               SNN_ARG_UINT(a->tstride), SNN_ARG_MEM(a->scale), SNN_ARG_MEM(a->shift),
                               SNN_ARG_UINT(a->aff_tstride), SNN_ARG_FLOAT(a->beta), SNN_ARG_FLOAT(a->thr),
                               SNN_ARG_UINT(a->reset), SNN_ARG_MEM(a->mem), SNN_ARG_MEM(a->spk),
                               SNN_ARG_UINT(a->spk_gstride), SNN_ARG_UINT(a->G), SNN_ARG_UINT(M), SNN_ARG_UINT(a->T)));
}

snn_status snn_op_lif_forward_pool(snn_context *ctx, const snn_lif_args *a, size_t H, size_t W) {
    size_t global[2] = {a->B * (H / 2) * (W / 2), a->G};
    return snn_launch(ctx, "snn_k_lif_forward_pool", 2, global, NULL,
                      SNN_ARGS(SNN_ARG_MEM(a->in), SNN_ARG_UINT(a->in_off), SNN_ARG_UINT(a->gstride),
                               SNN_ARG_UINT(a->tstride), SNN_ARG_MEM(a->scale), SNN_ARG_MEM(a->shift),
                               SNN_ARG_UINT(a->aff_tstride), SNN_ARG_FLOAT(a->beta), SNN_ARG_FLOAT(a->thr),
                               SNN_ARG_UINT(a->reset), SNN_ARG_MEM(a->mem), SNN_ARG_MEM(a->spk),
                               SNN_ARG_UINT(a->spk_gstride), SNN_ARG_UINT(a->G), SNN_ARG_UINT(a->B), SNN_ARG_UINT(H), SNN_ARG_UINT(W),
                               SNN_ARG_UINT(a->T)));
}

/* The arguments every variant of snn_k_lif_lyapunov takes first. */
#define LYAPUNOV_ARGS(a)                                                                                  \
    SNN_ARG_MEM((a)->in), SNN_ARG_UINT((a)->in_off), SNN_ARG_UINT((a)->gstride), SNN_ARG_UINT((a)->tstride), \
        SNN_ARG_UINT((a)->p_off), SNN_ARG_MEM((a)->scale), SNN_ARG_MEM((a)->shift),                       \
        SNN_ARG_UINT((a)->aff_tstride), SNN_ARG_UINT((a)->aff_pstride), SNN_ARG_FLOAT((a)->beta),         \
        SNN_ARG_FLOAT((a)->thr), SNN_ARG_UINT((a)->reset), SNN_ARG_FLOAT((a)->eps), SNN_ARG_MEM((a)->mem), SNN_ARG_MEM((a)->delta), \
        SNN_ARG_MEM((a)->spk), SNN_ARG_UINT((a)->spk_gstride), SNN_ARG_UINT((a)->G), SNN_ARG_UINT((a)->S), \
        SNN_ARG_UINT((a)->B), SNN_ARG_UINT((a)->T), SNN_ARG_UINT((a)->t0), SNN_ARG_MEM((a)->sq),          \
        SNN_ARG_UINT((a)->sq_off)

/* The arguments every variant of snn_k_lif_lyapunov_pool takes first. */
#define LYAPUNOV_POOL_ARGS(a, H, W)                                                                       \
    SNN_ARG_MEM((a)->in), SNN_ARG_UINT((a)->in_off), SNN_ARG_UINT((a)->gstride), SNN_ARG_UINT((a)->tstride), \
        SNN_ARG_UINT((a)->p_off), SNN_ARG_MEM((a)->scale), SNN_ARG_MEM((a)->shift), SNN_ARG_FLOAT((a)->beta), \
        SNN_ARG_FLOAT((a)->thr), SNN_ARG_UINT((a)->reset), SNN_ARG_FLOAT((a)->eps), SNN_ARG_MEM((a)->mem), SNN_ARG_MEM((a)->delta), \
        SNN_ARG_MEM((a)->spk), SNN_ARG_UINT((a)->spk_gstride), SNN_ARG_UINT((a)->G), SNN_ARG_UINT((a)->B), \
        SNN_ARG_UINT(H), SNN_ARG_UINT(W), SNN_ARG_UINT((a)->T), SNN_ARG_UINT((a)->t0), SNN_ARG_MEM((a)->sq), \
        SNN_ARG_UINT((a)->sq_off)

/* Launches a two-trajectory LIF variant, one work-group per sample: the variant's
 * common arguments, then the sparse difference's (dmap, dx, dx_gstride) and the
 * pooled spikes' mark when it takes them, then the group's scratch. */
static snn_status launch_lyapunov(snn_context *ctx, const char *name, const snn_lif_args *a, const snn_arg *common,
                                  int ncommon, int sparse, int marking) {
    size_t wg;
    SNN_TRY(snn_group_wg(ctx, name, 256, &wg));
    size_t global[1] = {a->B * wg}, local[1] = {wg};
    snn_arg args[32];
    int n = 0;
    for (int i = 0; i < ncommon; i++) args[n++] = common[i];
    const cl_uint dx_gstride = (cl_uint)a->dx_gstride;
    if (sparse) {
        args[n++] = SNN_ARG_MEM(a->dmap);
        args[n++] = SNN_ARG_MEM(a->dx);
        args[n++] = (snn_arg){sizeof dx_gstride, &dx_gstride};
    }
    if (marking) args[n++] = SNN_ARG_MEM(a->mark);
    args[n++] = SNN_ARG_LOCAL(wg * sizeof(float));
    return snn_launch(ctx, name, 1, global, local, n, args);
}

snn_status snn_op_lif_lyapunov(snn_context *ctx, const snn_lif_args *a) {
    /* The variant by mode (cl/lif_lyapunov.cl): sparse input difference (eval), recorded
     * membranes (training's backward), or spikes from dense inputs. */
    const char *name = a->dmap ? "snn_k_lif_lyapunov_sparse"
                       : a->record ? "snn_k_lif_lyapunov_record"
                                   : "snn_k_lif_lyapunov";
    const snn_arg common[] = {LYAPUNOV_ARGS(a)};
    return launch_lyapunov(ctx, name, a, common, (int)SNN_ARRAY_LEN(common), a->dmap != NULL, 0);
}

snn_status snn_op_lif_lyapunov_pool(snn_context *ctx, const snn_lif_args *a, size_t H, size_t W) {
    static const char *const names[2][2] = {
        {"snn_k_lif_lyapunov_pool", "snn_k_lif_lyapunov_pool_mark"},
        {"snn_k_lif_lyapunov_pool_sparse", "snn_k_lif_lyapunov_pool_sparse_mark"}};
    const int sparse = a->dmap != NULL, marking = a->mark != NULL;
    const snn_arg common[] = {LYAPUNOV_POOL_ARGS(a, H, W)};
    return launch_lyapunov(ctx, names[sparse][marking], a, common, (int)SNN_ARRAY_LEN(common), sparse, marking);
}

snn_status snn_op_lif_backward(snn_context *ctx, const snn_lif_backward_args *a) {
    size_t global[2] = {a->B * a->S, a->G};
    return snn_launch(ctx, "snn_k_lif_backward", 2, global, NULL,
                      SNN_ARGS(SNN_ARG_MEM(a->buf), SNN_ARG_MEM(a->gup), SNN_ARG_FLOAT(a->beta),
                               SNN_ARG_FLOAT(a->thr), SNN_ARG_UINT(a->reset), SNN_ARG_UINT(a->sg_kind),
                               SNN_ARG_FLOAT(a->sg), SNN_ARG_UINT(a->G), SNN_ARG_UINT(a->S),
                               SNN_ARG_UINT(a->B), SNN_ARG_UINT(a->T), SNN_ARG_UINT(a->H),
                               SNN_ARG_UINT(a->W), SNN_ARG_UINT(a->pool != 0)));
}

snn_status snn_op_lif_lyapunov_backward(snn_context *ctx, const snn_lif_backward_args *a) {
    size_t wg;
    SNN_TRY(snn_group_wg(ctx, "snn_k_lif_lyapunov_backward", 256, &wg));
    size_t global[1] = {a->B * wg}, local[1] = {wg};
    return snn_launch(ctx, "snn_k_lif_lyapunov_backward", 1, global, local,
                      SNN_ARGS(SNN_ARG_MEM(a->buf), SNN_ARG_MEM(a->gup), SNN_ARG_MEM(a->carry),
                               SNN_ARG_MEM(a->sq), SNN_ARG_UINT(a->sq_off), SNN_ARG_MEM(a->gdiv),
                               SNN_ARG_FLOAT(a->beta), SNN_ARG_FLOAT(a->thr), SNN_ARG_UINT(a->reset),
                               SNN_ARG_UINT(a->sg_kind), SNN_ARG_FLOAT(a->sg), SNN_ARG_FLOAT(a->eps),
                               SNN_ARG_UINT(a->G), SNN_ARG_UINT(a->S), SNN_ARG_UINT(a->B),
                               SNN_ARG_UINT(a->T), SNN_ARG_UINT(a->H), SNN_ARG_UINT(a->W),
                               SNN_ARG_UINT(a->pool != 0), SNN_ARG_LOCAL(wg * sizeof(float))));
}

snn_status snn_op_lif_backward_fused(snn_context *ctx, const snn_lif_args *f, const snn_lif_backward_args *b,
                                     cl_mem out, int sum_t) {
    if (f->T > SNN_LIF_FUSED_MAX_T)
        return snn_fail(SNN_ERR_INVALID_ARG, "lif_backward_fused: T = %zu exceeds %d", f->T, SNN_LIF_FUSED_MAX_T);
    /* CPUs: 8 neurons per work-item in vector registers (1.5x faster on PoCL). */
    const int vec = !ctx->lane_kernels;
    size_t global[2] = {vec ? (f->B * f->S + 7) / 8 : f->B * f->S, f->G};
    return snn_launch(ctx, vec ? "snn_k_lif_backward_fused_vec8" : "snn_k_lif_backward_fused", 2, global, NULL,
                      SNN_ARGS(SNN_ARG_MEM(f->in), SNN_ARG_UINT(f->in_off), SNN_ARG_UINT(f->gstride),
                               SNN_ARG_UINT(f->tstride), SNN_ARG_MEM(f->scale), SNN_ARG_MEM(f->shift),
                               SNN_ARG_UINT(f->aff_tstride), SNN_ARG_FLOAT(f->beta), SNN_ARG_FLOAT(f->thr),
                               SNN_ARG_UINT(b->reset), SNN_ARG_UINT(b->sg_kind), SNN_ARG_FLOAT(b->sg),
                               SNN_ARG_MEM(b->gup), SNN_ARG_MEM(out), SNN_ARG_UINT(f->G), SNN_ARG_UINT(f->S),
                               SNN_ARG_UINT(f->B), SNN_ARG_UINT(f->T), SNN_ARG_UINT(b->H), SNN_ARG_UINT(b->W),
                               SNN_ARG_UINT(b->pool != 0), SNN_ARG_UINT(sum_t != 0)));
}
