/* im2col for 3x3 convolutions with stride 1 and padding 1, channel-major:
 * in (C, N, H, W) -> col (C*9, cols) where column j = (n - n0) * H*W + y*W + x covers
 * images n0 .. n0+count-1. The convolution is then W (Cout, C*9) x col. */
__kernel void im2col3x3(__global const float *in, __global float *col, const uint C, const uint N,
                        const uint H, const uint W, const uint n0, const uint count) {
    const uint j = get_global_id(0);
    const uint row = get_global_id(1); /* c*9 + ky*3 + kx */
    const uint HW = H * W;
    if (j >= count * HW || row >= C * 9) return;
    const uint c = row / 9, ky = (row % 9) / 3, kx = row % 3;
    const uint n = n0 + j / HW, y = (j % HW) / W, x = j % W;
    const int sy = (int)y + (int)ky - 1, sx = (int)x + (int)kx - 1;
    float v = 0.0f;
    if (sy >= 0 && sy < (int)H && sx >= 0 && sx < (int)W)
        v = in[((size_t)c * N + n) * HW + (uint)sy * W + (uint)sx];
    col[(size_t)row * count * HW + j] = v;
}
