/* libFuzzer target for the safetensors reader: parse the input as a whole file, then
 * touch everything the reader hands out, and check that an accepted file writes and
 * reads back unchanged. */
#include <inttypes.h>
#include <math.h>

#include "fuzz_util.h"
#include "snncl.h"

static size_t element_size(snn_dtype dtype) { return dtype == SNN_F32 ? 4 : 8; }

/* Reads every byte of every tensor and converts it to float, so ASan sees any
 * reader bug in the sizes it reports. */
static void touch_tensors(const snn_safetensors *st) {
    for (size_t i = 0; i < snn_safetensors_count(st); i++) {
        const snn_tensor *t = snn_safetensors_at(st, i);
        uint64_t count = 1;
        unsigned checksum = 0;
        FUZZ_CHECK(t && t->name && t->data);
        FUZZ_CHECK(snn_safetensors_find(st, t->name) == t);
        FUZZ_CHECK(t->ndim >= 0 && t->ndim <= SNN_MAX_DIMS);
        for (int d = 0; d < t->ndim; d++) {
            FUZZ_CHECK(t->shape[d] >= 0);
            count *= (uint64_t)t->shape[d]; /* nbytes bounds it, checked below */
        }
        FUZZ_CHECK(t->nbytes == count * element_size(t->dtype));
        for (size_t b = 0; b < t->nbytes; b++) checksum += ((const unsigned char *)t->data)[b];
        (void)checksum;
        {
            float *values = malloc(count ? (size_t)count * sizeof *values : 1);
            FUZZ_CHECK(values != NULL);
            FUZZ_CHECK(snn_safetensors_get_f32(st, t->name, t->ndim, t->shape, values) == SNN_OK);
            free(values);
        }
    }
    FUZZ_CHECK(snn_safetensors_at(st, snn_safetensors_count(st)) == NULL);
    for (size_t i = 0; i < snn_safetensors_meta_count(st); i++) {
        const char *key = snn_safetensors_meta_key(st, i), *value;
        FUZZ_CHECK(key != NULL);
        value = snn_safetensors_meta_get(st, key);
        FUZZ_CHECK(value != NULL);
        (void)strlen(value);
    }
    FUZZ_CHECK(snn_safetensors_meta_key(st, snn_safetensors_meta_count(st)) == NULL);
}

static int same_tensor(const snn_tensor *a, const snn_tensor *b) {
    if (!a || !b || strcmp(a->name, b->name) != 0 || a->dtype != b->dtype || a->ndim != b->ndim ||
        a->nbytes != b->nbytes)
        return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return 0;
    return a->nbytes == 0 || memcmp(a->data, b->data, a->nbytes) == 0;
}

/* What the reader accepts, the writer must write and the reader read back the same. */
static void check_round_trip(const snn_safetensors *st) {
    char path[256];
    snn_safetensors *back = NULL;
    fuzz_scratch_path(path, sizeof path, "round-trip.safetensors");
    if (snn_safetensors_write(st, path) != SNN_OK) {
        fprintf(stderr, "write failed: %s\n", snn_last_error());
        FUZZ_CHECK(!"an accepted file could not be written back");
    }
    if (snn_safetensors_read(&back, path) != SNN_OK) {
        fprintf(stderr, "read back failed: %s\n", snn_last_error());
        FUZZ_CHECK(!"a written file could not be read back");
    }
    unlink(path);
    FUZZ_CHECK(snn_safetensors_count(back) == snn_safetensors_count(st));
    for (size_t i = 0; i < snn_safetensors_count(st); i++)
        FUZZ_CHECK(same_tensor(snn_safetensors_at(st, i), snn_safetensors_at(back, i)));
    FUZZ_CHECK(snn_safetensors_meta_count(back) == snn_safetensors_meta_count(st));
    for (size_t i = 0; i < snn_safetensors_meta_count(st); i++) {
        const char *key = snn_safetensors_meta_key(st, i);
        const char *value = snn_safetensors_meta_get(back, key);
        FUZZ_CHECK(value && strcmp(value, snn_safetensors_meta_get(st, key)) == 0);
    }
    snn_safetensors_free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    snn_safetensors *st = NULL;
    if (snn_safetensors_read_memory(&st, "fuzz-input", data, size) != SNN_OK) {
        FUZZ_CHECK(st == NULL);
        FUZZ_CHECK(snn_last_error()[0] != '\0');
        return 0;
    }
    touch_tensors(st);
    check_round_trip(st);
    snn_safetensors_free(st);
    return 0;
}
