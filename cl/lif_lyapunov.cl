/* The Lyapunov estimate's two trajectories through one LIF layer (the neuron of
 * cl/lif.cl on each), with Benettin's per-layer renormalization. */

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
 * Variants, chosen at build time (the flags are constants in each kernel):
 * snn_k_lif_lyapunov_record writes mem[t] and the unrenormalized delta there instead
 * of spikes (training's backward recomputes the trajectories so);
 * snn_k_lif_lyapunov_sparse (eval mode, shared affine) takes the input difference
 * xp - x from conv3x3_diff instead: dx[g*dx_gstride + k] where k = dmap[t*M + m] >= 0,
 * else 0 (and 0 throughout image (t, b) unless its flag dmap[T*M + t*B + b] is set). */
#define LIF_LYAPUNOV_ARGS                                                                        \
    __global const float *in, const uint in_off, const uint gstride, const uint tstride,         \
        const uint p_off, __global const float *scale, __global const float *shift,             \
        const uint aff_tstride, const uint aff_pstride, const float beta, const float thr,      \
        const uint reset, const float eps, __global float *mem, __global float *delta, __global float *spk,       \
        const uint spk_gstride, const uint G, const uint S, const uint B, const uint T,         \
        const uint t0, __global float *sq, const uint sq_off
#define LIF_LYAPUNOV_PASS                                                                        \
    in, in_off, gstride, tstride, p_off, scale, shift, aff_tstride, aff_pstride, beta, thr, reset, eps, \
        mem, delta, spk, spk_gstride, G, S, B, T, t0, sq, sq_off

inline void lif_lyapunov(LIF_LYAPUNOV_ARGS, const uint record, const uint sparse, __global const int *dmap,
                         __global const float *dx, const uint dx_gstride, __local float *scratch) {
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
                const float v_new = lif_step(v, a * x + c, beta, thr, reset);
                /* mem_p - mem without forming mem_p: with a shared affine (eval mode, or the
                 * first layer's shared input) the second term is exactly zero. */
                const float d_new = lif_step_delta(v, d, beta, thr, reset) + (ap * xd + ((ap - a) * x + dc));
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

__kernel void snn_k_lif_lyapunov(LIF_LYAPUNOV_ARGS, __local float *scratch) {
    lif_lyapunov(LIF_LYAPUNOV_PASS, 0, 0, 0, 0, 0, scratch);
}
__kernel void snn_k_lif_lyapunov_record(LIF_LYAPUNOV_ARGS, __local float *scratch) {
    lif_lyapunov(LIF_LYAPUNOV_PASS, 1, 0, 0, 0, 0, scratch);
}
__kernel void snn_k_lif_lyapunov_sparse(LIF_LYAPUNOV_ARGS, __global const int *dmap, __global const float *dx,
                                        const uint dx_gstride, __local float *scratch) {
    lif_lyapunov(LIF_LYAPUNOV_PASS, 0, 1, dmap, dx, dx_gstride, scratch);
}

/* lif_lyapunov in eval mode (one affine for both trajectories, no record) fused with
 * the 2x2 average pooling that follows it, like lif_forward_pool: neither trajectory's
 * full-resolution spikes reach memory. H and W are even (every neuron lies in a
 * window, so all of them count in the divergence). Pooled spikes of the reference
 * trajectory go to out[g*out_gstride + t*B*Q + b*Q + q] (Q = H/2 * W/2), the perturbed
 * ones T*B*Q further. The perturbed input is xp = in[... + p_off], or in the _sparse
 * variants the difference dx as in lif_lyapunov. The _mark variants set
 * mark[(t*B + b)*Q + q] = 1 (zeroed before) where the two differ: the next layer's
 * diff_mark without reading them back. */
#define LIF_LYAPUNOV_POOL_ARGS                                                                   \
    __global const float *in, const uint in_off, const uint gstride, const uint tstride,         \
        const uint p_off, __global const float *scale, __global const float *shift,             \
        const float beta, const float thr, const uint reset, const float eps, __global float *mem, \
        __global float *delta, __global float *out, const uint out_gstride, const uint G,       \
        const uint B, const uint H, const uint W, const uint T, const uint t0, __global float *sq, \
        const uint sq_off
#define LIF_LYAPUNOV_POOL_PASS                                                                   \
    in, in_off, gstride, tstride, p_off, scale, shift, beta, thr, reset, eps, mem, delta, out, out_gstride, G, B, H, \
        W, T, t0, sq, sq_off

inline void lif_lyapunov_pool(LIF_LYAPUNOV_POOL_ARGS, const uint sparse, __global const int *dmap,
                              __global const float *dx, const uint dx_gstride, const uint marking,
                              __global uint *mark, __local float *scratch) {
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
                    const float v_new = lif_step(v, a * x + c, beta, thr, reset);
                    const float d_new = lif_step_delta(v, d, beta, thr, reset) + a * xd;
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

__kernel void snn_k_lif_lyapunov_pool(LIF_LYAPUNOV_POOL_ARGS, __local float *scratch) {
    lif_lyapunov_pool(LIF_LYAPUNOV_POOL_PASS, 0, 0, 0, 0, 0, 0, scratch);
}
__kernel void snn_k_lif_lyapunov_pool_mark(LIF_LYAPUNOV_POOL_ARGS, __global uint *mark, __local float *scratch) {
    lif_lyapunov_pool(LIF_LYAPUNOV_POOL_PASS, 0, 0, 0, 0, 1, mark, scratch);
}
__kernel void snn_k_lif_lyapunov_pool_sparse(LIF_LYAPUNOV_POOL_ARGS, __global const int *dmap,
                                             __global const float *dx, const uint dx_gstride,
                                             __local float *scratch) {
    lif_lyapunov_pool(LIF_LYAPUNOV_POOL_PASS, 1, dmap, dx, dx_gstride, 0, 0, scratch);
}
__kernel void snn_k_lif_lyapunov_pool_sparse_mark(LIF_LYAPUNOV_POOL_ARGS, __global const int *dmap,
                                                  __global const float *dx, const uint dx_gstride,
                                                  __global uint *mark, __local float *scratch) {
    lif_lyapunov_pool(LIF_LYAPUNOV_POOL_PASS, 1, dmap, dx, dx_gstride, 1, mark, scratch);
}
