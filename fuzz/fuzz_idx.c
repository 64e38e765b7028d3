/* libFuzzer target for the IDX reader (MNIST / Fashion-MNIST images and labels, plain
 * or gzip). The input holds both files: a 2-byte little-endian length L, then L bytes
 * of the label file, then the image file (the rest). Both go to scratch files, since
 * the reader takes paths (zlib's gzread reads plain and gzip files alike). */
#include "fuzz_util.h"
#include "snncl.h"

static char images_path[256], labels_path[256];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t labels_len;
    snn_dataset *ds = NULL;
    snn_status status;
    if (size < 2) return 0;
    if (!images_path[0]) {
        fuzz_scratch_path(images_path, sizeof images_path, "images-idx3-ubyte");
        fuzz_scratch_path(labels_path, sizeof labels_path, "labels-idx1-ubyte");
    }
    labels_len = (size_t)data[0] | (size_t)data[1] << 8;
    data += 2, size -= 2;
    if (labels_len > size) labels_len = size;
    fuzz_write_file(labels_path, data, labels_len);
    fuzz_write_file(images_path, data + labels_len, size - labels_len);

    status = snn_dataset_load_idx(&ds, images_path, labels_path);
    unlink(images_path);
    unlink(labels_path);
    if (status != SNN_OK) {
        FUZZ_CHECK(ds == NULL);
        FUZZ_CHECK(snn_last_error()[0] != '\0');
        return 0;
    }
    {
        int channels, height, width;
        size_t n = snn_dataset_size(ds), pixels;
        float mean, std, *image;
        int64_t label;
        uint32_t last;
        FUZZ_CHECK(n >= 1);
        FUZZ_CHECK(snn_dataset_shape(ds, &channels, &height, &width) == SNN_OK);
        FUZZ_CHECK(channels == 1 && height >= 1 && width >= 1);
        /* The (possibly decompressed) image data is exactly n * height * width bytes,
         * which a plain file's size bounds. */
        if (size - labels_len >= 2 && !(data[labels_len] == 0x1f && data[labels_len + 1] == 0x8b))
            FUZZ_CHECK(16 + n * (size_t)height * (size_t)width == size - labels_len);
        FUZZ_CHECK(snn_dataset_channel_stats(ds, &mean, &std) == SNN_OK);
        FUZZ_CHECK(mean >= 0.0f && mean <= 1.0f && std >= 0.0f && std <= 1.0f);
        pixels = (size_t)height * (size_t)width;
        image = malloc(pixels * sizeof *image);
        FUZZ_CHECK(image != NULL);
        last = (uint32_t)(n - 1);
        FUZZ_CHECK(snn_dataset_gather(ds, &last, 1, image, &label) == SNN_OK);
        FUZZ_CHECK(label >= 0 && label < snn_dataset_num_classes(ds));
        free(image);
    }
    snn_dataset_free(ds);
    return 0;
}
