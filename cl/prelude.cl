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
