/* Spike counts, flattening and linear layers. */
#include "gemm.h"
#include "ops.h"

snn_status snn_op_spike_sum(snn_context *ctx, cl_mem in, cl_mem sum, size_t C, size_t T, size_t B,
                            size_t hw, size_t gstride) {
    size_t global[1] = {B * C * hw};
    return snn_launch(ctx, "snn_k_spike_sum", 1, global, NULL,
                      SNN_ARGS(SNN_ARG_MEM(in), SNN_ARG_MEM(sum), SNN_ARG_UINT(C), SNN_ARG_UINT(T),
                               SNN_ARG_UINT(B), SNN_ARG_UINT(hw), SNN_ARG_UINT(gstride)));
}

snn_status snn_op_flatten_rows(snn_context *ctx, cl_mem in, cl_mem out, size_t C, size_t N, size_t hw) {
    size_t global[1] = {N * C * hw};
    return snn_launch(ctx, "snn_k_flatten_rows", 1, global, NULL,
                      SNN_ARGS(SNN_ARG_MEM(in), SNN_ARG_MEM(out), SNN_ARG_UINT(C), SNN_ARG_UINT(N),
                               SNN_ARG_UINT(hw)));
}

snn_status snn_op_linear(snn_context *ctx, cl_mem in, size_t rows, size_t fin, cl_mem weight,
                         cl_mem bias, size_t fout, cl_mem out) {
    size_t global[1] = {rows * fout};
    SNN_TRY(snn_launch(ctx, "snn_k_bias_rows", 1, global, NULL,
                       SNN_ARGS(SNN_ARG_MEM(out), SNN_ARG_MEM(bias), SNN_ARG_UINT(rows),
                                SNN_ARG_UINT(fout))));
    return snn_gemm(ctx, 0, 1, rows, fout, fin, 1.0f, in, 0, fin, weight, 0, fin, 1.0f, out, 0, fout);
}

snn_status snn_op_dropout(snn_context *ctx, cl_mem x, cl_mem out, size_t n, float p, uint64_t seed, size_t e0) {
    cl_uint2 key = snn_seed_key(seed);
    size_t global[1] = {snn_philox_blocks(n, e0)};
    return snn_launch(ctx, "snn_k_dropout", 1, global, NULL,
                      SNN_ARGS(SNN_ARG_MEM(x), SNN_ARG_MEM(out), SNN_ARG_UINT(n), SNN_ARG_FLOAT(p),
                               ((snn_arg){sizeof key, &key}), SNN_ARG_UINT(e0)));
}

snn_status snn_op_spike_sum_backward(snn_context *ctx, cl_mem gsum, cl_mem gup, size_t C, size_t P,
                                     size_t T, size_t B, size_t hw) {
    size_t global[1] = {C * P * T * B * hw};
    return snn_launch(ctx, "snn_k_spike_sum_backward", 1, global, NULL,
                      SNN_ARGS(SNN_ARG_MEM(gsum), SNN_ARG_MEM(gup), SNN_ARG_UINT(C), SNN_ARG_UINT(P),
                               SNN_ARG_UINT(T), SNN_ARG_UINT(B), SNN_ARG_UINT(hw)));
}

snn_status snn_op_unflatten_rows(snn_context *ctx, cl_mem in, cl_mem out, size_t C, size_t N, size_t hw) {
    size_t global[1] = {N * C * hw};
    return snn_launch(ctx, "snn_k_unflatten_rows", 1, global, NULL,
                      SNN_ARGS(SNN_ARG_MEM(in), SNN_ARG_MEM(out), SNN_ARG_UINT(C), SNN_ARG_UINT(N),
                               SNN_ARG_UINT(hw)));
}

snn_status snn_op_linear_backward(snn_context *ctx, cl_mem in, size_t rows, size_t fin, cl_mem weight,
                                  size_t fout, cl_mem dout, cl_mem dweight, cl_mem dbias, cl_mem din) {
    /* dweight (fout, fin) = dout^T (fout, rows) x in (rows, fin) */
    SNN_TRY(snn_gemm(ctx, 1, 0, fout, fin, rows, 1.0f, dout, 0, fout, in, 0, fin, 0.0f, dweight, 0, fin));
    size_t global[1] = {fout};
    if (dbias)
        SNN_TRY(snn_launch(ctx, "snn_k_column_sum", 1, global, NULL,
                           SNN_ARGS(SNN_ARG_MEM(dout), SNN_ARG_MEM(dbias), SNN_ARG_UINT(rows), SNN_ARG_UINT(fout))));
    if (!din) return SNN_OK;
    /* din (rows, fin) = dout (rows, fout) x weight (fout, fin) */
    return snn_gemm(ctx, 0, 0, rows, fin, fout, 1.0f, dout, 0, fout, weight, 0, fin, 0.0f, din, 0, fin);
}

snn_status snn_op_softmax_xent(snn_context *ctx, cl_mem logits, cl_mem labels, cl_mem loss,
                               cl_mem correct, cl_mem grad, size_t B, size_t K, cl_mem bad_label) {
    size_t global[1] = {B};
    return snn_launch(ctx, "snn_k_softmax_xent", 1, global, NULL,
                      SNN_ARGS(SNN_ARG_MEM(logits), SNN_ARG_MEM(labels), SNN_ARG_MEM(loss),
                               SNN_ARG_MEM(correct), SNN_ARG_MEM(grad), SNN_ARG_UINT(B), SNN_ARG_UINT(K),
                               SNN_ARG_MEM(bad_label)));
}
