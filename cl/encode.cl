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
__kernel void snn_k_encode_rate(__global const float *x, __global float *out, const uint B, const uint C,
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
__kernel void snn_k_to_channel_major(__global const float *in, __global float *out, const uint B,
                               const uint T_total, const uint t0, const uint T, const uint C,
                               const uint HW) {
    const uint i = get_global_id(0); /* over (B, T, C, HW) of the chunk */
    if (i >= B * T * C * HW) return;
    const uint hw = i % HW, c = (i / HW) % C, t = (i / (HW * C)) % T, b = i / (HW * C * T);
    out[((size_t)(c * T + t) * B + b) * HW + hw] = in[(((size_t)b * T_total + t0 + t) * C + c) * HW + hw];
}
