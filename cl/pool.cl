/* 2x2 average pooling, stride 2, flooring odd sizes (AvgPool2d(2)):
 * in (P, H, W) -> out (P, H/2, W/2) for P = channels * images planes. */
__kernel void snn_k_avgpool2x2(__global const float *in, __global float *out, const uint P, const uint H,
                         const uint W) {
    const uint Ho = H / 2, Wo = W / 2;
    const uint i = get_global_id(0);
    if (i >= P * Ho * Wo) return;
    const uint x = i % Wo, y = (i / Wo) % Ho, p = i / (Wo * Ho);
    __global const float *src = in + (size_t)p * H * W + (2 * y) * W + 2 * x;
    out[i] = 0.25f * ((src[0] + src[1]) + (src[W] + src[W + 1]));
}

/* Average or max pooling of any square window K with any stride, flooring (AvgPool2d,
 * MaxPool2d without padding): in (P, H, W) -> out (P, Ho, Wo). The 2x2 average of the
 * seed's models takes avgpool2x2 above, or is fused into the LIF pass. */
__kernel void snn_k_pool2d(__global const float *in, __global float *out, const uint P, const uint H, const uint W,
                           const uint K, const uint stride, const uint Ho, const uint Wo, const uint is_max) {
    const uint i = get_global_id(0);
    if (i >= P * Ho * Wo) return;
    const uint x = i % Wo, y = (i / Wo) % Ho, p = i / (Wo * Ho);
    __global const float *src = in + (size_t)p * H * W + (size_t)(y * stride) * W + x * stride;
    float acc = is_max ? src[0] : 0.0f;
    for (uint ky = 0; ky < K; ky++)
        for (uint kx = 0; kx < K; kx++) {
            const float v = src[ky * W + kx];
            acc = is_max ? (v > acc ? v : acc) : acc + v;
        }
    out[i] = is_max ? acc : acc / (float)(K * K);
}

/* Spike (ky, kx) of the window at s0 in plane pl, from the LIF's recorded membranes
 * rec (planes ordered (g, p, t, b), TB = T*B per trajectory): the reference's spike is
 * mem > thr; with two trajectories (traj = 2) the perturbed plane holds the raw
 * difference, so its spike is mem + diff > thr, mem from the plane TB before. */
inline float pool_spike(__global const float *rec, const uint pl, const size_t s, const uint HW, const float thr,
                        const uint traj, const uint TB) {
    const float v = rec[(size_t)pl * HW + s];
    if (traj == 2 && (pl / TB) % 2 == 1) return rec[(size_t)(pl - TB) * HW + s] + v > thr ? 1.0f : 0.0f;
    return v > thr ? 1.0f : 0.0f;
}

/* The gradient of snn_k_pool2d's input, gathered: pixel (y, x) of plane pl takes from
 * each window holding it 1/K^2 of the window's gradient (average), or all of it where
 * the pixel is the window's first largest spike in row-major order, as PyTorch's
 * MaxPool2d routes it (max; the spikes from rec as pool_spike reads them). Pixels that
 * flooring leaves out of every window get 0. g (P, Ho, Wo) -> gin (P, H, W). */
__kernel void snn_k_pool2d_backward(__global const float *g, __global float *gin, __global const float *rec,
                                    const float thr, const uint traj, const uint TB, const uint P, const uint H,
                                    const uint W, const uint K, const uint stride, const uint Ho, const uint Wo,
                                    const uint is_max) {
    const uint i = get_global_id(0);
    if (i >= P * H * W) return;
    const uint HW = H * W, x = i % W, y = (i / W) % H, pl = i / HW;
    /* windows oy with oy*stride <= y < oy*stride + K */
    const uint oy0 = y + 1 > K ? (y + 1 - K + stride - 1) / stride : 0, ox0 = x + 1 > K ? (x + 1 - K + stride - 1) / stride : 0;
    float acc = 0.0f;
    for (uint oy = oy0; oy <= y / stride && oy < Ho; oy++)
        for (uint ox = ox0; ox <= x / stride && ox < Wo; ox++) {
            const float gw = g[((size_t)pl * Ho + oy) * Wo + ox];
            if (!is_max) {
                acc += gw / (float)(K * K);
                continue;
            }
            const size_t s0 = (size_t)(oy * stride) * W + ox * stride;
            float best = pool_spike(rec, pl, s0, HW, thr, traj, TB);
            uint arg = 0;
            for (uint k = 1; k < K * K; k++) {
                const float v = pool_spike(rec, pl, s0 + (k / K) * W + k % K, HW, thr, traj, TB);
                if (v > best) {
                    best = v;
                    arg = k;
                }
            }
            if (oy * stride + arg / K == y && ox * stride + arg % K == x) acc += gw;
        }
    gin[i] = acc;
}
