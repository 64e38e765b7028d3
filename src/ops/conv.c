/* 3x3 convolution as im2col + one GEMM per chunk of images. */
#include <stdlib.h>

#include "gemm.h"
#include "ops.h"

void snn_workspace_release(snn_workspace *ws) {
    snn_buffer_release(&ws->buf);
    ws->cap = 0;
}

snn_status snn_op_conv3x3(snn_context *ctx, cl_mem in, size_t C, size_t N, size_t H, size_t W,
                          cl_mem weight, size_t Cout, cl_mem out, snn_workspace *ws) {
    const size_t HW = H * W, K = C * 9;
    const size_t per_image = K * HW * sizeof(float);
    size_t chunk = ws->limit / per_image;
    if (chunk < 1) chunk = 1;
    if (chunk > N) chunk = N;
    SNN_TRY(snn_buffer_reserve(ctx, &ws->buf, &ws->cap, chunk * per_image));
    for (size_t n0 = 0; n0 < N; n0 += chunk) {
        const size_t count = N - n0 < chunk ? N - n0 : chunk;
        size_t global[2] = {count * H, C};
        SNN_TRY(snn_launch(ctx, "im2col3x3", 2, global, NULL,
                           SNN_ARGS(SNN_ARG_MEM(in), SNN_ARG_MEM(ws->buf), SNN_ARG_UINT(C),
                                    SNN_ARG_UINT(N), SNN_ARG_UINT(H), SNN_ARG_UINT(W),
                                    SNN_ARG_UINT(n0), SNN_ARG_UINT(count))));
        /* out[:, n0*HW : (n0+count)*HW] = weight (Cout, K) x col (K, count*HW) */
        SNN_TRY(snn_gemm(ctx, 0, 0, Cout, count * HW, K, 1.0f, weight, 0, K, ws->buf, 0, count * HW,
                         0.0f, out, n0 * HW, N * HW));
    }
    return SNN_OK;
}

snn_status snn_op_conv3x3_backward(snn_context *ctx, cl_mem in, size_t C, size_t N, size_t H,
                                   size_t W, cl_mem weight, size_t Cout, cl_mem dout, cl_mem dweight,
                                   cl_mem din, snn_workspace *ws, snn_workspace *ws2) {
    const size_t HW = H * W, K = C * 9;
    const size_t per_image = K * HW * sizeof(float);
    size_t chunk = ws->limit / per_image;
    if (chunk < 1) chunk = 1;
    if (chunk > N) chunk = N;
    SNN_TRY(snn_buffer_reserve(ctx, &ws->buf, &ws->cap, chunk * per_image));
    if (din) SNN_TRY(snn_buffer_reserve(ctx, &ws2->buf, &ws2->cap, chunk * per_image));
    for (size_t n0 = 0; n0 < N; n0 += chunk) {
        const size_t count = N - n0 < chunk ? N - n0 : chunk;
        size_t global[2] = {count * H, C};
        SNN_TRY(snn_launch(ctx, "im2col3x3", 2, global, NULL,
                           SNN_ARGS(SNN_ARG_MEM(in), SNN_ARG_MEM(ws->buf), SNN_ARG_UINT(C),
                                    SNN_ARG_UINT(N), SNN_ARG_UINT(H), SNN_ARG_UINT(W),
                                    SNN_ARG_UINT(n0), SNN_ARG_UINT(count))));
        /* dweight (Cout, K) (+)= dout[:, chunk] (Cout, count*HW) x col^T (count*HW, K) */
        SNN_TRY(snn_gemm(ctx, 0, 1, Cout, K, count * HW, 1.0f, dout, n0 * HW, N * HW, ws->buf, 0,
                         count * HW, n0 == 0 ? 0.0f : 1.0f, dweight, 0, K));
        if (!din) continue;
        /* dcol (K, count*HW) = weight^T (K, Cout) x dout[:, chunk] */
        SNN_TRY(snn_gemm(ctx, 1, 0, K, count * HW, Cout, 1.0f, weight, 0, K, dout, n0 * HW, N * HW, 0.0f,
                         ws2->buf, 0, count * HW));
        size_t g2[2] = {count * H, C};
        SNN_TRY(snn_launch(ctx, "col2im3x3", 2, g2, NULL,
                           SNN_ARGS(SNN_ARG_MEM(ws2->buf), SNN_ARG_MEM(din), SNN_ARG_UINT(C), SNN_ARG_UINT(N),
                                    SNN_ARG_UINT(H), SNN_ARG_UINT(W), SNN_ARG_UINT(n0),
                                    SNN_ARG_UINT(count))));
    }
    return SNN_OK;
}
