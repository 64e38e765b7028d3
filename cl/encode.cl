/* Input encodings, written in the channel-major layout (C, T, B, H*W) that the
 * convolution's im2col reads. */

/* Rate encoding: s = Bernoulli(clamp(x * gain, 0, 1)).
 * Element e of x (B, C, H, W) at absolute step t draws word (g & 3) of
 * philox((g >> 2, t, SNN_STREAM_RATE, 0), seed), g = e0 + e its index in the global
 * batch that x is a share of (e0 = 0 alone), and spikes when that 32-bit integer is
 * below p * 2^32 (exact in float, truncated to an integer): spikes are identical on
 * every device, and a share's are the global batch's. One work-item per Philox call
 * (four elements of the global batch) and step. */
/* Position (b, c, hw) of element e of a (B, C, HW) tensor, and the next element's by
 * carries instead of divisions. */
typedef struct bchw { uint b, c, hw; } bchw;
inline bchw bchw_of(const uint e, const uint C, const uint HW) {
    /* remainders spelt out: as `%` next to `/`, LLVM adds a `freeze` that Oclgrind's
     * uninitialized-value checker cannot run */
    const uint bc = e / HW, b = bc / C;
    return (bchw){b, bc - b * C, e - bc * HW};
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

/* The local elements of work-item q's Philox block: e = 4q + k - (e0 & 3) for the
 * words k in [first, 4) of the block, those below N. */
inline uint snn_block_first(const uint q, const uint e0) {
    /* only block 0 can start before the share (e0 & 3 < 4); written as a select, not
     * as max(lo - 4q, 0), which compilers turn into a saturating subtraction that
     * Oclgrind cannot run */
    return q == 0u ? (e0 & 3u) : 0u;
}

inline void encode_rate_one(__global const float *x, __global float *out, const uint e, const bchw p,
                            const uint w, const uint B, const uint HW, const uint T, const uint t,
                            const float gain) {
    const float prob = clamp(x[e] * gain, 0.0f, 1.0f);
    const ulong threshold = convert_ulong_rtz(prob * 4294967296.0f);
    out[((p.c * T + t) * B + p.b) * HW + p.hw] = (ulong)w < threshold ? 1.0f : 0.0f;
}

/* A fixed four-word loop with guarded stores, no exit: CPU compilers (PoCL) unroll it
 * and vectorize across work-items. */
__kernel void snn_k_encode_rate(__global const float *x, __global float *out, const uint B, const uint C,
                          const uint HW, const uint T, const uint t0, const float gain,
                          const uint2 key, const uint e0) {
    const uint q = get_global_id(0);
    const uint t = get_global_id(1);
    const uint N = B * C * HW, lo = e0 & 3u, k0 = snn_block_first(q, e0);
    if (4u * q + k0 - lo >= N) return;
    const uint4 r = philox4x32_10((uint4)(q + (e0 >> 2), t0 + t, SNN_STREAM_RATE, 0u), key);
    const uint words[4] = {r.x, r.y, r.z, r.w};
    bchw p = bchw_of(4u * q + k0 - lo, C, HW);
    for (uint k = k0; k < 4u; k++) {
        const uint e = 4u * q + k - lo;
        if (e < N) encode_rate_one(x, out, e, p, words[k], B, HW, T, t, gain);
        p = bchw_next(p, C, HW);
    }
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
