/* libFuzzer target for the CIFAR-10 binary batch reader: the input is one batch file
 * (records of 1 label byte and 3072 pixel bytes). An accepted batch is also read twice
 * over, as two batches, which must give twice the images in the same order. */
#include "fuzz_util.h"
#include "snncl.h"

#define CIFAR_RECORD 3073
#define CIFAR_IMAGE_FLOATS 3072

static char batch_path[256];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *paths[2];
    snn_dataset *ds = NULL, *twice = NULL;
    if (!batch_path[0]) fuzz_scratch_path(batch_path, sizeof batch_path, "data_batch.bin");
    fuzz_write_file(batch_path, data, size);
    paths[0] = paths[1] = batch_path;

    if (snn_dataset_load_cifar10(&ds, paths, 1) != SNN_OK) {
        FUZZ_CHECK(ds == NULL);
        FUZZ_CHECK(snn_last_error()[0] != '\0');
        FUZZ_CHECK(snn_dataset_load_cifar10(&twice, paths, 2) != SNN_OK);
        unlink(batch_path);
        return 0;
    }
    FUZZ_CHECK(size % CIFAR_RECORD == 0 && snn_dataset_size(ds) == size / CIFAR_RECORD);
    FUZZ_CHECK(snn_dataset_load_cifar10(&twice, paths, 2) == SNN_OK);
    unlink(batch_path);
    FUZZ_CHECK(snn_dataset_size(twice) == 2 * snn_dataset_size(ds));
    {
        /* The last image of the first copy and of the second must match the input. */
        uint32_t n = (uint32_t)snn_dataset_size(ds), picks[2] = {n - 1, 2 * n - 1};
        float *images = malloc(2 * CIFAR_IMAGE_FLOATS * sizeof *images);
        int64_t labels[2];
        const uint8_t *record = data + (size_t)(n - 1) * CIFAR_RECORD;
        FUZZ_CHECK(images != NULL);
        FUZZ_CHECK(snn_dataset_gather(twice, picks, 2, images, labels) == SNN_OK);
        FUZZ_CHECK(labels[0] == record[0] && labels[1] == record[0]);
        for (int i = 0; i < CIFAR_IMAGE_FLOATS; i++) {
            FUZZ_CHECK(images[i] == images[CIFAR_IMAGE_FLOATS + i]);
            FUZZ_CHECK(images[i] == (float)((double)record[1 + i] / 255.0));
        }
        free(images);
    }
    snn_dataset_free(twice);
    snn_dataset_free(ds);
    return 0;
}
