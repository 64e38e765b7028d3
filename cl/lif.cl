/* Leaky integrate-and-fire over a chunk of time steps, as snnTorch's Leaky with
 * reset by subtraction and reset_delay:
 *   reset = mem[t-1] > thr;  mem[t] = beta*mem[t-1] + cur[t] - reset*thr;  spk = mem[t] > thr
 * Neurons are (g, m): g a channel (or 0 for a dense layer), m runs over batch and
 * space. The input current is affine in the convolution output (folded BatchNorm):
 *   cur[t] = scale[g] * in[in_off + g*gstride + t*tstride + m] + shift[g]
 * (tstride = 0 repeats one input at every step). Membranes persist in `mem` between
 * chunks; spikes go to spk[g*spk_gstride + t*M + m]. */
__kernel void lif_forward(__global const float *in, const uint in_off, const uint gstride,
                          const uint tstride, __global const float *scale,
                          __global const float *shift, const float beta, const float thr,
                          __global float *mem, __global float *spk, const uint spk_gstride,
                          const uint G, const uint M, const uint T) {
    const uint m = get_global_id(0), g = get_global_id(1);
    if (m >= M || g >= G) return;
    const float a = scale[g], c = shift[g];
    __global const float *x = in + in_off + (size_t)g * gstride + m;
    __global float *s = spk + (size_t)g * spk_gstride + m;
    float v = mem[(size_t)g * M + m];
    for (uint t = 0; t < T; t++) {
        const float reset = v > thr ? thr : 0.0f;
        v = beta * v + (a * x[(size_t)t * tstride] + c) - reset;
        s[(size_t)t * M] = v > thr ? 1.0f : 0.0f;
    }
    mem[(size_t)g * M + m] = v;
}

/* The same layer on two trajectories at once, for the Lyapunov estimate. The perturbed
 * trajectory is kept as its difference from the reference, delta = mem_p - mem, which
 * keeps full precision when eps is far below the membrane's size; its input is
 * in[... + p_off] (p_off = 0 when both trajectories see the same input).
 * One work-group per sample b (M = B*S neurons, S per sample per channel). At every
 * step the group sums ||delta||^2 over the sample's G*S neurons, stores it in
 * sq[sq_off + (t0+t)*B + b], and renormalizes delta to norm eps, as the seed does per layer.
 * Spikes: reference at spk[g*spk_gstride + t*M + m], perturbed T*M further. */
__kernel void lif_lyapunov(__global const float *in, const uint in_off, const uint gstride,
                           const uint tstride, const uint p_off, __global const float *scale,
                           __global const float *shift, const float beta, const float thr,
                           const float eps, __global float *mem, __global float *delta,
                           __global float *spk, const uint spk_gstride, const uint G,
                           const uint S, const uint B, const uint T, const uint t0,
                           __global float *sq, const uint sq_off, __local float *scratch) {
    const uint b = get_group_id(0), lid = get_local_id(0), wg = get_local_size(0);
    const uint M = B * S, n = G * S;
    for (uint t = 0; t < T; t++) {
        float acc = 0.0f;
        for (uint i = lid; i < n; i += wg) {
            const uint g = i / S, m = b * S + i % S;
            const size_t state = (size_t)g * M + m;
            const size_t src = in_off + (size_t)g * gstride + (size_t)t * tstride + m;
            const float x = in[src], xp = in[src + p_off];
            const float a = scale[g];
            const float v = mem[state], d = delta[state];
            const float reset = v > thr ? thr : 0.0f;
            const float reset_p = v + d > thr ? thr : 0.0f;
            const float v_new = beta * v + (a * x + shift[g]) - reset;
            /* mem_p - mem, without forming mem_p: the shift cancels exactly. */
            const float d_new = beta * d + a * (xp - x) - (reset_p - reset);
            mem[state] = v_new;
            delta[state] = d_new;
            const size_t out = (size_t)g * spk_gstride + (size_t)t * M + m;
            spk[out] = v_new > thr ? 1.0f : 0.0f;
            spk[out + (size_t)T * M] = v_new + d_new > thr ? 1.0f : 0.0f;
            acc += d_new * d_new;
        }
        const float total = snn_group_sum(acc, scratch);
        const float renorm = eps / sqrt(total + 1e-12f);
        for (uint i = lid; i < n; i += wg) {
            const size_t state = (size_t)(i / S) * M + b * S + i % S;
            delta[state] *= renorm;
        }
        if (lid == 0) sq[sq_off + (size_t)(t0 + t) * B + b] = total;
    }
}
