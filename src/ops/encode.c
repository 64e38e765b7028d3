/* Input encodings and the perturbation's initial values. */
#include "ops.h"

snn_status snn_op_encode_rate(snn_context *ctx, cl_mem x, cl_mem out, size_t B, size_t C, size_t HW,
                              size_t T, size_t t0, float gain, uint64_t seed, size_t e0) {
    cl_uint2 key = snn_seed_key(seed);
    size_t global[2] = {snn_philox_blocks(B * C * HW, e0), T};
    return snn_launch(ctx, "snn_k_encode_rate", 2, global, NULL,
                      SNN_ARGS(SNN_ARG_MEM(x), SNN_ARG_MEM(out), SNN_ARG_UINT(B), SNN_ARG_UINT(C),
                               SNN_ARG_UINT(HW), SNN_ARG_UINT(T), SNN_ARG_UINT(t0),
                               SNN_ARG_FLOAT(gain), ((snn_arg){sizeof key, &key}), SNN_ARG_UINT(e0)));
}

snn_status snn_op_to_channel_major(snn_context *ctx, cl_mem in, cl_mem out, size_t B, size_t T_total,
                                   size_t t0, size_t T, size_t C, size_t HW) {
    size_t global[1] = {B * T * C * HW};
    return snn_launch(ctx, "snn_k_to_channel_major", 1, global, NULL,
                      SNN_ARGS(SNN_ARG_MEM(in), SNN_ARG_MEM(out), SNN_ARG_UINT(B), SNN_ARG_UINT(T_total),
                               SNN_ARG_UINT(t0), SNN_ARG_UINT(T), SNN_ARG_UINT(C), SNN_ARG_UINT(HW)));
}

snn_status snn_op_normal(snn_context *ctx, cl_mem out, size_t B, size_t C, size_t HW, unsigned layer,
                         float scale, uint64_t seed, size_t e0) {
    cl_uint2 key = snn_seed_key(seed);
    size_t global[1] = {snn_philox_blocks(B * C * HW, e0)};
    return snn_launch(ctx, "snn_k_normal_channel_major", 1, global, NULL,
                      SNN_ARGS(SNN_ARG_MEM(out), SNN_ARG_UINT(B), SNN_ARG_UINT(C), SNN_ARG_UINT(HW),
                               SNN_ARG_UINT(layer), SNN_ARG_FLOAT(scale), ((snn_arg){sizeof key, &key}),
                               SNN_ARG_UINT(e0)));
}

snn_status snn_op_scale_to_channel_major(snn_context *ctx, cl_mem in, cl_mem out, size_t B, size_t C,
                                         size_t HW, float scale) {
    size_t global[1] = {B * C * HW};
    return snn_launch(ctx, "snn_k_scale_to_channel_major", 1, global, NULL,
                      SNN_ARGS(SNN_ARG_MEM(in), SNN_ARG_MEM(out), SNN_ARG_UINT(B), SNN_ARG_UINT(C),
                               SNN_ARG_UINT(HW), SNN_ARG_FLOAT(scale)));
}
