/* 3x3 convolutions (stride 1, padding 1) that compute only on nonzero inputs: the
 * inputs of every layer after the first are spikes (0/1) or pooled spikes (0, 1/4 ..
 * 1), mostly zero, so the products the dense im2col + GEMM path spends on zeros are
 * skipped (src/ops/conv.c picks the path from the measured density).
 *
 * Inputs are channel-major (C, ..., N, H, W): channel c of pixel i (i = n*H*W + y*W + x
 * within a chunk of images) at in[off + c*cstride + i]. The kernels work on a chunk of
 * NPc pixels (whole images) and add up in a fixed order: results are the same run to
 * run, and differ from the dense path's only by float rounding (other order).
 *
 * Two forms of each product: the plain name for CPU runtimes (one work-item computes a
 * block of output channels in float16 registers, the loads of a weight row or gradient
 * row are contiguous vectors), `_lane` for GPUs (one work-item per output value, the
 * output channel in dimension 0, so neighbouring lanes read neighbouring floats). */

/* The input value the weight-gradient scan sees: the input, or with p_off > 0 the
 * difference between the input p_off elements further (the perturbed trajectory's)
 * and it. */
inline float sparse_input(__global const float *src, const uint i, const uint p_off) {
    return p_off ? src[i + p_off] - src[i] : src[i];
}

/* partial[w] = number of nonzero inputs (sparse_input) among pixels
 * w*SNN_SPARSE_COUNT_PIXELS .. (+SNN_SPARSE_COUNT_PIXELS - 1) of the chunk, over all channels. */
__kernel void snn_k_nonzero_count(__global const float *in, const uint C, const uint cstride, const uint off,
                                  const uint p_off, const uint NPc, __global uint *partial) {
    const uint w = get_global_id(0), i0 = w * SNN_SPARSE_COUNT_PIXELS;
    if (i0 >= NPc) return;
    const uint i1 = min(i0 + (uint)SNN_SPARSE_COUNT_PIXELS, NPc);
    uint n = 0;
    for (uint c = 0; c < C; c++) {
        __global const float *src = in + off + (size_t)c * cstride;
        for (uint i = i0; i < i1; i++) n += sparse_input(src, i, p_off) != 0.0f;
    }
    partial[w] = n;
}

/* Per pixel of the chunk, its nonzero channels in ascending order: cnt[i] of them, at
 * ch[i*C + e] with values val[i*C + e]. */
__kernel void snn_k_spike_lists(__global const float *in, const uint C, const uint cstride, const uint off,
                                const uint NPc, __global uint *cnt, __global uint *ch, __global float *val) {
    const uint i = get_global_id(0);
    if (i >= NPc) return;
    __global const float *src = in + off + i;
    const size_t base = (size_t)i * C;
    uint e = 0;
    for (uint c = 0; c < C; c++) {
        const float v = src[(size_t)c * cstride];
        if (v != 0.0f) {
            ch[base + e] = c;
            val[base + e] = v;
            e++;
        }
    }
    cnt[i] = e;
}

/* out (R, ld) columns off .. off+n-1, transposed and padded: out[j*Rp + r] = in[r*ld +
 * off + j] for r < R, 0 for R <= r < Rp. The weights (Cout, C*9) become rows of output
 * channels (C*9, Rp); an output gradient (Cout, N*H*W) rows per pixel (NPc, Rp).
 * Work-item: 8 consecutive columns, all rows (reads 8 contiguous floats per row; its
 * 8 output rows fill in step, so writes combine in cache). */
__kernel void snn_k_transpose_pad(__global const float *in, const uint R, const uint ld, const uint off,
                                  const uint n, __global float *out, const uint Rp) {
    const uint j0 = get_global_id(0) * 8;
    if (j0 >= n) return;
    const uint w = min(8u, n - j0);
    __global float *o = out + (size_t)j0 * Rp;
    for (uint r = 0; r < Rp; r++) {
        __global const float *s = in + (size_t)r * ld + off + j0;
        for (uint q = 0; q < w; q++) o[(size_t)q * Rp + r] = r < R ? s[q] : 0.0f;
    }
}

/* Visits the nonzero inputs in the 3x3 window of pixel i (tap order, then channel
 * order), with its tap t, channel c and value v in scope. */
#define SPARSE_WINDOW_BEGIN(i)                                                          \
    const uint HW = H * W, img = (i) / HW, y = ((i) % HW) / W, x = (i) % W;             \
    for (uint ky = 0; ky < 3; ky++) {                                                   \
        const int sy = (int)y + (int)ky - 1;                                            \
        if (sy < 0 || sy >= (int)H) continue;                                           \
        for (uint kx = 0; kx < 3; kx++) {                                               \
            const int sx = (int)x + (int)kx - 1;                                        \
            if (sx < 0 || sx >= (int)W) continue;                                       \
            const uint j = img * HW + (uint)sy * W + (uint)sx, t = ky * 3 + kx, n = cnt[j]; \
            __global const uint *cj = ch + (size_t)j * C;                               \
            __global const float *vj = val + (size_t)j * C;                             \
            for (uint e = 0; e < n; e++) {                                              \
                const uint c = cj[e];                                                   \
                const float v = vj[e];
#define SPARSE_WINDOW_END \
    }                     \
    }                     \
    }

/* out[out_off + co*ldo + i] = sum over the window's nonzero inputs of
 * wt[(c*9 + t)*Rp + co] * v, for the SNN_SPARSE_CW output channels of block
 * get_global_id(1); wt from transpose_pad of the weights (Rp a multiple of SNN_SPARSE_CW). */
__kernel void snn_k_conv3x3_sparse(__global const uint *cnt, __global const uint *ch, __global const float *val,
                                   const uint C, const uint H, const uint W, const uint NPc,
                                   __global const float *wt, const uint Rp, const uint Cout,
                                   __global float *out, const uint out_off, const uint ldo) {
    const uint i = get_global_id(0), co0 = (uint)get_global_id(1) * SNN_SPARSE_CW;
    if (i >= NPc || co0 >= Cout) return;
    float16 acc[SNN_SPARSE_CV];
    for (int b = 0; b < SNN_SPARSE_CV; b++) acc[b] = (float16)(0.0f);
    SPARSE_WINDOW_BEGIN(i)
    __global const float *wrow = wt + (size_t)(c * 9 + t) * Rp + co0;
    for (int b = 0; b < SNN_SPARSE_CV; b++) acc[b] = fma((float16)(v), vload16(b, wrow), acc[b]);
    SPARSE_WINDOW_END
    float res[SNN_SPARSE_CW];
    for (int b = 0; b < SNN_SPARSE_CV; b++) vstore16(acc[b], b, res);
    const uint nco = min((uint)SNN_SPARSE_CW, Cout - co0);
    for (uint k = 0; k < nco; k++) out[out_off + (size_t)(co0 + k) * ldo + i] = res[k];
}

/* The same, one output value per work-item: (co, i) = (get_global_id(0), get_global_id(1)). */
__kernel void snn_k_conv3x3_sparse_lane(__global const uint *cnt, __global const uint *ch,
                                        __global const float *val, const uint C, const uint H, const uint W,
                                        const uint NPc, __global const float *wt, const uint Rp,
                                        const uint Cout, __global float *out, const uint out_off,
                                        const uint ldo) {
    const uint co = get_global_id(0), i = get_global_id(1);
    if (i >= NPc || co >= Cout) return;
    float acc = 0.0f;
    SPARSE_WINDOW_BEGIN(i)
    acc = fma(v, wt[(size_t)(c * 9 + t) * Rp + co], acc);
    SPARSE_WINDOW_END
    out[out_off + (size_t)co * ldo + i] = acc;
}

/* The weight gradient's scan: visits channel c's nonzero inputs v (sparse_input) in
 * ascending pixel order and, for each, every tap t = ky*3 + kx whose output pixel p
 * (y - ky + 1, x - kx + 1 in the same image, within the chunk) lies inside the image,
 * with v, t and p in scope. */
#define SPARSE_SCAN_BEGIN                                                               \
    const uint HW = H * W;                                                              \
    __global const float *src = in + off + (size_t)c * cstride;                         \
    for (uint i = 0; i < NPc; i++) {                                                    \
        const float v = sparse_input(src, i, p_off);                                    \
        if (v == 0.0f) continue;                                                        \
        const uint img = i / HW, y = (i % HW) / W, x = i % W;                           \
        for (uint ky = 0; ky < 3; ky++) {                                               \
            const int oy = (int)y - (int)ky + 1;                                        \
            if (oy < 0 || oy >= (int)H) continue;                                       \
            for (uint kx = 0; kx < 3; kx++) {                                           \
                const int ox = (int)x - (int)kx + 1;                                    \
                if (ox < 0 || ox >= (int)W) continue;                                   \
                const uint t = ky * 3 + kx;                                             \
                const size_t p = (size_t)img * HW + (uint)oy * W + (uint)ox;
#define SPARSE_SCAN_END \
    }                   \
    }                   \
    }

/* Weight gradient over a chunk: dw (Cout, C*9) = beta * dw + the sum over the visits
 * of SPARSE_SCAN of v * gt[p, co], gt (NPc, Rp) from transpose_pad of the output
 * gradient (Rp a multiple of 8).
 * One work-item per input channel c, work-groups of one: it scans channel c's inputs
 * once, in ascending pixel order, and adds each nonzero's 9 gradient rows into its
 * (9, Rp) accumulators in local memory (acc: 9 * Rp floats), which stay in cache.
 * beta == 0 never reads dw. */
__kernel void snn_k_conv3x3_wgrad_sparse(__global const float *in, const uint C, const uint cstride,
                                         const uint off, const uint p_off, const uint H, const uint W, const uint NPc,
                                         __global const float *gt, const uint Rp, const uint Cout,
                                         const float beta, __global float *dw, __local float *acc) {
    const uint c = get_global_id(0);
    if (c >= C) return;
    const uint nb = Rp / 8;
    for (uint k = 0; k < 9 * Rp; k++) acc[k] = 0.0f;
    SPARSE_SCAN_BEGIN
    __global const float *g = gt + p * Rp;
    __local float *a = acc + t * Rp;
    for (uint b = 0; b < nb; b++) vstore8(fma((float8)(v), vload8(b, g), vload8(b, a)), b, a);
    SPARSE_SCAN_END
    const uint K = C * 9;
    for (uint co = 0; co < Cout; co++)
        for (uint t = 0; t < 9; t++) {
            __global float *d = dw + (size_t)co * K + c * 9 + t;
            const float r = acc[t * Rp + co];
            *d = beta == 0.0f ? r : r + beta * *d;
        }
}

/* The same, one output channel per work-item: (co, c) = (get_global_id(0), get_global_id(1)). */
__kernel void snn_k_conv3x3_wgrad_sparse_lane(__global const float *in, const uint C, const uint cstride,
                                              const uint off, const uint p_off, const uint H, const uint W, const uint NPc,
                                              __global const float *gt, const uint Rp, const uint Cout,
                                              const float beta, __global float *dw) {
    const uint co = get_global_id(0), c = get_global_id(1);
    if (co >= Cout || c >= C) return;
    float acc[9];
    for (int t = 0; t < 9; t++) acc[t] = 0.0f;
    SPARSE_SCAN_BEGIN
    acc[t] = fma(v, gt[p * Rp + co], acc[t]);
    SPARSE_SCAN_END
    __global float *d = dw + (size_t)co * C * 9 + c * 9;
    for (int t = 0; t < 9; t++) d[t] = beta == 0.0f ? acc[t] : acc[t] + beta * d[t];
}
