/* Hand-written GEMM, snn_gemm's native path (src/core/gemm.c): row-major
 * C = alpha * op(A) * op(B) + beta * C with accumulators in registers, no local memory.
 *
 * gemm_cols  op(B) = B, op(A) = A or A^T (through the strides a_si, a_sp). Each
 *            work-item computes SNN_GEMM_RM rows x SNN_GEMM_CW = 16 SNN_GEMM_CV consecutive columns:
 *            per step of the reduction it loads SNN_GEMM_CV float16 of B and multiplies them
 *            by SNN_GEMM_RM scalars of op(A) (16 accumulators: enough independent FMAs to
 *            hide their latency, 1.2-1.9x faster than one float16 on PoCL). Global size
 *            (ceil(N / SNN_GEMM_CW), ceil(M / SNN_GEMM_RM)), rounded up to the work-group.
 * gemm_dot   op(A) = A, op(B) = B^T: both operands are contiguous along the reduction,
 *            which is long in the weight gradient (dW = dZ col^T). Each work-item
 *            computes SNN_GEMM_DI x SNN_GEMM_DJ outputs as float16 partial dot products, added
 *            up at the end. Global size (ceil(M / SNN_GEMM_DI), ceil(N / SNN_GEMM_DJ), slices).
 * gemm_sum   C = alpha * (sum of the slices' partial products) + beta * C.
 * gemm_transpose  for the (1, 1) case: B^T into scratch, then gemm_cols.
 *
 * Cache blocking: the reduction runs in blocks of GEMM_KC (GEMM_DKC) steps with a
 * barrier after each. The barrier changes no result; on CPU runtimes such as PoCL, which
 * run a work-group's items one after another between barriers, it makes every item of
 * the group work on the same block of the operands while it is in cache (2-4x faster
 * than without on the conv shapes). Every work-item therefore reaches every barrier;
 * items outside C only skip the arithmetic. The host never passes an empty reduction:
 * PoCL 3.1 was seen to run the code after such a barrier loop twice when the loop ran
 * zero times (C = beta^2 C at K = 0), so these loops always run at least once.
 *
 * Every sum has a fixed order (no atomics), so results are bit-identical run to run.
 * fma() is exactly rounded, so devices that have it agree too (a device without fast
 * FMA gets the right result slowly; snn_gemm uses CLBlast on GPUs for now).
 * beta == 0 never reads C. Element indices are uint: the host checks that they fit.
 * The blocking the host sizes launches by (SNN_GEMM_RM, _CV, _CW, _DI, _DJ) is in
 * snn_constants.h. */

#define GEMM_KC 64   /* gemm_cols: reduction steps per cache block */
#define GEMM_DKC 512 /* gemm_dot: reduction steps per cache block, a multiple of 16 */

/* alpha * acc + beta * *cptr, not reading *cptr when beta is 0. */
#define GEMM_OUT(acc, alpha, beta, cptr) \
    ((beta) == 0.0f ? (alpha) * (acc) : (alpha) * (acc) + (beta) * *(cptr))

/* op(A)(i, p) = A[a_off + i * a_si + p * a_sp]; B(p, j) = B[b_off + p * ldb + j];
 * reduces over p in k0 .. k1-1, k1 > k0. */
__kernel void snn_k_gemm_cols(const uint M, const uint N, const uint k0, const uint k1, const float alpha,
                        __global const float *restrict A, const uint a_off, const uint a_si,
                        const uint a_sp, __global const float *restrict B, const uint b_off,
                        const uint ldb, const float beta, __global float *restrict C,
                        const uint c_off, const uint ldc) {
    const uint j0 = (uint)get_global_id(0) * SNN_GEMM_CW, i0 = (uint)get_global_id(1) * SNN_GEMM_RM;
    const uint width = (j0 < N && i0 < M) ? min((uint)SNN_GEMM_CW, N - j0) : 0u;
    uint arow[SNN_GEMM_RM];
#pragma unroll
    for (int r = 0; r < SNN_GEMM_RM; r++)
        arow[r] = a_off + min(i0 + (uint)r, M - 1u) * a_si;
    float16 acc[SNN_GEMM_RM][SNN_GEMM_CV];
#pragma unroll
    for (int r = 0; r < SNN_GEMM_RM; r++)
#pragma unroll
        for (int v = 0; v < SNN_GEMM_CV; v++) acc[r][v] = (float16)(0.0f);
    for (uint kb = k0; kb < k1; kb += GEMM_KC) { /* at least once: k1 > k0 */
        const uint ke = min(kb + (uint)GEMM_KC, k1);
        if (width == SNN_GEMM_CW) {
            __global const float *b = B + b_off + kb * ldb + j0;
            __global const float *a = A + kb * a_sp;
            for (uint p = kb; p < ke; p++) {
                float16 bv[SNN_GEMM_CV];
#pragma unroll
                for (int v = 0; v < SNN_GEMM_CV; v++) bv[v] = vload16(v, b);
#pragma unroll
                for (int r = 0; r < SNN_GEMM_RM; r++) {
                    const float16 av = (float16)(a[arow[r]]);
#pragma unroll
                    for (int v = 0; v < SNN_GEMM_CV; v++) acc[r][v] = fma(av, bv[v], acc[r][v]);
                }
                b += ldb;
                a += a_sp;
            }
        } else if (width) {
            float tmp[SNN_GEMM_CW];
            for (uint q = 0; q < SNN_GEMM_CW; q++) tmp[q] = 0.0f;
            for (uint p = kb; p < ke; p++) {
                __global const float *b = B + b_off + p * ldb + j0;
                for (uint q = 0; q < width; q++) tmp[q] = b[q];
                float16 bv[SNN_GEMM_CV];
#pragma unroll
                for (int v = 0; v < SNN_GEMM_CV; v++) bv[v] = vload16(v, tmp);
                __global const float *a = A + p * a_sp;
#pragma unroll
                for (int r = 0; r < SNN_GEMM_RM; r++) {
                    const float16 av = (float16)(a[arow[r]]);
#pragma unroll
                    for (int v = 0; v < SNN_GEMM_CV; v++) acc[r][v] = fma(av, bv[v], acc[r][v]);
                }
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (!width) return;
#pragma unroll
    for (int r = 0; r < SNN_GEMM_RM; r++) {
        const uint i = i0 + (uint)r;
        if (i >= M) break;
        __global float *c = C + c_off + i * ldc + j0;
        if (width == SNN_GEMM_CW) {
#pragma unroll
            for (int v = 0; v < SNN_GEMM_CV; v++) {
                float16 o = alpha * acc[r][v];
                if (beta != 0.0f) o += beta * vload16(v, c);
                vstore16(o, v, c);
            }
        } else {
            float tmp[SNN_GEMM_CW];
#pragma unroll
            for (int v = 0; v < SNN_GEMM_CV; v++) vstore16(acc[r][v], v, tmp);
            for (uint q = 0; q < width; q++) c[q] = GEMM_OUT(tmp[q], alpha, beta, c + q);
        }
    }
}

/* A(i, p) = A[a_off + i * lda + p]; op(B)(p, j) = B[b_off + j * ldb + p]. Slice s =
 * get_global_id(2) reduces over p in k0 + s*ks .. min(k1, k0 + (s+1)*ks) - 1 (never
 * empty) and writes C + c_off + s * c_ss (several slices: alpha 1, beta 0, then gemm_sum). */
__kernel void snn_k_gemm_dot(const uint M, const uint N, const uint k0, const uint k1, const uint ks,
                       const float alpha, __global const float *restrict A, const uint a_off,
                       const uint lda, __global const float *restrict B, const uint b_off,
                       const uint ldb, const float beta, __global float *restrict C,
                       const uint c_off, const uint ldc, const uint c_ss) {
    const uint i0 = (uint)get_global_id(0) * SNN_GEMM_DI, j0 = (uint)get_global_id(1) * SNN_GEMM_DJ;
    const uint s = (uint)get_global_id(2);
    const int active = i0 < M && j0 < N;
    const uint kbeg = min(k1, k0 + s * ks), kend = min(k1, kbeg + ks);
    const uint kvec = kbeg + (kend - kbeg) / 16u * 16u; /* end of the whole float16 steps */
    __global const float *a[SNN_GEMM_DI];
    __global const float *b[SNN_GEMM_DJ];
#pragma unroll
    for (int r = 0; r < SNN_GEMM_DI; r++) a[r] = A + a_off + min(i0 + (uint)r, M - 1u) * lda;
#pragma unroll
    for (int q = 0; q < SNN_GEMM_DJ; q++) b[q] = B + b_off + min(j0 + (uint)q, N - 1u) * ldb;
    float16 acc[SNN_GEMM_DI][SNN_GEMM_DJ];
#pragma unroll
    for (int r = 0; r < SNN_GEMM_DI; r++)
#pragma unroll
        for (int q = 0; q < SNN_GEMM_DJ; q++) acc[r][q] = (float16)(0.0f);
    for (uint kb = kbeg; kb < kend; kb += GEMM_DKC) { /* at least once: kend > kbeg */
        const uint ke = min(kb + (uint)GEMM_DKC, kvec);  /* kb + 16 i, or below kb */
        if (active) {
            for (uint p = kb; p < ke; p += 16u) {
                float16 bv[SNN_GEMM_DJ];
#pragma unroll
                for (int q = 0; q < SNN_GEMM_DJ; q++) bv[q] = vload16(0, b[q] + p);
#pragma unroll
                for (int r = 0; r < SNN_GEMM_DI; r++) {
                    const float16 av = vload16(0, a[r] + p);
#pragma unroll
                    for (int q = 0; q < SNN_GEMM_DJ; q++) acc[r][q] = fma(av, bv[q], acc[r][q]);
                }
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (!active) return;
    float sum[SNN_GEMM_DI][SNN_GEMM_DJ];
#pragma unroll
    for (int r = 0; r < SNN_GEMM_DI; r++)
#pragma unroll
        for (int q = 0; q < SNN_GEMM_DJ; q++) {
            const float8 h8 = acc[r][q].lo + acc[r][q].hi;
            const float4 h4 = h8.lo + h8.hi;
            const float2 h2 = h4.lo + h4.hi;
            sum[r][q] = h2.lo + h2.hi;
        }
    for (uint p = kvec; p < kend; p++) /* the last (kend - kbeg) mod 16 steps */
#pragma unroll
        for (int r = 0; r < SNN_GEMM_DI; r++)
#pragma unroll
            for (int q = 0; q < SNN_GEMM_DJ; q++) sum[r][q] = fma(a[r][p], b[q][p], sum[r][q]);
    __global float *cs = C + c_off + s * c_ss;
#pragma unroll
    for (int r = 0; r < SNN_GEMM_DI; r++) {
        const uint i = i0 + (uint)r;
        if (i >= M) break;
        __global float *c = cs + i * ldc + j0;
#pragma unroll
        for (int q = 0; q < SNN_GEMM_DJ; q++)
            if (j0 + (uint)q < N) c[q] = GEMM_OUT(sum[r][q], alpha, beta, c + q);
    }
}

/* C[c_off + i * ldc + j] = alpha * sum over s < S of part[s * M * N + i * N + j]
 * + beta * C[...], the slices added in order (S = 0: C = beta C, for K = 0). Global
 * size (N, M). */
__kernel void snn_k_gemm_sum(const uint M, const uint N, const uint S, const float alpha,
                       __global const float *restrict part, const float beta,
                       __global float *restrict C, const uint c_off, const uint ldc) {
    const uint j = (uint)get_global_id(0), i = (uint)get_global_id(1);
    if (i >= M || j >= N) return;
    __global const float *p = part + i * N + j;
    float v = 0.0f;
    for (uint s = 0; s < S; s++) v += p[s * M * N];
    __global float *c = C + c_off + i * ldc + j;
    *c = GEMM_OUT(v, alpha, beta, c);
}

/* out[o_off + j * ldo + i] = in[i_off + i * ldi + j] for i < rows, j < cols. Global size
 * (cols, rows); reads run along rows (the (1, 1) case is rare, so no tiling). */
__kernel void snn_k_gemm_transpose(const uint rows, const uint cols, __global const float *restrict in,
                             const uint i_off, const uint ldi, __global float *restrict out,
                             const uint o_off, const uint ldo) {
    const uint j = (uint)get_global_id(0), i = (uint)get_global_id(1);
    if (j >= cols || i >= rows) return;
    out[o_off + j * ldo + i] = in[i_off + i * ldi + j];
}
