/* Input encodings, written in the channel-major layout (C, T, B, H*W) that the
 * convolution's im2col reads. */

/* Rate encoding: s = Bernoulli(clamp(x * gain, 0, 1)).
 * Element e of x (B, C, H, W) at absolute step t draws word (e & 3) of
 * philox((e >> 2, t, SNN_STREAM_RATE, 0), seed) and spikes when that 32-bit integer is
 * below p * 2^32 (exact in float, truncated to an integer), so spikes are identical on
 * every device. One work-item per four elements (one Philox call) and step. */
/* Position (b, c, hw) of element e of a (B, C, HW) tensor, and the next element's by
 * carries instead of divisions. */
typedef struct bchw { uint b, c, hw; } bchw;
inline bchw bchw_of(const uint e, const uint C, const uint HW) {
    const uint bc = e / HW;
    return (bchw){bc / C, bc % C, e % HW};
}
inline bchw bchw_next(bchw p, const uint C, const uint HW) {
    p.hw++;
    const uint wrap = p.hw == HW;
    p.hw = wrap ? 0u : p.hw;
    p.c += wrap;
    const uint wrap_c = p.c == C;
    p.c = wrap_c ? 0u : p.c;
    p.b += wrap_c;
    return p;
}

inline void encode_rate_one(__global const float *x, __global float *out, const uint e, const bchw p,
                            const uint w, const uint B, const uint HW, const uint T, const uint t,
                            const float gain) {
    const float prob = clamp(x[e] * gain, 0.0f, 1.0f);
    const ulong threshold = convert_ulong_rtz(prob * 4294967296.0f);
    out[((p.c * T + t) * B + p.b) * HW + p.hw] = (ulong)w < threshold ? 1.0f : 0.0f;
}

/* Straight-line code with guarded stores, no loop with an exit: CPU compilers (PoCL)
 * then vectorize across work-items. */
__kernel void encode_rate(__global const float *x, __global float *out, const uint B, const uint C,
                          const uint HW, const uint T, const uint t0, const float gain,
                          const uint2 key) {
    const uint q = get_global_id(0);
    const uint t = get_global_id(1);
    const uint N = B * C * HW, e = 4u * q;
    if (e >= N) return;
    const uint4 r = philox4x32_10((uint4)(q, t0 + t, SNN_STREAM_RATE, 0u), key);
    bchw p = bchw_of(e, C, HW);
    encode_rate_one(x, out, e, p, r.x, B, HW, T, t, gain);
    p = bchw_next(p, C, HW);
    if (e + 1u < N) encode_rate_one(x, out, e + 1u, p, r.y, B, HW, T, t, gain);
    p = bchw_next(p, C, HW);
    if (e + 2u < N) encode_rate_one(x, out, e + 2u, p, r.z, B, HW, T, t, gain);
    p = bchw_next(p, C, HW);
    if (e + 3u < N) encode_rate_one(x, out, e + 3u, p, r.w, B, HW, T, t, gain);
}

/* Steps t0 .. t0+T-1 of in (B, T_total, C, HW) -> out (C, T, B, HW); direct encoding
 * and the perturbation use T_total = T = 1. */
__kernel void to_channel_major(__global const float *in, __global float *out, const uint B,
                               const uint T_total, const uint t0, const uint T, const uint C,
                               const uint HW) {
    const uint i = get_global_id(0); /* over (B, T, C, HW) of the chunk */
    if (i >= B * T * C * HW) return;
    const uint hw = i % HW, c = (i / HW) % C, t = (i / (HW * C)) % T, b = i / (HW * C * T);
    out[((size_t)(c * T + t) * B + b) * HW + hw] = in[(((size_t)b * T_total + t0 + t) * C + c) * HW + hw];
}

/* Unit normal numbers by Box-Muller from Philox: element e uses words of
 * philox((e >> 2, layer, SNN_STREAM_NORMAL, 0), seed), the pair (x, y) for elements
 * 4q and 4q+1 (cos and sin branch) and (z, w) for 4q+2 and 4q+3; one work-item per
 * four elements. Writes eps * n in layout (C, B, HW) for a (B, C, HW) tensor. Not
 * bit-identical across devices (log, cos). */
__kernel void normal_channel_major(__global float *out, const uint B, const uint C, const uint HW,
                                   const uint layer, const float scale, const uint2 key) {
    const uint q = get_global_id(0);
    const uint N = B * C * HW, e = 4u * q;
    if (e >= N) return;
    const uint4 r = philox4x32_10((uint4)(q, layer, SNN_STREAM_NORMAL, 0u), key);
    const float u1a = ((float)(r.x >> 8) + 1.0f) * (1.0f / 16777217.0f); /* (0, 1] */
    const float u1b = ((float)(r.z >> 8) + 1.0f) * (1.0f / 16777217.0f);
    const float rada = sqrt(-2.0f * log(u1a)), radb = sqrt(-2.0f * log(u1b));
    const float anga = 6.283185307179586f * ((float)(r.y >> 8) * (1.0f / 16777216.0f));
    const float angb = 6.283185307179586f * ((float)(r.w >> 8) * (1.0f / 16777216.0f));
    const float n[4] = {rada * cos(anga), rada * sin(anga), radb * cos(angb), radb * sin(angb)};
    /* Straight-line, guarded stores: vectorizable across work-items (see encode_rate). */
    bchw p = bchw_of(e, C, HW);
    out[(p.c * B + p.b) * HW + p.hw] = scale * n[0];
    for (uint k = 1; k < 4u; k++) {
        p = bchw_next(p, C, HW);
        if (e + k < N) out[(p.c * B + p.b) * HW + p.hw] = scale * n[k];
    }
}

/* Scales a (B, C, HW) tensor into layout (C, B, HW): the caller's perturbation. */
__kernel void scale_to_channel_major(__global const float *in, __global float *out, const uint B,
                                     const uint C, const uint HW, const float scale) {
    const uint e = get_global_id(0);
    if (e >= B * C * HW) return;
    const uint b = e / (C * HW), c = (e / HW) % C, hw = e % HW;
    out[(c * B + b) * HW + hw] = scale * in[e];
}
