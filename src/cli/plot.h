/* Figures for the command line, drawn with cairo: training curves (train --plot) and
 * spike rasters (raster). PNG or SVG, chosen by the file's extension; every figure is
 * written to a temporary file that is synced and renamed into place, so a reader
 * never sees half a picture. Only the CLI uses this; libsnncl knows nothing of cairo. */
#ifndef SNNCL_CLI_PLOT_H
#define SNNCL_CLI_PLOT_H

#include <stddef.h>
#include <stdint.h>

typedef enum plot_format { PLOT_PNG = 0, PLOT_SVG = 1 } plot_format;

/* The format named by path's extension (".png" or ".svg", any case): 0, or -1 when
 * the extension is neither. */
int plot_format_of(const char *path, plot_format *out);

/* ------------------------------------------------------------- training curves -- */

/* One epoch's figures; known = 0 where the epoch's figures are not available. */
typedef struct plot_epoch {
    int known;
    double loss, cross_entropy, train_accuracy, lyapunov;
    double test_accuracy; /* NaN when the epoch was not evaluated */
} plot_epoch;

typedef struct plot_training {
    const char *title;      /* first line: the model */
    const char *subtitle;   /* second line: the settings (may be NULL) */
    const char *note;       /* shown under the title in a warning colour (may be NULL) */
    int epochs;             /* planned epochs: the x axis spans 1 .. epochs */
    const plot_epoch *hist; /* epochs entries; hist[e] is epoch e + 1 */
    int lyapunov;           /* nonzero: a third panel with the Lyapunov estimate */
    double lyap_target;     /* drawn as a dotted line in that panel */
} plot_training;

/* Panels: loss and cross-entropy, train and test accuracy, the Lyapunov estimate, each
 * against the epoch. On failure returns -1 with a message in err. */
int plot_training_write(const char *path, const plot_training *d, char *err, size_t errlen);

/* --------------------------------------------------------------- spike rasters -- */

typedef struct plot_layer {
    const char *label;     /* "LIF 1: conv 16 x 28 x 28" */
    const uint8_t *spikes; /* (T, neurons): 1 where a neuron spiked at a step */
    size_t neurons;
    size_t channels;       /* neurons come in this many equal channels (1: none) */
} plot_layer;

typedef struct plot_raster {
    const char *title, *subtitle;   /* subtitle may be NULL */
    int T;
    int num_layers;
    const plot_layer *layers;
    size_t max_rows;                /* at most this many neurons per panel, evenly spaced */
    /* The sample's input, (C, H, W) floats, drawn in the top-left corner: RGB when C is
     * 3, else the first channel; scaled from its minimum to its maximum. May be NULL. */
    const float *image;
    int image_c, image_h, image_w;
    const char *image_label;
} plot_raster;

/* One panel per layer: x the time step, y the neuron, a bar per spike, and under it
 * the fraction of all the layer's neurons that spiked at each step. */
int plot_raster_write(const char *path, const plot_raster *d, char *err, size_t errlen);

#endif
