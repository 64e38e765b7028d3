/* Definitions shared by every snncl kernel. The host adds -DSNN_HAS_FP64=1 where the
 * device supports doubles; no kernel requires them. */

/* No fused multiply-adds: membranes then round the same way on every device, so spikes
 * (threshold comparisons) do not depend on the compiler's choice. */
#pragma OPENCL FP_CONTRACT OFF

/* Work-group sum of `v` through local scratch of get_local_size(0) floats (a power of
 * two). Every work-item of the group must call it; all get the total. */
inline float snn_group_sum(float v, __local float *scratch) {
    const uint lid = get_local_id(0);
    scratch[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint s = get_local_size(0) / 2; s > 0; s >>= 1) {
        if (lid < s) scratch[lid] += scratch[lid + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const float total = scratch[0];
    barrier(CLK_LOCAL_MEM_FENCE); /* scratch is free again for the next call */
    return total;
}

/* A compensated (Kahan) running sum. BatchNorm reduces over B*H*W values per channel,
 * on CPUs in one work-item: a plain float sum of 50,000 values loses about four
 * digits, enough to flip spikes that lie near the threshold (tools/train_side_by_side.py
 * showed a 1e-3 loss difference from the seed at the first step). */
typedef struct snn_ksum {
    float sum, comp;
} snn_ksum;

inline void snn_ksum_add(snn_ksum *k, const float x) {
    const float y = x - k->comp;
    const float t = k->sum + y;
    k->comp = (t - k->sum) - y;
    k->sum = t;
}

/* The compensated sum of EXPR (an expression of the index i) over i = lid, lid + wg,
 * .. < M into the float `out`, in four independent chains: one chain's four dependent
 * operations per element would make a long sum latency-bound (3.5x slower than a
 * plain sum on PoCL); four in flight hide that. */
#define SNN_KSUM_STRIDED(out, lid, wg, M, EXPR)                                        \
    do {                                                                              \
        snn_ksum k0_ = {0.0f, 0.0f}, k1_ = k0_, k2_ = k0_, k3_ = k0_;                  \
        uint i = (lid);                                                               \
        for (; i + 3 * (wg) < (M); i += 4 * (wg)) {                                   \
            snn_ksum_add(&k0_, (EXPR));                                               \
            i += (wg);                                                                \
            snn_ksum_add(&k1_, (EXPR));                                               \
            i += (wg);                                                                \
            snn_ksum_add(&k2_, (EXPR));                                               \
            i += (wg);                                                                \
            snn_ksum_add(&k3_, (EXPR));                                               \
            i -= 3 * (wg);                                                            \
        }                                                                             \
        for (; i < (M); i += (wg)) snn_ksum_add(&k0_, (EXPR));                        \
        (out) = (k0_.sum + k1_.sum) + (k2_.sum + k3_.sum);                            \
    } while (0)
