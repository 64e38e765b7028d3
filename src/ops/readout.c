/* Spike counts, flattening and linear layers. */
#include "gemm.h"
#include "ops.h"

snn_status snn_op_spike_sum(snn_context *ctx, cl_mem in, cl_mem sum, size_t C, size_t T, size_t B,
                            size_t hw, size_t gstride) {
    size_t global[1] = {B * C * hw};
    return snn_launch(ctx, "spike_sum", 1, global, NULL,
                      SNN_ARGS(SNN_ARG_MEM(in), SNN_ARG_MEM(sum), SNN_ARG_UINT(C), SNN_ARG_UINT(T),
                               SNN_ARG_UINT(B), SNN_ARG_UINT(hw), SNN_ARG_UINT(gstride)));
}

snn_status snn_op_flatten_rows(snn_context *ctx, cl_mem in, cl_mem out, size_t C, size_t N, size_t hw) {
    size_t global[1] = {N * C * hw};
    return snn_launch(ctx, "flatten_rows", 1, global, NULL,
                      SNN_ARGS(SNN_ARG_MEM(in), SNN_ARG_MEM(out), SNN_ARG_UINT(C), SNN_ARG_UINT(N),
                               SNN_ARG_UINT(hw)));
}

snn_status snn_op_linear(snn_context *ctx, cl_mem in, size_t rows, size_t fin, cl_mem weight,
                         cl_mem bias, size_t fout, cl_mem out) {
    size_t global[1] = {rows * fout};
    SNN_TRY(snn_launch(ctx, "bias_rows", 1, global, NULL,
                       SNN_ARGS(SNN_ARG_MEM(out), SNN_ARG_MEM(bias), SNN_ARG_UINT(rows),
                                SNN_ARG_UINT(fout))));
    return snn_gemm(ctx, 0, 1, rows, fout, fin, 1.0f, in, 0, fin, weight, 0, fin, 1.0f, out, 0, fout);
}
