/* Network descriptions (include/snncl.h, docs/network.md): the input, the per-step
 * layers and the readout, each layer with PyTorch's/snnTorch's arguments, its
 * parameters' name prefix and its inferred output shape. Host only (no device), so
 * the fuzzers reach the parser. model.c lowers a description to the layer plan. */
#ifndef SNNCL_NETWORK_H
#define SNNCL_NETWORK_H

#include "internal.h"

/* Most layers in one part: far above any network here, small enough that every walk
 * is trivially cheap and a hostile description cannot ask for much memory. */
#define SNN_NET_MAX_LAYERS 256

/* The metadata key of a model file that holds its description (JSON). */
#define SNN_NETWORK_META "snncl.network"

typedef struct snn_net_layer {
    snn_layer_desc d;
    char name[48];       /* its parameters' prefix: "layers.3", or a preset's seed name */
    int param_rank;      /* state_dict order: layers' parameters by rank, then position (presets
                          * follow the seed's module order; descriptions have rank 0) */
    int ndim;            /* output per sample and step: 3 (C, H, W) or 1 (features) */
    int64_t shape[3];
} snn_net_layer;

struct snn_network {
    int in_channels, height, width, num_classes, T;
    snn_encoding encoding;
    float gain;
    snn_net_layer *part[2]; /* SNN_NET_LAYERS, SNN_NET_READOUT */
    int count[2], cap[2];
    int preset;             /* -1, or the snn_model_kind whose seed names the layers carry */
};

/* Appends a layer whose parameters are named `name`.<tensor> (NULL: "<part>.<index>",
 * as PyTorch's ModuleDict names them; presets give the seed's names). */
snn_status snn_network_append(snn_network *net, snn_network_part part, const snn_layer_desc *d, const char *name);
/* Infers every layer's output shape (net is logically const: only the cached shapes
 * change), failing with a message that names the first layer that does not fit. */
snn_status snn_network_infer(snn_network *net);
/* A deep copy. */
snn_status snn_network_copy(const snn_network *net, snn_network **out);
/* The JSON text in a new buffer (free()). */
snn_status snn_network_json_alloc(const snn_network *net, char **out);
/* "layers[3]" or "readout[0]": how messages name a layer. */
const char *snn_network_part_name(snn_network_part part);

#endif
