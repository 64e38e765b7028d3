/* The dataset object shared by the file readers (idx.c, cifar10.c) and the rest of
 * the dataset interface (dataset.c): images and labels held as bytes. */
#ifndef SNNCL_DATASET_INTERNAL_H
#define SNNCL_DATASET_INTERNAL_H

#include <stddef.h>

#include "internal.h"

#define SNN_DATASET_MAX_CHANNELS 3
/* Every format stores labels 0..9. */
#define SNN_DATASET_CLASSES 10

struct snn_dataset {
    size_t count;                /* images; 1 .. UINT32_MAX (order and gather use uint32_t) */
    int channels, height, width; /* channels 1 .. SNN_DATASET_MAX_CHANNELS */
    size_t image_bytes;          /* channels * height * width */
    unsigned char *images;       /* count * image_bytes: (N, C, H, W) */
    unsigned char *labels;       /* count, each < SNN_DATASET_CLASSES */
    float mean[SNN_DATASET_MAX_CHANNELS], std[SNN_DATASET_MAX_CHANNELS];
    /* lut[c][b] = ((double)b / 255 - mean[c]) / std[c], rounded once to float. */
    float lut[SNN_DATASET_MAX_CHANNELS][256];
};

/* A dataset over images (count * channels * height * width bytes) and labels (count
 * bytes), both from malloc, with mean 0 and std 1. Takes ownership of both buffers
 * whether it succeeds or not. The caller has checked the labels and the sizes. */
snn_status snn_dataset_adopt(snn_dataset **out, unsigned char *images, unsigned char *labels,
                             size_t count, int channels, int height, int width);

#endif
