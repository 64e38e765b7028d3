/* The Lyapunov estimate's initial perturbation, in the channel-major state layout
 * (C, B, HW): drawn from Philox, or the caller's scaled. Uses encode.cl's bchw helpers. */

/* Unit normal numbers by Box-Muller from Philox: element e, at g = e0 + e in the global
 * batch (e0 = 0 alone), uses words of philox((g >> 2, layer, SNN_STREAM_NORMAL, 0),
 * seed), the pair (x, y) for elements 4q and 4q+1 of the global batch (cos and sin
 * branch) and (z, w) for 4q+2 and 4q+3; one work-item per Philox block. Writes
 * eps * n in layout (C, B, HW) for a (B, C, HW) tensor. Not bit-identical across
 * devices (log, cos). */
__kernel void snn_k_normal_channel_major(__global float *out, const uint B, const uint C, const uint HW,
                                   const uint layer, const float scale, const uint2 key, const uint e0) {
    const uint q = get_global_id(0);
    const uint N = B * C * HW, lo = e0 & 3u, k0 = snn_block_first(q, e0);
    if (4u * q + k0 - lo >= N) return;
    const uint4 r = philox4x32_10((uint4)(q + (e0 >> 2), layer, SNN_STREAM_NORMAL, 0u), key);
    const float u1a = ((float)(r.x >> 8) + 1.0f) * (1.0f / 16777217.0f); /* (0, 1] */
    const float u1b = ((float)(r.z >> 8) + 1.0f) * (1.0f / 16777217.0f);
    const float rada = sqrt(-2.0f * log(u1a)), radb = sqrt(-2.0f * log(u1b));
    const float anga = 6.283185307179586f * ((float)(r.y >> 8) * (1.0f / 16777216.0f));
    const float angb = 6.283185307179586f * ((float)(r.w >> 8) * (1.0f / 16777216.0f));
    const float n[4] = {rada * cos(anga), rada * sin(anga), radb * cos(angb), radb * sin(angb)};
    /* A fixed loop with guarded stores: vectorizable across work-items (see encode_rate). */
    bchw p = bchw_of(4u * q + k0 - lo, C, HW);
    for (uint k = k0; k < 4u; k++) {
        const uint e = 4u * q + k - lo;
        if (e < N) out[(p.c * B + p.b) * HW + p.hw] = scale * n[k];
        p = bchw_next(p, C, HW);
    }
}

/* Scales a (B, C, HW) tensor into layout (C, B, HW): the caller's perturbation. */
__kernel void snn_k_scale_to_channel_major(__global const float *in, __global float *out, const uint B,
                                     const uint C, const uint HW, const float scale) {
    const uint e = get_global_id(0);
    if (e >= B * C * HW) return;
    const uint b = e / (C * HW), c = (e / HW) % C, hw = e % HW;
    out[(c * B + b) * HW + hw] = scale * in[e];
}
