/* The file formats' readers (idx.c, cifar10.c) and what they hand back: they know
 * formats only, and dataset.c makes a dataset of what they read. */
#ifndef SNNCL_READERS_H
#define SNNCL_READERS_H

#include <stddef.h>

#include "internal.h"

/* Every format stores labels 0..9. */
#define SNN_DATASET_CLASSES 10

/* images: count * channels * height * width bytes, (N, C, H, W); labels: count bytes,
 * each < SNN_DATASET_CLASSES. Both from malloc; the caller of a reader owns them. */
typedef struct snn_image_set {
    unsigned char *images, *labels;
    size_t count; /* 1 .. UINT32_MAX */
    int channels, height, width;
} snn_image_set;

/* An IDX image file (n, h, w) and label file (n), plain or gzip (idx.c). */
snn_status snn_idx_read(const char *images_path, const char *labels_path, snn_image_set *out);

/* CIFAR-10 binary batches, concatenated in order (cifar10.c). */
snn_status snn_cifar10_read(const char *const *paths, int count, snn_image_set *out);

#endif
