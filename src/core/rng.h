/* Host-side random numbers: the same Philox4x32-10 as cl/philox.cl (so tests have a
 * plain-C reference) and a seeded stream for parameter initialization. */
#ifndef SNNCL_RNG_H
#define SNNCL_RNG_H

#include <stdint.h>

void snn_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* A sequential stream over Philox blocks: (key = seed, counter = block index). */
typedef struct snn_rng {
    uint32_t key[2];
    uint64_t block;
    uint32_t buf[4];
    int used;
} snn_rng;

void snn_rng_init(snn_rng *r, uint64_t seed, uint32_t stream);
uint32_t snn_rng_u32(snn_rng *r);
double snn_rng_uniform(snn_rng *r); /* [0, 1) with 53 random bits */
double snn_rng_normal(snn_rng *r);

#endif
