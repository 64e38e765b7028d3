/* Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as
 * 1, 2, 3", SC'11): a counter-based generator, so any element's random number follows
 * from (key, counter) alone and is bit-identical on every device. */

/* Its constants and the streams (SNN_STREAM_*) are in snn_constants.h. */

inline uint4 philox4x32_10(uint4 ctr, uint2 key) {
    for (int round = 0; round < 10; round++) {
        const uint hi0 = mul_hi(SNN_PHILOX_M0, ctr.x), lo0 = SNN_PHILOX_M0 * ctr.x;
        const uint hi1 = mul_hi(SNN_PHILOX_M1, ctr.z), lo1 = SNN_PHILOX_M1 * ctr.z;
        ctr = (uint4)(hi1 ^ ctr.y ^ key.x, lo1, hi0 ^ ctr.w ^ key.y, lo0);
        key += (uint2)(SNN_PHILOX_W0, SNN_PHILOX_W1);
    }
    return ctr;
}

/* Raw blocks for known-answer tests: out[i] = philox(ctr + (i, 0, 0, 0), key). */
__kernel void snn_k_philox_blocks(__global uint4 *out, const uint4 ctr, const uint2 key, const uint n) {
    const uint i = get_global_id(0);
    if (i >= n) return;
    out[i] = philox4x32_10(ctr + (uint4)(i, 0, 0, 0), key);
}
