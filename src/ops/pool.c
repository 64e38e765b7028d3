/* 2x2 average pooling. */
#include "ops.h"

snn_status snn_op_avgpool2x2(snn_context *ctx, cl_mem in, cl_mem out, size_t P, size_t H, size_t W) {
    size_t global[1] = {P * (H / 2) * (W / 2)};
    return snn_launch(ctx, "snn_k_avgpool2x2", 1, global, NULL,
                      SNN_ARGS(SNN_ARG_MEM(in), SNN_ARG_MEM(out), SNN_ARG_UINT(P), SNN_ARG_UINT(H),
                               SNN_ARG_UINT(W)));
}
