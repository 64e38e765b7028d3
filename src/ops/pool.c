/* Average and max pooling: the seed's 2x2 average, and any window and stride. */
#include "ops.h"

snn_status snn_op_avgpool2x2(snn_context *ctx, cl_mem in, cl_mem out, size_t P, size_t H, size_t W) {
    size_t global[1] = {P * (H / 2) * (W / 2)};
    return snn_launch(ctx, "snn_k_avgpool2x2", 1, global, NULL,
                      SNN_ARGS(SNN_ARG_MEM(in), SNN_ARG_MEM(out), SNN_ARG_UINT(P), SNN_ARG_UINT(H),
                               SNN_ARG_UINT(W)));
}

snn_status snn_op_pool2d(snn_context *ctx, cl_mem in, cl_mem out, size_t P, size_t H, size_t W,
                         const snn_pool_geom *g) {
    size_t global[1] = {P * g->Ho * g->Wo};
    return snn_launch(ctx, "snn_k_pool2d", 1, global, NULL,
                      SNN_ARGS(SNN_ARG_MEM(in), SNN_ARG_MEM(out), SNN_ARG_UINT(P), SNN_ARG_UINT(H), SNN_ARG_UINT(W),
                               SNN_ARG_UINT(g->K), SNN_ARG_UINT(g->stride), SNN_ARG_UINT(g->Ho), SNN_ARG_UINT(g->Wo),
                               SNN_ARG_UINT(g->max != 0)));
}

snn_status snn_op_pool2d_backward(snn_context *ctx, cl_mem g, cl_mem gin, size_t P, size_t H, size_t W,
                                  const snn_pool_geom *geom, cl_mem rec, float thr, size_t traj, size_t TB) {
    size_t global[1] = {P * H * W};
    cl_mem spikes = geom->max ? rec : g; /* average pooling reads no spikes: g stands in */
    return snn_launch(ctx, "snn_k_pool2d_backward", 1, global, NULL,
                      SNN_ARGS(SNN_ARG_MEM(g), SNN_ARG_MEM(gin), SNN_ARG_MEM(spikes), SNN_ARG_FLOAT(thr),
                               SNN_ARG_UINT(traj), SNN_ARG_UINT(TB ? TB : 1), SNN_ARG_UINT(P), SNN_ARG_UINT(H),
                               SNN_ARG_UINT(W), SNN_ARG_UINT(geom->K), SNN_ARG_UINT(geom->stride),
                               SNN_ARG_UINT(geom->Ho), SNN_ARG_UINT(geom->Wo), SNN_ARG_UINT(geom->max != 0)));
}
