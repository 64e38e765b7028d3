/* 3x3 convolution as im2col + one GEMM per chunk of images. */
#include <stdlib.h>

#include "gemm.h"
#include "ops.h"

void snn_workspace_release(snn_workspace *ws) { snn_dbuf_release(&ws->buf); }

snn_status snn_op_conv3x3(snn_context *ctx, cl_mem in, size_t C, size_t N, size_t H, size_t W,
                          cl_mem weight, size_t Cout, cl_mem out, snn_workspace *ws) {
    return snn_op_conv3x3_strided(ctx, in, C, N, N, H, W, weight, Cout, out, ws);
}

snn_status snn_op_conv3x3_strided(snn_context *ctx, cl_mem in, size_t C, size_t cstride, size_t N, size_t H,
                                  size_t W, cl_mem weight, size_t Cout, cl_mem out, snn_workspace *ws) {
    const size_t HW = H * W, K = C * 9;
    const size_t per_image = K * HW * sizeof(float);
    size_t chunk = ws->limit / per_image;
    if (chunk < 1) chunk = 1;
    if (chunk > N) chunk = N;
    SNN_TRY(snn_dbuf_reserve(ctx, &ws->buf, chunk * per_image));
    for (size_t n0 = 0; n0 < N; n0 += chunk) {
        const size_t count = N - n0 < chunk ? N - n0 : chunk;
        size_t global[2] = {count * H, C};
        /* im2col3x3's N is the channel stride in images */
        SNN_TRY(snn_launch(ctx, "snn_k_im2col3x3", 2, global, NULL,
                           SNN_ARGS(SNN_ARG_MEM(in), SNN_ARG_MEM(ws->buf.mem), SNN_ARG_UINT(C),
                                    SNN_ARG_UINT(cstride), SNN_ARG_UINT(H), SNN_ARG_UINT(W),
                                    SNN_ARG_UINT(n0), SNN_ARG_UINT(count))));
        /* out[:, n0*HW : (n0+count)*HW] = weight (Cout, K) x col (K, count*HW) */
        SNN_TRY(snn_gemm(ctx, 0, 0, Cout, count * HW, K, 1.0f, weight, 0, K, ws->buf.mem, 0, count * HW,
                         0.0f, out, n0 * HW, N * HW));
    }
    return SNN_OK;
}

void snn_conv_diff_release(snn_conv_diff *d) {
    snn_dbuf *all[] = {&d->idx, &d->mark, &d->count, &d->list, &d->nnz, &d->ent, &d->val, &d->dx};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) snn_dbuf_release(all[i]);
    d->slots = 0;
}

snn_status snn_conv_diff_marks(snn_context *ctx, snn_conv_diff *d, size_t NP, cl_mem *mark) {
    SNN_TRY(snn_dbuf_reserve(ctx, &d->mark, NP * sizeof(cl_uint)));
    SNN_TRY(snn_buffer_fill_zero(ctx, d->mark.mem, 0, NP * sizeof(cl_uint)));
    *mark = d->mark.mem;
    return SNN_OK;
}

snn_status snn_op_conv3x3_diff(snn_context *ctx, cl_mem in, size_t C, size_t cstride, size_t p_off, size_t N,
                               size_t H, size_t W, cl_mem weight, size_t Cout, size_t max_slots,
                               int premarked, snn_conv_diff *d, int *dense) {
    const size_t HW = H * W, NP = N * HW, K = C * 9, is = sizeof(cl_uint);
    *dense = 1;
    d->slots = 0;
    if (max_slots == 0) {
        d->dense_calls++;
        return SNN_OK;
    }
    SNN_TRY(snn_dbuf_reserve(ctx, &d->idx, (NP + N) * is));
    SNN_TRY(snn_dbuf_reserve(ctx, &d->mark, NP * is));
    SNN_TRY(snn_dbuf_reserve(ctx, &d->count, is));
    SNN_TRY(snn_dbuf_reserve(ctx, &d->list, max_slots * is));
    static const cl_uint zero_count = 0; /* written, not filled: Oclgrind tracks writes */
    SNN_TRY(snn_buffer_write(ctx, d->count.mem, 0, is, &zero_count));
    SNN_TRY(snn_buffer_fill_zero(ctx, d->idx.mem, NP * is, N * is)); /* the per-image flags */
    size_t g1[1] = {NP};
    if (!premarked)
        SNN_TRY(snn_launch(ctx, "snn_k_diff_mark", 1, g1, NULL,
                           SNN_ARGS(SNN_ARG_MEM(in), SNN_ARG_UINT(C), SNN_ARG_UINT(cstride * HW),
                                    SNN_ARG_UINT(p_off * HW), SNN_ARG_UINT(NP), SNN_ARG_MEM(d->mark.mem))));
    SNN_TRY(snn_launch(ctx, "snn_k_diff_select", 1, g1, NULL,
                       SNN_ARGS(SNN_ARG_MEM(d->mark.mem), SNN_ARG_UINT(N), SNN_ARG_UINT(H), SNN_ARG_UINT(W),
                                SNN_ARG_MEM(d->idx.mem), SNN_ARG_MEM(d->list.mem), SNN_ARG_MEM(d->count.mem),
                                SNN_ARG_UINT(max_slots))));
    cl_uint n = 0;
    SNN_TRY(snn_buffer_read(ctx, d->count.mem, 0, is, &n));
    if (n > max_slots) {
        d->dense_calls++;
        return SNN_OK;
    }
    /* At least one element each: the LIF binds dx even when no pixel differs. */
    const size_t s = n ? n : 1;
    SNN_TRY(snn_dbuf_reserve(ctx, &d->nnz, s * is));
    SNN_TRY(snn_dbuf_reserve(ctx, &d->ent, s * K * is));
    SNN_TRY(snn_dbuf_reserve(ctx, &d->val, s * K * sizeof(float)));
    SNN_TRY(snn_dbuf_reserve(ctx, &d->dx, s * Cout * sizeof(float)));
    *dense = 0;
    d->slots = n;
    d->total_slots += n;
    if (n == 0) return SNN_OK; /* an empty launch is an error */
    size_t g2[1] = {n};
    SNN_TRY(snn_launch(ctx, "snn_k_diff_gather", 1, g2, NULL,
                       SNN_ARGS(SNN_ARG_MEM(in), SNN_ARG_UINT(C), SNN_ARG_UINT(cstride * HW),
                                SNN_ARG_UINT(p_off * HW), SNN_ARG_UINT(H), SNN_ARG_UINT(W), SNN_ARG_MEM(d->list.mem),
                                SNN_ARG_UINT(n), SNN_ARG_MEM(d->ent.mem), SNN_ARG_MEM(d->val.mem), SNN_ARG_MEM(d->nnz.mem))));
    size_t g3[2] = {n, Cout};
    return snn_launch(ctx, "snn_k_conv3x3_diff", 2, g3, NULL,
                      SNN_ARGS(SNN_ARG_MEM(weight), SNN_ARG_UINT(K), SNN_ARG_UINT(Cout), SNN_ARG_MEM(d->ent.mem),
                               SNN_ARG_MEM(d->val.mem), SNN_ARG_MEM(d->nnz.mem), SNN_ARG_UINT(n), SNN_ARG_MEM(d->dx.mem)));
}

snn_status snn_op_conv3x3_backward(snn_context *ctx, cl_mem in, size_t C, size_t N, size_t H,
                                   size_t W, cl_mem weight, size_t Cout, cl_mem dout, cl_mem dweight,
                                   cl_mem din, snn_workspace *ws, snn_workspace *ws2) {
    const size_t HW = H * W, K = C * 9;
    const size_t per_image = K * HW * sizeof(float);
    size_t chunk = ws->limit / per_image;
    if (chunk < 1) chunk = 1;
    if (chunk > N) chunk = N;
    SNN_TRY(snn_dbuf_reserve(ctx, &ws->buf, chunk * per_image));
    if (din) SNN_TRY(snn_dbuf_reserve(ctx, &ws2->buf, chunk * per_image));
    for (size_t n0 = 0; n0 < N; n0 += chunk) {
        const size_t count = N - n0 < chunk ? N - n0 : chunk;
        size_t global[2] = {count * H, C};
        SNN_TRY(snn_launch(ctx, "snn_k_im2col3x3", 2, global, NULL,
                           SNN_ARGS(SNN_ARG_MEM(in), SNN_ARG_MEM(ws->buf.mem), SNN_ARG_UINT(C),
                                    SNN_ARG_UINT(N), SNN_ARG_UINT(H), SNN_ARG_UINT(W),
                                    SNN_ARG_UINT(n0), SNN_ARG_UINT(count))));
        /* dweight (Cout, K) (+)= dout[:, chunk] (Cout, count*HW) x col^T (count*HW, K) */
        SNN_TRY(snn_gemm(ctx, 0, 1, Cout, K, count * HW, 1.0f, dout, n0 * HW, N * HW, ws->buf.mem, 0,
                         count * HW, n0 == 0 ? 0.0f : 1.0f, dweight, 0, K));
        if (!din) continue;
        /* dcol (K, count*HW) = weight^T (K, Cout) x dout[:, chunk] */
        SNN_TRY(snn_gemm(ctx, 1, 0, K, count * HW, Cout, 1.0f, weight, 0, K, dout, n0 * HW, N * HW, 0.0f,
                         ws2->buf.mem, 0, count * HW));
        size_t g2[2] = {count * H, C};
        SNN_TRY(snn_launch(ctx, "snn_k_col2im3x3", 2, g2, NULL,
                           SNN_ARGS(SNN_ARG_MEM(ws2->buf.mem), SNN_ARG_MEM(din), SNN_ARG_UINT(C), SNN_ARG_UINT(N),
                                    SNN_ARG_UINT(H), SNN_ARG_UINT(W), SNN_ARG_UINT(n0),
                                    SNN_ARG_UINT(count))));
    }
    return SNN_OK;
}
