/* Convolution per chunk of images: im2col + one GEMM, or for the seed's 3x3 convolutions
 * on sparse inputs (spikes) the products of the nonzero inputs only (cl/conv_sparse.cl). */
#include <stdlib.h>

#include "gemm.h"
#include "ops.h"

void snn_workspace_release(snn_workspace *ws) {
    snn_dbuf_release(&ws->buf);
    snn_sparse_scratch *s = &ws->sparse;
    snn_dbuf *all[] = {&s->part, &s->cnt, &s->ch, &s->val, &s->trans};
    for (size_t i = 0; i < SNN_ARRAY_LEN(all); i++) snn_dbuf_release(all[i]);
}

static size_t round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }

/* Images per chunk: as many im2col columns as fit in the workspace's limit, at least one. */
static size_t chunk_images(const snn_workspace *ws, size_t per_image, size_t N) {
    size_t chunk = ws->limit / per_image;
    if (chunk < 1) chunk = 1;
    return chunk > N ? N : chunk;
}

/* Whether the chunk of NPc pixels at element off (channels cstride elements apart)
 * takes the sparse path: counts its nonzero inputs (with p_off > 0, of the difference
 * between the pixels p_off further and these) on the device and reads the count back
 * (waits for the queue); never when ctx->sparse_density is 0. */
static snn_status choose_sparse(snn_context *ctx, cl_mem in, size_t C, size_t cstride, size_t off, size_t p_off,
                                size_t H, size_t W, size_t NPc, snn_sparse_scratch *s, int *sparse) {
    *sparse = 0;
    if (ctx->sparse_density <= 0.0f) {
        s->dense_chunks++;
        return SNN_OK;
    }
    const size_t groups = (NPc + SNN_SPARSE_COUNT_PIXELS - 1) / SNN_SPARSE_COUNT_PIXELS;
    SNN_TRY(snn_dbuf_reserve(ctx, &s->part, groups * sizeof(cl_uint)));
    size_t g[1] = {groups};
    SNN_TRY(snn_launch(ctx, "snn_k_nonzero_count", 1, g, NULL,
                       SNN_ARGS(SNN_ARG_MEM(in), SNN_ARG_UINT(C), SNN_ARG_UINT(cstride), SNN_ARG_UINT(off),
                                SNN_ARG_UINT(p_off), SNN_ARG_UINT(NPc), SNN_ARG_MEM(s->part.mem))));
    cl_uint *part = malloc(groups * sizeof *part);
    if (!part) return snn_fail(SNN_ERR_OUT_OF_MEMORY, "nonzero counts");
    snn_status st = snn_buffer_read(ctx, s->part.mem, 0, groups * sizeof *part, part);
    double nonzero = 0;
    for (size_t i = 0; st == SNN_OK && i < groups; i++) nonzero += part[i];
    free(part);
    SNN_TRY(st);
    const double total = (double)C * (double)NPc;
    *sparse = nonzero <= (double)ctx->sparse_density * total;
    if (*sparse)
        s->sparse_chunks++;
    else
        s->dense_chunks++;
    snn_profile_density(ctx, C, H, W, p_off > 0, nonzero, total, *sparse);
    return SNN_OK;
}

/* dst (n, Rp) = src (R, ld) columns off .. off+n-1 transposed, zero rows R .. Rp-1. */
static snn_status transpose_pad(snn_context *ctx, cl_mem src, size_t R, size_t ld, size_t off, size_t n,
                                size_t Rp, snn_dbuf *dst) {
    SNN_TRY(snn_dbuf_reserve(ctx, dst, n * Rp * sizeof(float)));
    size_t g[1] = {(n + 7) / 8};
    return snn_launch(ctx, "snn_k_transpose_pad", 1, g, NULL,
                      SNN_ARGS(SNN_ARG_MEM(src), SNN_ARG_UINT(R), SNN_ARG_UINT(ld), SNN_ARG_UINT(off),
                               SNN_ARG_UINT(n), SNN_ARG_MEM(dst->mem), SNN_ARG_UINT(Rp)));
}

/* One chunk of snn_op_conv3x3_strided on the sparse path; s->trans holds the weights
 * transposed (K, Rp). */
static snn_status conv_sparse_chunk(snn_context *ctx, cl_mem in, size_t C, size_t cstride, size_t off,
                                    size_t NPc, size_t H, size_t W, size_t Cout, size_t Rp, cl_mem out,
                                    size_t out_off, size_t ldo, snn_sparse_scratch *s) {
    SNN_TRY(snn_dbuf_reserve(ctx, &s->cnt, NPc * sizeof(cl_uint)));
    SNN_TRY(snn_dbuf_reserve(ctx, &s->ch, NPc * C * sizeof(cl_uint)));
    SNN_TRY(snn_dbuf_reserve(ctx, &s->val, NPc * C * sizeof(float)));
    size_t g1[1] = {NPc};
    SNN_TRY(snn_launch(ctx, "snn_k_spike_lists", 1, g1, NULL,
                       SNN_ARGS(SNN_ARG_MEM(in), SNN_ARG_UINT(C), SNN_ARG_UINT(cstride), SNN_ARG_UINT(off),
                                SNN_ARG_UINT(NPc), SNN_ARG_MEM(s->cnt.mem), SNN_ARG_MEM(s->ch.mem),
                                SNN_ARG_MEM(s->val.mem))));
    const int lane = ctx->lane_kernels;
    size_t g2[2] = {lane ? Cout : NPc, lane ? NPc : Rp / SNN_SPARSE_CW};
    return snn_launch(ctx, lane ? "snn_k_conv3x3_sparse_lane" : "snn_k_conv3x3_sparse", 2, g2, NULL,
                      SNN_ARGS(SNN_ARG_MEM(s->cnt.mem), SNN_ARG_MEM(s->ch.mem), SNN_ARG_MEM(s->val.mem),
                               SNN_ARG_UINT(C), SNN_ARG_UINT(H), SNN_ARG_UINT(W), SNN_ARG_UINT(NPc),
                               SNN_ARG_MEM(s->trans.mem), SNN_ARG_UINT(Rp), SNN_ARG_UINT(Cout), SNN_ARG_MEM(out),
                               SNN_ARG_UINT(out_off), SNN_ARG_UINT(ldo)));
}

/* ws->buf (grown to at least bytes, a whole chunk's) = the im2col columns (C*9,
 * count*H*W) of images first .. first+count-1 of in (first counts from the buffer's
 * start: in.off already added). */
static snn_status im2col_chunk(snn_context *ctx, snn_images in, size_t C, size_t H, size_t W, size_t first,
                               size_t count, size_t bytes, snn_workspace *ws) {
    SNN_TRY(snn_dbuf_reserve(ctx, &ws->buf, bytes));
    size_t global[2] = {count * H, C};
    /* im2col3x3's N is the channel stride in images, its n0 the first image */
    return snn_launch(ctx, "snn_k_im2col3x3", 2, global, NULL,
                      SNN_ARGS(SNN_ARG_MEM(in.mem), SNN_ARG_MEM(ws->buf.mem), SNN_ARG_UINT(C),
                               SNN_ARG_UINT(in.cstride), SNN_ARG_UINT(H), SNN_ARG_UINT(W), SNN_ARG_UINT(first),
                               SNN_ARG_UINT(count)));
}

snn_status snn_op_conv3x3(snn_context *ctx, cl_mem in, size_t C, size_t N, size_t H, size_t W,
                          cl_mem weight, size_t Cout, cl_mem out, snn_workspace *ws) {
    return snn_op_conv3x3_at(ctx, (snn_images){in, N, 0}, C, N, H, W, weight, Cout, (snn_images){out, N, 0}, ws);
}

snn_status snn_op_conv3x3_strided(snn_context *ctx, cl_mem in, size_t C, size_t cstride, size_t N, size_t H,
                                  size_t W, cl_mem weight, size_t Cout, cl_mem out, snn_workspace *ws) {
    return snn_op_conv3x3_at(ctx, (snn_images){in, cstride, 0}, C, N, H, W, weight, Cout, (snn_images){out, N, 0},
                             ws);
}

snn_status snn_op_conv3x3_at(snn_context *ctx, snn_images in, size_t C, size_t N, size_t H, size_t W,
                             cl_mem weight, size_t Cout, snn_images out, snn_workspace *ws) {
    const size_t HW = H * W, K = C * 9, Rp = round_up(Cout, SNN_SPARSE_CW);
    const size_t per_image = K * HW * sizeof(float);
    const size_t chunk = chunk_images(ws, per_image, N);
    int weights_transposed = 0;
    for (size_t n0 = 0; n0 < N; n0 += chunk) {
        const size_t count = N - n0 < chunk ? N - n0 : chunk;
        const size_t in0 = in.off + n0, out0 = out.off + n0; /* the chunk's first image in each */
        int sparse;
        SNN_TRY(choose_sparse(ctx, in.mem, C, in.cstride * HW, in0 * HW, 0, H, W, count * HW, &ws->sparse, &sparse));
        if (sparse) {
            if (!weights_transposed) SNN_TRY(transpose_pad(ctx, weight, Cout, K, 0, K, Rp, &ws->sparse.trans));
            weights_transposed = 1;
            SNN_TRY(conv_sparse_chunk(ctx, in.mem, C, in.cstride * HW, in0 * HW, count * HW, H, W, Cout, Rp, out.mem,
                                      out0 * HW, out.cstride * HW, &ws->sparse));
            continue;
        }
        SNN_TRY(im2col_chunk(ctx, in, C, H, W, in0, count, chunk * per_image, ws));
        /* out images out0 .. out0+count-1 = weight (Cout, K) x col (K, count*HW) */
        SNN_TRY(snn_gemm(ctx, 0, 0, Cout, count * HW, K, 1.0f, weight, 0, K, ws->buf.mem, 0, count * HW,
                         0.0f, out.mem, out0 * HW, out.cstride * HW));
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
    if (max_slots == 0 || ctx->dense_only) {
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
    d->sparse_calls++;
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

/* One chunk's weight gradient on the sparse path, count images from in's image in0
 * and dout's image g0 (both counted from the buffer's start), of the input difference
 * (pixels p_off further minus these) when p_off > 0: the output gradient goes to
 * pixel rows (ws->sparse.trans), then the scan kernel. */
static snn_status wgrad_sparse_chunk(snn_context *ctx, snn_images in, size_t in0, size_t p_off, size_t C,
                                     size_t count, size_t H, size_t W, size_t Cout, snn_images dout, size_t g0,
                                     float beta, cl_mem dweight, snn_workspace *ws) {
    const size_t HW = H * W, Rp = round_up(Cout, 8), cstride = in.cstride * HW, off = in0 * HW, NPc = count * HW;
    SNN_TRY(transpose_pad(ctx, dout.mem, Cout, dout.cstride * HW, g0 * HW, NPc, Rp, &ws->sparse.trans));
    cl_mem gt = ws->sparse.trans.mem;
    if (ctx->lane_kernels) {
        size_t g[2] = {Cout, C};
        return snn_launch(ctx, "snn_k_conv3x3_wgrad_sparse_lane", 2, g, NULL,
                          SNN_ARGS(SNN_ARG_MEM(in), SNN_ARG_UINT(C), SNN_ARG_UINT(cstride), SNN_ARG_UINT(off),
                                   SNN_ARG_UINT(p_off * HW), SNN_ARG_UINT(H), SNN_ARG_UINT(W), SNN_ARG_UINT(NPc),
                                   SNN_ARG_MEM(gt), SNN_ARG_UINT(Rp), SNN_ARG_UINT(Cout), SNN_ARG_FLOAT(beta),
                                   SNN_ARG_MEM(dweight)));
    }
    size_t g[1] = {C}, l[1] = {1};
    return snn_launch(ctx, "snn_k_conv3x3_wgrad_sparse", 1, g, l,
                      SNN_ARGS(SNN_ARG_MEM(in), SNN_ARG_UINT(C), SNN_ARG_UINT(cstride), SNN_ARG_UINT(off),
                               SNN_ARG_UINT(p_off * HW), SNN_ARG_UINT(H), SNN_ARG_UINT(W), SNN_ARG_UINT(NPc), SNN_ARG_MEM(gt),
                               SNN_ARG_UINT(Rp), SNN_ARG_UINT(Cout), SNN_ARG_FLOAT(beta), SNN_ARG_MEM(dweight),
                               SNN_ARG_LOCAL(9 * Rp * sizeof(float))));
}

snn_status snn_op_conv3x3_diff_apply(snn_context *ctx, const snn_conv_diff *d, cl_mem z, size_t zstride,
                                     size_t p_off, size_t NP, size_t Cout) {
    size_t g[2] = {NP, Cout};
    return snn_launch(ctx, "snn_k_diff_apply", 2, g, NULL,
                      SNN_ARGS(SNN_ARG_MEM(z), SNN_ARG_UINT(zstride), SNN_ARG_UINT(p_off), SNN_ARG_UINT(NP),
                               SNN_ARG_MEM(d->idx.mem), SNN_ARG_MEM(d->dx.mem), SNN_ARG_UINT(d->slots),
                               SNN_ARG_UINT(Cout)));
}

snn_status snn_op_conv3x3_backward(snn_context *ctx, cl_mem in, size_t C, size_t N, size_t H,
                                   size_t W, cl_mem weight, size_t Cout, cl_mem dout, cl_mem dweight,
                                   cl_mem din, snn_workspace *ws, snn_workspace *ws2) {
    const snn_images none = {NULL, 0, 0};
    return snn_op_conv3x3_backward_at(ctx, (snn_images){in, N, 0}, C, N, H, W, weight, Cout, (snn_images){dout, N, 0},
                                      dweight, 0.0f, din ? (snn_images){din, N, 0} : none, ws, ws2);
}

snn_status snn_op_conv3x3_backward_at(snn_context *ctx, snn_images in, size_t C, size_t N, size_t H, size_t W,
                                      cl_mem weight, size_t Cout, snn_images dout, cl_mem dweight, float beta,
                                      snn_images din, snn_workspace *ws, snn_workspace *ws2) {
    const size_t HW = H * W, K = C * 9;
    const size_t per_image = K * HW * sizeof(float);
    const size_t chunk = chunk_images(ws, per_image, N);
    if (din.mem) SNN_TRY(snn_dbuf_reserve(ctx, &ws2->buf, chunk * per_image));
    for (size_t n0 = 0; n0 < N; n0 += chunk) {
        const size_t count = N - n0 < chunk ? N - n0 : chunk;
        const size_t in0 = in.off + n0, g0 = dout.off + n0; /* the chunk's first image in each */
        const float b = n0 == 0 ? beta : 1.0f;
        if (dweight) {
            int sparse;
            SNN_TRY(choose_sparse(ctx, in.mem, C, in.cstride * HW, in0 * HW, 0, H, W, count * HW, &ws->sparse,
                                  &sparse));
            if (sparse) {
                /* dweight (+)= products of the chunk's nonzero inputs with its output gradient */
                SNN_TRY(wgrad_sparse_chunk(ctx, in, in0, 0, C, count, H, W, Cout, dout, g0, b, dweight, ws));
            } else {
                SNN_TRY(im2col_chunk(ctx, in, C, H, W, in0, count, chunk * per_image, ws));
                /* dweight (Cout, K) (+)= dout chunk (Cout, count*HW) x col^T (count*HW, K) */
                SNN_TRY(snn_gemm(ctx, 0, 1, Cout, K, count * HW, 1.0f, dout.mem, g0 * HW, dout.cstride * HW,
                                 ws->buf.mem, 0, count * HW, b, dweight, 0, K));
            }
        }
        if (!din.mem) continue;
        /* dcol (K, count*HW) = weight^T (K, Cout) x dout chunk */
        SNN_TRY(snn_gemm(ctx, 1, 0, K, count * HW, Cout, 1.0f, weight, 0, K, dout.mem, g0 * HW, dout.cstride * HW,
                         0.0f, ws2->buf.mem, 0, count * HW));
        size_t g2[2] = {count * H, C};
        SNN_TRY(snn_launch(ctx, "snn_k_col2im3x3", 2, g2, NULL,
                           SNN_ARGS(SNN_ARG_MEM(ws2->buf.mem), SNN_ARG_MEM(din.mem), SNN_ARG_UINT(C),
                                    SNN_ARG_UINT(din.cstride), SNN_ARG_UINT(H), SNN_ARG_UINT(W),
                                    SNN_ARG_UINT(din.off + n0), SNN_ARG_UINT(count))));
    }
    return SNN_OK;
}

snn_status snn_op_conv3x3_wgrad_diff(snn_context *ctx, snn_images in, size_t p_off, size_t C, size_t N, size_t H,
                                     size_t W, size_t Cout, snn_images dout, cl_mem dweight, float beta,
                                     snn_workspace *ws, int *dense) {
    const size_t HW = H * W, K = C * 9;
    const size_t chunk = chunk_images(ws, K * HW * sizeof(float), N);
    *dense = 0;
    /* All chunks are checked first: the caller's fallback recomputes everything. */
    for (size_t n0 = 0; n0 < N && !*dense; n0 += chunk) {
        const size_t count = N - n0 < chunk ? N - n0 : chunk;
        int sparse;
        SNN_TRY(choose_sparse(ctx, in.mem, C, in.cstride * HW, (in.off + n0) * HW, p_off * HW, H, W, count * HW,
                              &ws->sparse, &sparse));
        *dense = !sparse;
    }
    for (size_t n0 = 0; n0 < N && !*dense; n0 += chunk) {
        const size_t count = N - n0 < chunk ? N - n0 : chunk;
        SNN_TRY(wgrad_sparse_chunk(ctx, in, in.off + n0, p_off, C, count, H, W, Cout, dout, dout.off + n0,
                                   n0 == 0 ? beta : 1.0f, dweight, ws));
    }
    return SNN_OK;
}

/* ---------------------------------------------------- any kernel, stride, padding -- */

/* ws->buf = the im2col columns (C*K*K, count*Ho*Wo) of images first .. first+count-1. */
static snn_status im2col_general(snn_context *ctx, snn_images in, const snn_conv_geom *g, size_t first, size_t count,
                                 size_t bytes, snn_workspace *ws) {
    SNN_TRY(snn_dbuf_reserve(ctx, &ws->buf, bytes));
    size_t global[2] = {count * g->Ho, g->C};
    return snn_launch(ctx, "snn_k_im2col", 2, global, NULL,
                      SNN_ARGS(SNN_ARG_MEM(in.mem), SNN_ARG_MEM(ws->buf.mem), SNN_ARG_UINT(g->C),
                               SNN_ARG_UINT(in.cstride), SNN_ARG_UINT(g->H), SNN_ARG_UINT(g->W), SNN_ARG_UINT(g->K),
                               SNN_ARG_UINT(g->stride), SNN_ARG_UINT(g->pad), SNN_ARG_UINT(g->Ho),
                               SNN_ARG_UINT(g->Wo), SNN_ARG_UINT(first), SNN_ARG_UINT(count)));
}

snn_status snn_op_conv2d_at(snn_context *ctx, snn_images in, size_t N, const snn_conv_geom *g, cl_mem weight,
                            snn_images out, snn_workspace *ws) {
    if (snn_conv_is3x3(g)) return snn_op_conv3x3_at(ctx, in, g->C, N, g->H, g->W, weight, g->Cout, out, ws);
    const size_t HWo = g->Ho * g->Wo, K = g->C * g->K * g->K, per_image = K * HWo * sizeof(float);
    const size_t chunk = chunk_images(ws, per_image, N);
    for (size_t n0 = 0; n0 < N; n0 += chunk) {
        const size_t count = N - n0 < chunk ? N - n0 : chunk;
        SNN_TRY(im2col_general(ctx, in, g, in.off + n0, count, chunk * per_image, ws));
        SNN_TRY(snn_gemm(ctx, 0, 0, g->Cout, count * HWo, K, 1.0f, weight, 0, K, ws->buf.mem, 0, count * HWo, 0.0f,
                         out.mem, (out.off + n0) * HWo, out.cstride * HWo));
    }
    return SNN_OK;
}

snn_status snn_op_conv2d_backward_at(snn_context *ctx, snn_images in, size_t N, const snn_conv_geom *g,
                                     cl_mem weight, snn_images dout, cl_mem dweight, float beta, snn_images din,
                                     snn_workspace *ws, snn_workspace *ws2) {
    if (snn_conv_is3x3(g))
        return snn_op_conv3x3_backward_at(ctx, in, g->C, N, g->H, g->W, weight, g->Cout, dout, dweight, beta, din,
                                          ws, ws2);
    const size_t HWo = g->Ho * g->Wo, K = g->C * g->K * g->K, per_image = K * HWo * sizeof(float);
    const size_t chunk = chunk_images(ws, per_image, N);
    if (din.mem) SNN_TRY(snn_dbuf_reserve(ctx, &ws2->buf, chunk * per_image));
    for (size_t n0 = 0; n0 < N; n0 += chunk) {
        const size_t count = N - n0 < chunk ? N - n0 : chunk;
        const size_t g0 = dout.off + n0;
        if (dweight) {
            SNN_TRY(im2col_general(ctx, in, g, in.off + n0, count, chunk * per_image, ws));
            SNN_TRY(snn_gemm(ctx, 0, 1, g->Cout, K, count * HWo, 1.0f, dout.mem, g0 * HWo, dout.cstride * HWo,
                             ws->buf.mem, 0, count * HWo, n0 == 0 ? beta : 1.0f, dweight, 0, K));
        }
        if (!din.mem) continue;
        SNN_TRY(snn_gemm(ctx, 1, 0, K, count * HWo, g->Cout, 1.0f, weight, 0, K, dout.mem, g0 * HWo,
                         dout.cstride * HWo, 0.0f, ws2->buf.mem, 0, count * HWo));
        size_t g2[2] = {count * g->H, g->C};
        SNN_TRY(snn_launch(ctx, "snn_k_col2im", 2, g2, NULL,
                           SNN_ARGS(SNN_ARG_MEM(ws2->buf.mem), SNN_ARG_MEM(din.mem), SNN_ARG_UINT(g->C),
                                    SNN_ARG_UINT(din.cstride), SNN_ARG_UINT(g->H), SNN_ARG_UINT(g->W),
                                    SNN_ARG_UINT(g->K), SNN_ARG_UINT(g->stride), SNN_ARG_UINT(g->pad),
                                    SNN_ARG_UINT(g->Ho), SNN_ARG_UINT(g->Wo), SNN_ARG_UINT(din.off + n0),
                                    SNN_ARG_UINT(count))));
    }
    return SNN_OK;
}
