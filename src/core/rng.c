#include "rng.h"

#include <math.h>

#include "snn_constants.h"

void snn_philox4x32_10(const uint32_t ctr_in[4], const uint32_t key_in[2], uint32_t out[4]) {
    uint32_t c0 = ctr_in[0], c1 = ctr_in[1], c2 = ctr_in[2], c3 = ctr_in[3];
    uint32_t k0 = key_in[0], k1 = key_in[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)SNN_PHILOX_M0 * c0, p1 = (uint64_t)SNN_PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1, n3 = (uint32_t)p0;
        c0 = n0, c1 = n1, c2 = n2, c3 = n3;
        k0 += SNN_PHILOX_W0;
        k1 += SNN_PHILOX_W1;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

void snn_rng_init(snn_rng *r, uint64_t seed, uint32_t stream) {
    r->key[0] = (uint32_t)seed;
    r->key[1] = (uint32_t)(seed >> 32);
    r->block = (uint64_t)stream << 40;
    r->used = 4;
}

uint32_t snn_rng_u32(snn_rng *r) {
    if (r->used == 4) {
        uint32_t ctr[4] = {(uint32_t)r->block, (uint32_t)(r->block >> 32), SNN_STREAM_HOST, 0};
        snn_philox4x32_10(ctr, r->key, r->buf);
        r->block++;
        r->used = 0;
    }
    return r->buf[r->used++];
}

double snn_rng_uniform(snn_rng *r) {
    uint64_t hi = snn_rng_u32(r) >> 5, lo = snn_rng_u32(r) >> 6;
    return (double)(hi * 67108864u + lo) * (1.0 / 9007199254740992.0);
}

double snn_rng_normal(snn_rng *r) {
    double u1 = 1.0 - snn_rng_uniform(r), u2 = snn_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
