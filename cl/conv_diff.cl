/* The perturbed trajectory's convolution as a sparse difference (Lyapunov estimate,
 * eval mode). The convolution is linear, so the perturbed output is the reference's
 * plus conv(xp - x), and with a tiny eps the two trajectories' input spikes almost
 * never differ: only output pixels with a differing input pixel in their 3x3 window
 * need computing. Inputs are (C, ..., N, H, W): channels cstride apart, the reference
 * images first and the perturbed ones p_off further. Pixels i = (n, y, x) of N*H*W. */

/* mark[i] = 1 where any channel of input pixel i differs between the trajectories. */
__kernel void snn_k_diff_mark(__global const float *in, const uint C, const uint cstride, const uint p_off,
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
__kernel void snn_k_diff_select(__global const uint *mark, const uint N, const uint H, const uint W,
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
__kernel void snn_k_diff_gather(__global const float *in, const uint C, const uint cstride, const uint p_off,
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
__kernel void snn_k_conv3x3_diff(__global const float *weight, const uint K, const uint Cout,
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

/* The perturbed trajectory's convolution output from the reference's and the sparse
 * difference (training, where BatchNorm needs it whole): z (Cout, ..) with channels
 * zstride apart, the reference's N*H*W pixels first and the perturbed ones p_off
 * further: zp[i] = z[i] + dx[co*slots + idx[i]] where pixel i has a slot, else z[i]. */
__kernel void snn_k_diff_apply(__global float *z, const uint zstride, const uint p_off, const uint NP,
                         __global const int *idx, __global const float *dx, const uint slots, const uint Cout) {
    const uint i = get_global_id(0), co = get_global_id(1);
    if (i >= NP || co >= Cout) return;
    __global float *zc = z + (size_t)co * zstride;
    const int k = idx[i];
    zc[p_off + i] = k >= 0 ? zc[i] + dx[(size_t)co * slots + (uint)k] : zc[i];
}
