/* Leaky integrate-and-fire over a chunk of time steps, as snnTorch's Leaky with
 * reset by subtraction and reset_delay:
 *   reset = mem[t-1] > thr;  mem[t] = beta*mem[t-1] + cur[t] - reset*thr;  spk = mem[t] > thr
 * Neurons are (g, m): g a channel (or 0 for a dense layer), m runs over batch and
 * space. The input current is affine in the convolution output (BatchNorm):
 *   cur[t] = scale[k] * in[in_off + g*gstride + t*tstride + m] + shift[k],
 *   k = g + t*aff_tstride (+ aff_pstride for the perturbed trajectory)
 * so eval mode (folded running statistics) passes zero affine strides and training
 * (per-step batch statistics) passes the strides of its (P, T, C) tables.
 * tstride = 0 repeats one input at every step. Membranes persist in `mem` between
 * chunks; spikes go to spk[g*spk_gstride + t*M + m].
 * record != 0 writes the membrane mem[t] instead of the spike: the backward pass
 * recomputes the trajectory this way instead of storing it during the forward. */
__kernel void lif_forward(__global const float *in, const uint in_off, const uint gstride,
                          const uint tstride, __global const float *scale,
                          __global const float *shift, const uint aff_tstride, const float beta,
                          const float thr, __global float *mem, __global float *spk,
                          const uint spk_gstride, const uint G, const uint M, const uint T,
                          const uint record) {
    const uint m = get_global_id(0), g = get_global_id(1);
    if (m >= M || g >= G) return;
    __global const float *x = in + in_off + (size_t)g * gstride + m;
    __global float *s = spk + (size_t)g * spk_gstride + m;
    float v = mem[(size_t)g * M + m];
    for (uint t = 0; t < T; t++) {
        const uint k = g + t * aff_tstride;
        const float reset = v > thr ? thr : 0.0f;
        v = beta * v + (scale[k] * x[(size_t)t * tstride] + shift[k]) - reset;
        s[(size_t)t * M] = record ? v : (v > thr ? 1.0f : 0.0f);
    }
    mem[(size_t)g * M + m] = v;
}

/* lif_forward fused with the 2x2 average pooling that follows it (one trajectory):
 * one work-item per pooled output q = (b, yo, xo) of group g runs its window's four
 * neurons and writes the mean of their spikes to out[g*out_gstride + t*B*Ho*Wo + q],
 * so the full-resolution spikes never reach memory. Neurons that floor pooling drops
 * (the last row or column of an odd size) are not computed: nothing reads them. */
__kernel void lif_forward_pool(__global const float *in, const uint in_off, const uint gstride,
                               const uint tstride, __global const float *scale,
                               __global const float *shift, const uint aff_tstride,
                               const float beta, const float thr, __global float *mem,
                               __global float *out, const uint out_gstride, const uint G,
                               const uint B, const uint H, const uint W, const uint T) {
    const uint q = get_global_id(0), g = get_global_id(1);
    const uint Ho = H / 2, Wo = W / 2, Q = B * Ho * Wo;
    if (q >= Q || g >= G) return;
    const uint b = q / (Ho * Wo), yo = (q / Wo) % Ho, xo = q % Wo;
    const uint m0 = (b * H + 2 * yo) * W + 2 * xo;
    const uint idx[4] = {m0, m0 + 1, m0 + W, m0 + W + 1};
    __global float *state = mem + (size_t)g * B * H * W;
    __global const float *x = in + in_off + (size_t)g * gstride;
    float v[4];
    for (int k = 0; k < 4; k++) v[k] = state[idx[k]];
    for (uint t = 0; t < T; t++) {
        const uint a = g + t * aff_tstride;
        const float sc = scale[a], sh = shift[a];
        __global const float *xt = x + (size_t)t * tstride;
        float spikes = 0.0f;
        for (int k = 0; k < 4; k++) {
            const float reset = v[k] > thr ? thr : 0.0f;
            v[k] = beta * v[k] + (sc * xt[idx[k]] + sh) - reset;
            spikes += v[k] > thr ? 1.0f : 0.0f;
        }
        out[(size_t)g * out_gstride + (size_t)t * Q + q] = 0.25f * spikes;
    }
    for (int k = 0; k < 4; k++) state[idx[k]] = v[k];
}

/* The perturbed trajectory's input minus the reference's at one neuron (x: the
 * reference's input): formed from the dense perturbed input at in[src_p], or, in sparse
 * mode, read from the difference convolution dx[dx_row + j] at the slot j that
 * dmap[map_i] gives (0 where the map has none, or for images with no difference). */
inline float lif_input_diff(__global const float *in, const size_t src_p, const float x, const uint sparse,
                            const int any, __global const int *dmap, const size_t map_i,
                            __global const float *dx, const size_t dx_row) {
    if (!sparse) return in[src_p] - x;
    const int j = any ? dmap[map_i] : -1;
    return j >= 0 ? dx[dx_row + (uint)j] : 0.0f;
}

/* The same layer on two trajectories at once, for the Lyapunov estimate. The perturbed
 * trajectory is kept as its difference from the reference, delta = mem_p - mem, which
 * keeps full precision when eps is far below the membrane's size; its input is
 * in[... + p_off] (p_off = 0 when both trajectories see the same input).
 * One work-group per sample b (M = B*S neurons, S per sample per channel). At every
 * step the group sums ||delta||^2 over the sample's G*S neurons, stores it in
 * sq[sq_off + (t0+t)*B + b], and renormalizes delta to norm eps, as the seed does per layer.
 * Spikes: reference at spk[g*spk_gstride + t*M + m], perturbed T*M further.
 * record != 0 writes mem[t] and the unrenormalized delta there instead of spikes.
 * sparse != 0 (eval mode, shared affine) takes the input difference xp - x from
 * conv3x3_diff instead: dx[g*dx_gstride + k] where k = dmap[t*M + m] >= 0, else 0
 * (and 0 throughout image (t, b) unless its flag dmap[T*M + t*B + b] is set). */
__kernel void lif_lyapunov(__global const float *in, const uint in_off, const uint gstride,
                           const uint tstride, const uint p_off, __global const float *scale,
                           __global const float *shift, const uint aff_tstride,
                           const uint aff_pstride, const float beta, const float thr,
                           const float eps, __global float *mem, __global float *delta,
                           __global float *spk, const uint spk_gstride, const uint G,
                           const uint S, const uint B, const uint T, const uint t0,
                           __global float *sq, const uint sq_off, const uint record,
                           __global const int *dmap, __global const float *dx,
                           const uint dx_gstride, const uint sparse, __local float *scratch) {
    const uint b = get_group_id(0), lid = get_local_id(0), wg = get_local_size(0);
    const uint M = B * S;
    /* Neurons (g, s) of sample b: loops over g and s separately (no division per neuron). */
    for (uint t = 0; t < T; t++) {
        const int any = sparse && dmap[(size_t)T * M + (size_t)t * B + b];
        float acc = 0.0f;
        for (uint g = 0; g < G; g++) {
            const uint k = g + t * aff_tstride, kp = k + aff_pstride;
            const float a = scale[k], ap = scale[kp], c = shift[k], dc = shift[kp] - shift[k];
            const size_t base = (size_t)g * M + (size_t)b * S;
            const size_t src0 = in_off + (size_t)g * gstride + (size_t)t * tstride + (size_t)b * S;
            const size_t out0 = (size_t)g * spk_gstride + (size_t)t * M + (size_t)b * S;
            for (uint s = lid; s < S; s += wg) {
                const size_t state = base + s;
                const float x = in[src0 + s];
                const float xd = lif_input_diff(in, src0 + s + p_off, x, sparse, any, dmap,
                                                (size_t)t * M + (size_t)b * S + s, dx, (size_t)g * dx_gstride);
                const float v = mem[state], d = delta[state];
                const float reset = v > thr ? thr : 0.0f;
                const float reset_p = v + d > thr ? thr : 0.0f;
                const float v_new = beta * v + (a * x + c) - reset;
                /* mem_p - mem without forming mem_p: with a shared affine (eval mode, or the
                 * first layer's shared input) the second term is exactly zero. */
                const float d_new = beta * d + ap * xd + ((ap - a) * x + dc) - (reset_p - reset);
                mem[state] = v_new;
                delta[state] = d_new;
                spk[out0 + s] = record ? v_new : (v_new > thr ? 1.0f : 0.0f);
                spk[out0 + s + (size_t)T * M] = record ? d_new : (v_new + d_new > thr ? 1.0f : 0.0f);
                acc += d_new * d_new;
            }
        }
        const float total = snn_group_sum(acc, scratch);
        const float renorm = eps / sqrt(total + 1e-12f);
        for (uint g = 0; g < G; g++) {
            const size_t base = (size_t)g * M + (size_t)b * S;
            for (uint s = lid; s < S; s += wg) delta[base + s] *= renorm;
        }
        if (lid == 0) sq[sq_off + (size_t)(t0 + t) * B + b] = total;
    }
}

/* lif_lyapunov in eval mode (one affine for both trajectories, no record) fused with
 * the 2x2 average pooling that follows it, like lif_forward_pool: neither trajectory's
 * full-resolution spikes reach memory. H and W are even (every neuron lies in a
 * window, so all of them count in the divergence). Pooled spikes of the reference
 * trajectory go to out[g*out_gstride + t*B*Q + b*Q + q] (Q = H/2 * W/2), the perturbed
 * ones T*B*Q further. The perturbed input is xp = in[... + p_off], or with sparse the
 * difference dx as in lif_lyapunov. With marking, mark[(t*B + b)*Q + q] = 1 (zeroed
 * before) where the two differ: the next layer's diff_mark without reading them back. */
__kernel void lif_lyapunov_pool(__global const float *in, const uint in_off, const uint gstride,
                                const uint tstride, const uint p_off, __global const float *scale,
                                __global const float *shift, const float beta, const float thr,
                                const float eps, __global float *mem, __global float *delta,
                                __global float *out, const uint out_gstride, const uint G,
                                const uint B, const uint H, const uint W, const uint T,
                                const uint t0, __global float *sq, const uint sq_off,
                                __global const int *dmap, __global const float *dx,
                                const uint dx_gstride, const uint sparse, __global uint *mark,
                                const uint marking, __local float *scratch) {
    const uint b = get_group_id(0), lid = get_local_id(0), wg = get_local_size(0);
    const uint S = H * W, M = B * S, Ho = H / 2, Wo = W / 2, Q = Ho * Wo;
    /* The last step's renormalization, applied where delta is read (the same product
     * as scaling it in place, one pass over the state less per step); each item only
     * touches its own windows, so no barrier orders global memory between items. */
    float r = 1.0f;
    for (uint t = 0; t < T; t++) {
        const int any = sparse && dmap[(size_t)T * M + (size_t)t * B + b];
        float acc = 0.0f;
        for (uint g = 0; g < G; g++) {
            const float a = scale[g], c = shift[g];
            const size_t base = (size_t)g * M + (size_t)b * S;
            const size_t src0 = in_off + (size_t)g * gstride + (size_t)t * tstride + (size_t)b * S;
            const size_t out0 = (size_t)g * out_gstride + ((size_t)t * B + b) * Q;
            /* (yo, xo) of q stepped without a division per window */
            uint yo = lid / Wo, xo = lid % Wo;
            for (uint q = lid; q < Q; q += wg) {
                const uint s0 = 2 * yo * W + 2 * xo;
                const uint idx[4] = {s0, s0 + 1, s0 + W, s0 + W + 1};
                for (xo += wg; xo >= Wo && yo < Ho; xo -= Wo) yo++;
                float spikes = 0.0f, spikes_p = 0.0f;
                for (int k = 0; k < 4; k++) {
                    const uint s = idx[k];
                    const size_t state = base + s;
                    const float x = in[src0 + s];
                    const float xd = lif_input_diff(in, src0 + s + p_off, x, sparse, any, dmap,
                                                    (size_t)t * M + (size_t)b * S + s, dx, (size_t)g * dx_gstride);
                    const float v = mem[state];
                    const float d = delta[state] * r;
                    const float reset = v > thr ? thr : 0.0f;
                    const float reset_p = v + d > thr ? thr : 0.0f;
                    const float v_new = beta * v + (a * x + c) - reset;
                    const float d_new = beta * d + a * xd - (reset_p - reset);
                    mem[state] = v_new;
                    delta[state] = d_new;
                    spikes += v_new > thr ? 1.0f : 0.0f;
                    spikes_p += v_new + d_new > thr ? 1.0f : 0.0f;
                    acc += d_new * d_new;
                }
                out[out0 + q] = 0.25f * spikes;
                out[out0 + (size_t)T * B * Q + q] = 0.25f * spikes_p;
                /* only this work-item writes this pixel's flag (its q is the same in every group) */
                if (marking && spikes != spikes_p) mark[((size_t)t * B + b) * Q + q] = 1u;
            }
        }
        const float total = snn_group_sum(acc, scratch);
        r = eps / sqrt(total + 1e-12f);
        if (lid == 0) sq[sq_off + (size_t)(t0 + t) * B + b] = total;
    }
    for (uint g = 0; g < G; g++) {
        const size_t base = (size_t)g * M + (size_t)b * S;
        uint yo = lid / Wo, xo = lid % Wo;
        for (uint q = lid; q < Q; q += wg) {
            const size_t s0 = base + 2 * yo * W + 2 * xo;
            for (xo += wg; xo >= Wo && yo < Ho; xo -= Wo) yo++;
            delta[s0] *= r;
            delta[s0 + 1] *= r;
            delta[s0 + W] *= r;
            delta[s0 + W + 1] *= r;
        }
    }
}

/* d spk / d mem of the fast-sigmoid surrogate (slope 25). */
inline float lif_surrogate(const float v, const float thr) {
    const float s = 1.0f + 25.0f * fabs(v - thr);
    return 1.0f / (s * s);
}

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
 *   g_mem[t] = g_spk[t] * surrogate(mem[t]) + beta * g_mem[t+1],  g_cur[t] = g_mem[t]. */
__kernel void lif_backward(__global float *buf, __global const float *gup, const float beta,
                           const float thr, const uint G, const uint S, const uint B, const uint T,
                           const uint H, const uint W, const uint pool) {
    const uint m = get_global_id(0), g = get_global_id(1);
    const uint M = B * S;
    if (m >= M || g >= G) return;
    const uint b = m / S, s = m % S;
    float gm = 0.0f;
    for (uint t = T; t-- > 0;) {
        const size_t i = ((size_t)g * T + t) * M + m;
        const float gs = lif_upstream(gup, g, 0, t, b, s, 1, T, B, H, W, pool);
        gm = gs * lif_surrogate(buf[i], thr) + beta * gm;
        buf[i] = gm;
    }
}

/* Largest T for which lif_backward_fused keeps a neuron's membranes in registers. */
#define LIF_FUSED_MAX_T 32

/* Backward through time of one trajectory with the forward recomputed in private
 * memory (T <= LIF_FUSED_MAX_T), so membranes never go to global memory: the current
 * is cur[t] = scale[k] * in[in_off + g*gstride + t*tstride + m] + shift[k] as in
 * lif_forward (same rounding, same spikes). Writes d loss / d cur[t] to
 * out[(g*T + t)*M + m], or with sum_t its sum over t to out[g*M + m] (when every step
 * shares one input, as under direct encoding, only the sum is needed downstream). */
__kernel void lif_backward_fused(__global const float *in, const uint in_off, const uint gstride,
                                 const uint tstride, __global const float *scale,
                                 __global const float *shift, const uint aff_tstride,
                                 const float beta, const float thr, __global const float *gup,
                                 __global float *out, const uint G, const uint S, const uint B,
                                 const uint T, const uint H, const uint W, const uint pool,
                                 const uint sum_t) {
    const uint m = get_global_id(0), g = get_global_id(1);
    const uint M = B * S;
    if (m >= M || g >= G) return;
    const uint b = m / S, s = m % S;
    __global const float *x = in + in_off + (size_t)g * gstride + m;
    float mem[LIF_FUSED_MAX_T];
    float v = 0.0f;
    for (uint t = 0; t < T; t++) {
        const uint k = g + t * aff_tstride;
        const float reset = v > thr ? thr : 0.0f;
        v = beta * v + (scale[k] * x[(size_t)t * tstride] + shift[k]) - reset;
        mem[t] = v;
    }
    float gm = 0.0f, total = 0.0f;
    for (uint t = T; t-- > 0;) {
        const float gs = lif_upstream(gup, g, 0, t, b, s, 1, T, B, H, W, pool);
        gm = gs * lif_surrogate(mem[t], thr) + beta * gm;
        if (sum_t)
            total += gm;
        else
            out[((size_t)g * T + t) * M + m] = gm;
    }
    if (sum_t) out[(size_t)g * M + m] = total;
}

/* Backward through time of both trajectories and the per-layer renormalization.
 * buf (G, 2, T, B*S): on entry mem[t] (trajectory 0) and the raw difference
 * diff[t] = mem_p[t] - mem[t] before renormalization (trajectory 1), as lif_lyapunov
 * records them; on exit d loss / d cur[t] of each trajectory. With u = mem + diff,
 * n = sqrt(||diff||^2 + 1e-12) (sq[sq_off + t*B + b] from the forward) and the carried
 * state p[t] = mem[t] + eps * diff / n:
 *   g_p    = beta * g_u[t+1]
 *   g_diff = G[t,b] * diff + eps * (g_p / n - diff * (diff . g_p) / n^3)
 *   g_u    = g_spk_p * surrogate(u) + g_diff
 *   g_mem  = g_spk * surrogate(mem) + beta * g_mem[t+1] + g_p - g_diff
 * where G[t,b] = d loss / d diff from the log-divergence term (lyapunov_grad).
 * One work-group per sample; carry (2, G, B*S) keeps g_mem and g_u between steps. */
__kernel void lif_lyapunov_backward(__global float *buf, __global const float *gup,
                                    __global float *carry, __global const float *sq,
                                    const uint sq_off, __global const float *gdiv, const float beta,
                                    const float thr, const float eps, const uint G, const uint S,
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
        float acc = 0.0f;
        for (uint i = lid; i < n; i += wg) {
            const uint g = i / S, m = b * S + i % S;
            const size_t state = (size_t)g * M + m;
            acc += buf[(((size_t)g * 2 + 1) * T + t) * M + m] * (beta * cu[state]);
        }
        const float dot = snn_group_sum(acc, scratch);
        const float nrm = sqrt(sq[sq_off + (size_t)t * B + b] + 1e-12f);
        const float inv_n = 1.0f / nrm, inv_n3 = inv_n * inv_n * inv_n;
        const float gd = gdiv[(size_t)t * B + b];
        for (uint i = lid; i < n; i += wg) {
            const uint g = i / S, s = i % S, m = b * S + s;
            const size_t state = (size_t)g * M + m;
            const size_t im = (((size_t)g * 2) * T + t) * M + m, iu = im + (size_t)T * M;
            const float v = buf[im], d = buf[iu];
            const float gp = beta * cu[state];
            const float gdf = gd * d + eps * (gp * inv_n - d * dot * inv_n3);
            const float gs = lif_upstream(gup, g, 0, t, b, s, 2, T, B, H, W, pool);
            const float gsp = lif_upstream(gup, g, 1, t, b, s, 2, T, B, H, W, pool);
            const float gu = gsp * lif_surrogate(v + d, thr) + gdf;
            const float gm = gs * lif_surrogate(v, thr) + beta * cm[state] + gp - gdf;
            buf[im] = gm;
            buf[iu] = gu;
            cm[state] = gm;
            cu[state] = gu;
        }
    }
}
