/* im2col for 3x3 convolutions with stride 1 and padding 1, channel-major:
 * in (C, N, H, W) -> col (C*9, cols) where column j = (n - n0) * H*W + y*W + x covers
 * images n0 .. n0+count-1. The convolution is then W (Cout, C*9) x col.
 * One work-item per image row ((n - n0)*H + y, c) writes the row's 9 shifted copies:
 * rows are long enough to amortize the index arithmetic, and there are enough of them
 * to fill large work-groups (runtimes on CPUs pay per work-group). */
__kernel void snn_k_im2col3x3(__global const float *in, __global float *col, const uint C, const uint N,
                        const uint H, const uint W, const uint n0, const uint count) {
    const uint row = get_global_id(0), c = get_global_id(1);
    if (row >= count * H || c >= C) return;
    const uint nl = row / H, y = row % H, HW = H * W;
    const size_t cols = (size_t)count * HW;
    __global const float *src = in + ((size_t)c * N + n0 + nl) * HW;
    __global float *dst = col + (size_t)c * 9 * cols + (size_t)nl * HW + (size_t)y * W;
    for (int ky = 0; ky < 3; ky++) {
        const int sy = (int)y + ky - 1;
        const int rowok = sy >= 0 && sy < (int)H;
        __global const float *s = src + (rowok ? sy : 0) * (int)W;
        for (int kx = 0; kx < 3; kx++) {
            __global float *d = dst + (size_t)(ky * 3 + kx) * cols;
            for (int x = 0; x < (int)W; x++) {
                const int sx = x + kx - 1;
                d[x] = (rowok && sx >= 0 && sx < (int)W) ? s[sx] : 0.0f;
            }
        }
    }
}

/* The adjoint of im2col3x3: the gradient of the input images n0 .. n0+count-1 from
 * dcol (C*9, count*H*W), gathered (no atomics): input pixel (y, x) collects every
 * tap (ky, kx) whose output pixel (y - ky + 1, x - kx + 1) lies inside the image.
 * One work-item per image row, as in im2col3x3. */
__kernel void snn_k_col2im3x3(__global const float *dcol, __global float *out, const uint C, const uint N,
                        const uint H, const uint W, const uint n0, const uint count) {
    const uint row = get_global_id(0), c = get_global_id(1);
    if (row >= count * H || c >= C) return;
    const uint nl = row / H, y = row % H, HW = H * W;
    const size_t cols = (size_t)count * HW;
    __global const float *src = dcol + (size_t)c * 9 * cols + (size_t)nl * HW;
    __global float *dst = out + ((size_t)c * N + n0 + nl) * HW + (size_t)y * W;
    for (int x = 0; x < (int)W; x++) dst[x] = 0.0f;
    for (int ky = 0; ky < 3; ky++) {
        const int oy = (int)y - ky + 1;
        if (oy < 0 || oy >= (int)H) continue;
        for (int kx = 0; kx < 3; kx++) {
            __global const float *s = src + (size_t)(ky * 3 + kx) * cols + (size_t)oy * W;
            for (int x = 0; x < (int)W; x++) {
                const int ox = x - kx + 1;
                if (ox >= 0 && ox < (int)W) dst[x] += s[ox];
            }
        }
    }
}

/* im2col for any square kernel K, stride and zero padding (the 3x3, stride 1, padding
 * 1 convolutions take im2col3x3 above or the sparse paths): in (C, N, H, W) ->
 * col (C*K*K, count*Ho*Wo), column j = (n - n0) * Ho*Wo + oy*Wo + ox, row
 * c*K*K + ky*K + kx holding in[c, n, oy*stride + ky - pad, ox*stride + kx - pad]
 * (0 outside the image). One work-item per output row ((n - n0)*Ho + oy, c). */
__kernel void snn_k_im2col(__global const float *in, __global float *col, const uint C, const uint N, const uint H,
                           const uint W, const uint K, const uint stride, const uint pad, const uint Ho,
                           const uint Wo, const uint n0, const uint count) {
    const uint row = get_global_id(0), c = get_global_id(1);
    if (row >= count * Ho || c >= C) return;
    const uint nl = row / Ho, oy = row % Ho;
    const size_t cols = (size_t)count * Ho * Wo;
    __global const float *src = in + ((size_t)c * N + n0 + nl) * H * W;
    __global float *dst = col + (size_t)c * K * K * cols + (size_t)nl * Ho * Wo + (size_t)oy * Wo;
    for (uint ky = 0; ky < K; ky++) {
        const int sy = (int)(oy * stride + ky) - (int)pad;
        const int rowok = sy >= 0 && sy < (int)H;
        __global const float *s = src + (rowok ? sy : 0) * (int)W;
        for (uint kx = 0; kx < K; kx++) {
            __global float *d = dst + (size_t)(ky * K + kx) * cols;
            for (uint ox = 0; ox < Wo; ox++) {
                const int sx = (int)(ox * stride + kx) - (int)pad;
                d[ox] = (rowok && sx >= 0 && sx < (int)W) ? s[sx] : 0.0f;
            }
        }
    }
}

/* The adjoint of im2col: input pixel (y, x) of images n0 .. n0+count-1 gathers every
 * tap (ky, kx) that read it, the output pixel ((y + pad - ky) / stride, ...) where that
 * divides exactly and lies inside Ho x Wo. One work-item per input row. */
__kernel void snn_k_col2im(__global const float *dcol, __global float *out, const uint C, const uint N, const uint H,
                           const uint W, const uint K, const uint stride, const uint pad, const uint Ho,
                           const uint Wo, const uint n0, const uint count) {
    const uint row = get_global_id(0), c = get_global_id(1);
    if (row >= count * H || c >= C) return;
    const uint nl = row / H, y = row % H;
    const size_t cols = (size_t)count * Ho * Wo;
    __global const float *src = dcol + (size_t)c * K * K * cols + (size_t)nl * Ho * Wo;
    __global float *dst = out + ((size_t)c * N + n0 + nl) * H * W + (size_t)y * W;
    for (uint x = 0; x < W; x++) {
        float acc = 0.0f;
        for (uint ky = 0; ky < K; ky++) {
            const int ty = (int)(y + pad) - (int)ky;
            if (ty < 0 || ty % (int)stride != 0 || ty / (int)stride >= (int)Ho) continue;
            const uint oy = (uint)ty / stride;
            for (uint kx = 0; kx < K; kx++) {
                const int tx = (int)(x + pad) - (int)kx;
                if (tx < 0 || tx % (int)stride != 0 || tx / (int)stride >= (int)Wo) continue;
                acc += src[(size_t)(ky * K + kx) * cols + (size_t)oy * Wo + (uint)tx / stride];
            }
        }
        dst[x] = acc;
    }
}
