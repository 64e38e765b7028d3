/* 2x2 average pooling, stride 2, flooring odd sizes (AvgPool2d(2)):
 * in (P, H, W) -> out (P, H/2, W/2) for P = channels * images planes. */
__kernel void snn_k_avgpool2x2(__global const float *in, __global float *out, const uint P, const uint H,
                         const uint W) {
    const uint Ho = H / 2, Wo = W / 2;
    const uint i = get_global_id(0);
    if (i >= P * Ho * Wo) return;
    const uint x = i % Wo, y = (i / Wo) % Ho, p = i / (Wo * Ho);
    __global const float *src = in + (size_t)p * H * W + (2 * y) * W + 2 * x;
    out[i] = 0.25f * ((src[0] + src[1]) + (src[W] + src[W + 1]));
}
