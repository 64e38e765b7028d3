/* Backward through time of LIF layers (one trajectory, fused or from recorded
 * membranes, and the estimate's two trajectories): the neuron, its reset and its
 * surrogate (sg_kind, sg) are cl/lif.cl's. */

/* Gradient arriving at a LIF neuron's spike from above: gup has the layout
 * (G, P, T, B, Ho, Wo) of the layer's (pooled) output; with pooling each spike gets a
 * quarter of its window's gradient (0 outside the floor-pooled area). */
inline float lif_upstream(__global const float *gup, const uint g, const uint p, const uint t,
                          const uint b, const uint s, const uint P, const uint T, const uint B,
                          const uint H, const uint W, const uint pool) {
    const uint y = s / W, x = s % W;
    if (!pool) return gup[(((size_t)g * P + p) * T + t) * B * H * W + (size_t)b * H * W + s];
    const uint Ho = H / 2, Wo = W / 2, yo = y / 2, xo = x / 2;
    if (yo >= Ho || xo >= Wo) return 0.0f;
    return 0.25f * gup[(((size_t)g * P + p) * T + t) * B * Ho * Wo + ((size_t)b * Ho + yo) * Wo + xo];
}

/* Backward through time of one trajectory. buf (G, T, B*S) holds the recorded
 * membranes mem[t] on entry and d loss / d cur[t] on exit (in place). No gradient
 * flows through the reset (snnTorch detaches it):
 *   g_mem[t] = g_spk[t] * surrogate(mem[t]) + decay(mem[t]) * g_mem[t+1],  g_cur[t] = g_mem[t]. */
__kernel void snn_k_lif_backward(__global float *buf, __global const float *gup, const float beta,
                           const float thr, const uint reset, const uint sg_kind, const float sg, const uint G, const uint S, const uint B, const uint T,
                           const uint H, const uint W, const uint pool) {
    const uint m = get_global_id(0), g = get_global_id(1);
    const uint M = B * S;
    if (m >= M || g >= G) return;
    const uint b = m / S, s = m % S;
    float gm = 0.0f;
    for (uint t = T; t-- > 0;) {
        const size_t i = ((size_t)g * T + t) * M + m;
        const float gs = lif_upstream(gup, g, 0, t, b, s, 1, T, B, H, W, pool);
        gm = gs * lif_surrogate(buf[i], thr, sg_kind, sg) + lif_decay(buf[i], beta, thr, reset) * gm;
        buf[i] = gm;
    }
}

/* Largest T for which lif_backward_fused keeps a neuron's membranes in registers. */

/* Backward through time of one trajectory with the forward recomputed in private
 * memory (T <= SNN_LIF_FUSED_MAX_T), so membranes never go to global memory: the current
 * is cur[t] = scale[k] * in[in_off + g*gstride + t*tstride + m] + shift[k] as in
 * lif_forward (same rounding, same spikes). Writes d loss / d cur[t] to
 * out[(g*T + t)*M + m], or with sum_t its sum over t to out[g*M + m] (when every step
 * shares one input, as under direct encoding, only the sum is needed downstream). */
#define LIF_BACKWARD_FUSED_ARGS                                                                   \
    __global const float *in, const uint in_off, const uint gstride, const uint tstride,          \
        __global const float *scale, __global const float *shift, const uint aff_tstride,        \
        const float beta, const float thr, const uint reset, const uint sg_kind, const float sg,   \
        __global const float *gup, __global float *out, const uint G, const uint S, const uint B, \
        const uint T, const uint H, const uint W, const uint pool, const uint sum_t
#define LIF_BACKWARD_FUSED_PASS                                                                     \
    in, in_off, gstride, tstride, scale, shift, aff_tstride, beta, thr, reset, sg_kind, sg, gup, out, G, S, B, T, \
        H, W, pool, sum_t

/* One neuron (g, m) of lif_backward_fused. */
inline void lif_backward_fused_one(LIF_BACKWARD_FUSED_ARGS, const uint g, const uint m) {
    const uint M = B * S;
    const uint b = m / S, s = m % S;
    __global const float *x = in + in_off + (size_t)g * gstride + m;
    float mem[SNN_LIF_FUSED_MAX_T];
    float v = 0.0f;
    for (uint t = 0; t < T; t++) {
        const uint k = g + t * aff_tstride;
        v = lif_step(v, scale[k] * x[(size_t)t * tstride] + shift[k], beta, thr, reset);
        mem[t] = v;
    }
    float gm = 0.0f, total = 0.0f;
    for (uint t = T; t-- > 0;) {
        const float gs = lif_upstream(gup, g, 0, t, b, s, 1, T, B, H, W, pool);
        gm = gs * lif_surrogate(mem[t], thr, sg_kind, sg) + lif_decay(mem[t], beta, thr, reset) * gm;
        if (sum_t)
            total += gm;
        else
            out[((size_t)g * T + t) * M + m] = gm;
    }
    if (sum_t) out[(size_t)g * M + m] = total;
}

__kernel void snn_k_lif_backward_fused(LIF_BACKWARD_FUSED_ARGS) {
    const uint m = get_global_id(0), g = get_global_id(1);
    if (m < B * S && g < G) lif_backward_fused_one(LIF_BACKWARD_FUSED_PASS, g, m);
}

/* The same for 8 consecutive neurons m0 .. m0+7 per work-item, m0 = 8 get_global_id(0),
 * as float8 (for CPU runtimes, which run a work-item's loops as written: the lanes
 * make them vector code). The expressions are lif_forward's, so the recomputed
 * membranes and spikes are the forward's bit for bit. A partial block at the end
 * runs neuron by neuron. */
__kernel void snn_k_lif_backward_fused_vec8(LIF_BACKWARD_FUSED_ARGS) {
    const uint m0 = get_global_id(0) * 8, g = get_global_id(1), M = B * S;
    if (m0 >= M || g >= G) return;
    if (m0 + 8 > M) {
        for (uint m = m0; m < M; m++) lif_backward_fused_one(LIF_BACKWARD_FUSED_PASS, g, m);
        return;
    }
    __global const float *x = in + in_off + (size_t)g * gstride + m0;
    float8 mem[SNN_LIF_FUSED_MAX_T];
    float8 v = (float8)(0.0f);
    for (uint t = 0; t < T; t++) {
        const uint k = g + t * aff_tstride;
        v = lif_step8(v, scale[k] * vload8(0, x + (size_t)t * tstride) + shift[k], beta, thr, reset);
        mem[t] = v;
    }
    uint lb[8], ls[8];
    for (uint q = 0; q < 8; q++) {
        lb[q] = (m0 + q) / S;
        ls[q] = (m0 + q) % S;
    }
    float8 gm = (float8)(0.0f), total = (float8)(0.0f);
    for (uint t = T; t-- > 0;) {
        float up[8];
        if (pool) {
            for (uint q = 0; q < 8; q++) up[q] = lif_upstream(gup, g, 0, t, lb[q], ls[q], 1, T, B, H, W, 1);
        } else {
            vstore8(vload8(0, gup + ((size_t)g * T + t) * M + m0), 0, up);
        }
        gm = vload8(0, up) * lif_surrogate8(mem[t], thr, sg_kind, sg) + lif_decay8(mem[t], beta, thr, reset) * gm;
        if (sum_t)
            total += gm;
        else
            vstore8(gm, 0, out + ((size_t)g * T + t) * M + m0);
    }
    if (sum_t) vstore8(total, 0, out + (size_t)g * M + m0);
}

/* Backward through time of both trajectories and the per-layer renormalization.
 * buf (G, 2, T, B*S): on entry mem[t] (trajectory 0) and the raw difference
 * diff[t] = mem_p[t] - mem[t] before renormalization (trajectory 1), as lif_lyapunov
 * records them; on exit d loss / d cur[t] of each trajectory. With u = mem + diff,
 * n = sqrt(||diff||^2 + 1e-12) (sq[sq_off + t*B + b] from the forward) and the carried
 * state p[t] = mem[t] + eps * diff / n:
 *   g_p    = decay(p) * g_u[t+1]
 *   g_diff = G[t,b] * diff + eps * (g_p / n - diff * (diff . g_p) / n^3)
 *   g_u    = g_spk_p * surrogate(u) + g_diff
 *   g_mem  = g_spk * surrogate(mem) + decay(mem) * g_mem[t+1] + g_p - g_diff
 * where G[t,b] = d loss / d diff from the log-divergence term (lyapunov_grad).
 * One work-group per sample; carry (2, G, B*S) keeps g_mem and g_u between steps. */
__kernel void snn_k_lif_lyapunov_backward(__global float *buf, __global const float *gup,
                                    __global float *carry, __global const float *sq,
                                    const uint sq_off, __global const float *gdiv, const float beta,
                                    const float thr, const uint reset, const uint sg_kind, const float sg,
                                    const float eps, const uint G, const uint S,
                                    const uint B, const uint T, const uint H, const uint W,
                                    const uint pool, __local float *scratch) {
    const uint b = get_group_id(0), lid = get_local_id(0), wg = get_local_size(0);
    const uint M = B * S, n = G * S;
    __global float *cm = carry, *cu = carry + (size_t)G * M;
    for (uint i = lid; i < n; i += wg) {
        const size_t state = (size_t)(i / S) * M + b * S + i % S;
        cm[state] = 0.0f;
        cu[state] = 0.0f;
    }
    for (uint t = T; t-- > 0;) {
        const float nrm = sqrt(sq[sq_off + (size_t)t * B + b] + 1e-12f);
        const float inv_n = 1.0f / nrm, inv_n3 = inv_n * inv_n * inv_n;
        float acc = 0.0f;
        for (uint i = lid; i < n; i += wg) {
            const uint g = i / S, m = b * S + i % S;
            const size_t im = (((size_t)g * 2) * T + t) * M + m;
            const float d = buf[im + (size_t)T * M];
            /* the membrane only matters where a reset to zero cuts the decay */
            const float k = reset == SNN_LIF_RESET_ZERO ? lif_decay(buf[im] + eps * d * inv_n, beta, thr, reset) : beta;
            acc += d * (k * cu[(size_t)g * M + m]);
        }
        const float dot = snn_group_sum(acc, scratch);
        const float gd = gdiv[(size_t)t * B + b];
        for (uint i = lid; i < n; i += wg) {
            const uint g = i / S, s = i % S, m = b * S + s;
            const size_t state = (size_t)g * M + m;
            const size_t im = (((size_t)g * 2) * T + t) * M + m, iu = im + (size_t)T * M;
            const float v = buf[im], d = buf[iu];
            /* p, the carried perturbed state, decides the perturbed trajectory's next reset */
            const float gp = lif_decay(v + eps * d * inv_n, beta, thr, reset) * cu[state];
            const float gdf = gd * d + eps * (gp * inv_n - d * dot * inv_n3);
            const float gs = lif_upstream(gup, g, 0, t, b, s, 2, T, B, H, W, pool);
            const float gsp = lif_upstream(gup, g, 1, t, b, s, 2, T, B, H, W, pool);
            const float gu = gsp * lif_surrogate(v + d, thr, sg_kind, sg) + gdf;
            const float gm = gs * lif_surrogate(v, thr, sg_kind, sg) + lif_decay(v, beta, thr, reset) * cm[state] + gp - gdf;
            buf[im] = gm;
            buf[iu] = gu;
            cm[state] = gm;
            cu[state] = gu;
        }
    }
}
