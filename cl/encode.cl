/* Input encodings, written in the channel-major layout (C, T, B, H*W) that the
 * convolution's im2col reads. */

/* Rate encoding: s = Bernoulli(clamp(x * gain, 0, 1)).
 * Element e of x (B, C, H, W) at absolute step t draws word (e & 3) of
 * philox((e >> 2, t, SNN_STREAM_RATE, 0), seed) and spikes when that 32-bit integer is
 * below p * 2^32 (exact in float, truncated to an integer), so spikes are identical on
 * every device. One work-item per element and step of this chunk. */
__kernel void encode_rate(__global const float *x, __global float *out, const uint B, const uint C,
                          const uint HW, const uint T, const uint t0, const float gain,
                          const uint2 key) {
    const uint e = get_global_id(0);
    const uint t = get_global_id(1);
    if (e >= B * C * HW) return;
    const uint b = e / (C * HW), c = (e / HW) % C, hw = e % HW;
    const float p = clamp(x[e] * gain, 0.0f, 1.0f);
    const ulong threshold = convert_ulong_rtz(p * 4294967296.0f);
    const uint4 r = philox4x32_10((uint4)(e >> 2, t0 + t, SNN_STREAM_RATE, 0u), key);
    const uint k = e & 3u;
    const uint word = k == 0 ? r.x : k == 1 ? r.y : k == 2 ? r.z : r.w;
    out[((c * T + t) * B + b) * HW + hw] = (ulong)word < threshold ? 1.0f : 0.0f;
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
 * philox((e >> 2, layer, SNN_STREAM_NORMAL, 0), seed). Writes eps * n in layout
 * (C, B, HW) for a (B, C, HW) tensor. Not bit-identical across devices (log, cos). */
__kernel void normal_channel_major(__global float *out, const uint B, const uint C, const uint HW,
                                   const uint layer, const float scale, const uint2 key) {
    const uint e = get_global_id(0);
    if (e >= B * C * HW) return;
    const uint4 r = philox4x32_10((uint4)(e >> 2, layer, SNN_STREAM_NORMAL, 0u), key);
    const uint k = e & 3u;
    /* Pairs (x, y) and (z, w) each give two normals: cos and sin branches. */
    const uint a = k < 2 ? r.x : r.z, bw = k < 2 ? r.y : r.w;
    const float u1 = ((float)(a >> 8) + 1.0f) * (1.0f / 16777217.0f); /* (0, 1] */
    const float u2 = (float)(bw >> 8) * (1.0f / 16777216.0f);
    const float rad = sqrt(-2.0f * log(u1));
    const float ang = 6.283185307179586f * u2;
    const float n = (k & 1u) ? rad * sin(ang) : rad * cos(ang);
    const uint b = e / (C * HW), c = (e / HW) % C, hw = e % HW;
    out[(c * B + b) * HW + hw] = scale * n;
}

/* Scales a (B, C, HW) tensor into layout (C, B, HW): the caller's perturbation. */
__kernel void scale_to_channel_major(__global const float *in, __global float *out, const uint B,
                                     const uint C, const uint HW, const float scale) {
    const uint e = get_global_id(0);
    if (e >= B * C * HW) return;
    const uint b = e / (C * HW), c = (e / HW) % C, hw = e % HW;
    out[(c * B + b) * HW + hw] = scale * in[e];
}
