/* im2col for 3x3 convolutions with stride 1 and padding 1, channel-major:
 * in (C, N, H, W) -> col (C*9, cols) where column j = (n - n0) * H*W + y*W + x covers
 * images n0 .. n0+count-1. The convolution is then W (Cout, C*9) x col.
 * One work-item per image row ((n - n0)*H + y, c) writes the row's 9 shifted copies:
 * rows are long enough to amortize the index arithmetic, and there are enough of them
 * to fill large work-groups (runtimes on CPUs pay per work-group). */
__kernel void im2col3x3(__global const float *in, __global float *col, const uint C, const uint N,
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
__kernel void col2im3x3(__global const float *dcol, __global float *out, const uint C, const uint N,
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

/* The perturbed trajectory's convolution as a sparse difference (Lyapunov estimate,
 * eval mode). The convolution is linear, so the perturbed output is the reference's
 * plus conv(xp - x), and with a tiny eps the two trajectories' input spikes almost
 * never differ: only output pixels with a differing input pixel in their 3x3 window
 * need computing. Inputs are (C, ..., N, H, W): channels cstride apart, the reference
 * images first and the perturbed ones p_off further. Pixels i = (n, y, x) of N*H*W. */

/* mark[i] = 1 where any channel of input pixel i differs between the trajectories. */
__kernel void diff_mark(__global const float *in, const uint C, const uint cstride, const uint p_off,
                        const uint NP, __global uint *mark) {
    const uint i = get_global_id(0);
    if (i >= NP) return;
    uint any = 0;
    for (uint c = 0; c < C && !any; c++) {
        const size_t j = (size_t)c * cstride + i;
        any = in[j] != in[j + p_off];
    }
    mark[i] = any;
}

/* Output pixels with a marked pixel in their 3x3 window take slots k from count[0]
 * (in any order: each slot is computed on its own): idx[i] = k, else -1, and
 * list[k] = i; idx[N*H*W + n] = 1 (zeroed before) flags images n with a slot, so
 * readers skip the lookups elsewhere. Slots past cap are counted, not stored: the
 * host then goes dense. */
__kernel void diff_select(__global const uint *mark, const uint N, const uint H, const uint W,
                          __global int *idx, __global uint *list, __global uint *count, const uint cap) {
    const uint i = get_global_id(0), HW = H * W;
    if (i >= N * HW) return;
    const int y = (int)((i % HW) / W), x = (int)(i % W);
    __global const uint *m = mark + (size_t)(i / HW) * HW;
    uint hit = 0;
    for (int sy = max(y - 1, 0); sy <= min(y + 1, (int)H - 1); sy++)
        for (int sx = max(x - 1, 0); sx <= min(x + 1, (int)W - 1); sx++) hit |= m[sy * (int)W + sx];
    int k = -1;
    if (hit) {
        idx[N * HW + i / HW] = 1;
        const uint s = atomic_inc(count);
        if (s < cap) {
            list[s] = i;
            k = (int)s;
        }
    }
    idx[i] = k;
}

/* Slot k's nonzero input differences xp - x in its pixel's 3x3 window, as pairs
 * (c*9 + tap, value) in ascending order at k*C*9 of ent and val; their number in nnz[k]. */
__kernel void diff_gather(__global const float *in, const uint C, const uint cstride, const uint p_off,
                          const uint H, const uint W, __global const uint *list, const uint count,
                          __global uint *ent, __global float *val, __global uint *nnz) {
    const uint k = get_global_id(0);
    if (k >= count) return;
    const uint i = list[k], HW = H * W;
    const int y = (int)((i % HW) / W), x = (int)(i % W);
    const size_t base = (size_t)k * C * 9;
    __global const float *img = in + (size_t)(i / HW) * HW;
    uint e = 0;
    for (uint c = 0; c < C; c++) {
        __global const float *src = img + (size_t)c * cstride;
        for (int ky = 0; ky < 3; ky++) {
            const int sy = y + ky - 1;
            if (sy < 0 || sy >= (int)H) continue;
            for (int kx = 0; kx < 3; kx++) {
                const int sx = x + kx - 1;
                if (sx < 0 || sx >= (int)W) continue;
                const size_t j = (size_t)sy * W + sx;
                const float d = src[j + p_off] - src[j];
                if (d != 0.0f) {
                    ent[base + e] = c * 9 + (uint)(ky * 3 + kx);
                    val[base + e] = d;
                    e++;
                }
            }
        }
    }
    nnz[k] = e;
}

/* dx[co*count + k] = sum of weight (Cout, C*9)[co, e] * value over slot k's pairs:
 * perturbed minus reference convolution output at slot k's pixel, channel co. */
__kernel void conv3x3_diff(__global const float *weight, const uint K, const uint Cout,
                           __global const uint *ent, __global const float *val,
                           __global const uint *nnz, const uint count, __global float *dx) {
    const uint k = get_global_id(0), co = get_global_id(1);
    if (k >= count || co >= Cout) return;
    __global const float *w = weight + (size_t)co * K;
    const size_t base = (size_t)k * K;
    const uint n = nnz[k];
    float acc = 0.0f;
    for (uint e = 0; e < n; e++) acc += w[ent[base + e]] * val[base + e];
    dx[(size_t)co * count + k] = acc;
}
