/* snncl raster: one sample's spikes in every LIF layer over time, as a picture. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "batch_io.h"
#include "commands.h"
#include "plot.h"
#include "snncl.h"

typedef struct raster_job {
    snn_context *ctx;
    snn_model *model;
    cli_batch batch;
    uint8_t **spikes;
    int num_lifs;
    float *logits, *image;
    char (*labels)[96];
    plot_layer *layers;
} raster_job;

static void job_free(raster_job *j) {
    for (int l = 0; j->spikes && l < j->num_lifs; l++) free(j->spikes[l]);
    free(j->spikes);
    free(j->logits);
    free(j->image);
    free(j->labels);
    free(j->layers);
    cli_batch_free(&j->batch);
    snn_model_free(j->model);
    snn_context_free(j->ctx);
}

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

int cmd_raster(int argc, char **argv) {
    const char *model_path = NULL, *input_path = NULL, *output_path = "raster.png", *device = NULL;
    int sample = 0, max_neurons = 256;
    snn_forward_params fp;
    snn_forward_params_default(&fp);
    cli_option opts[] = {
        {"model", CLI_STRING, &model_path, "PATH", "model (safetensors: state_dict names + metadata)", 1, 0},
        {"input", CLI_STRING, &input_path, "PATH", "batch: tensor 'input', (B,C,H,W) or (B,T,C,H,W)", 1, 0},
        {"sample", CLI_INT, &sample, "N", "which sample of the batch", 0, 0},
        {"output", CLI_STRING, &output_path, "PATH", "picture, .png or .svg", 0, 0},
        {"neurons", CLI_INT, &max_neurons, "N", "at most N neurons per layer, evenly spaced", 0, 0},
        {"seed", CLI_U64, &fp.seed, "N", "seed for rate encoding", 0, 0},
        {"device", CLI_STRING, &device, "N|NAME", "OpenCL device (default $SNNCL_DEVICE or 0)", 0, 0},
    };
    const size_t nopts = sizeof opts / sizeof opts[0];
    char err[512];
    int rc = cli_parse_command("raster", argc, argv, opts, nopts, "snncl raster --model M --input X [--sample N] [--output raster.png|svg] [options]",
                               "Runs the model in eval mode on the batch and draws one sample's spikes: a panel\n"
                               "per LIF layer (x: time step, y: neuron, a bar per spike; large layers show an\n"
                               "evenly spaced subset), the fraction of the layer spiking at each step, and the\n"
                               "input image. PNG or SVG by the output's extension.");
    if (rc >= 0) return rc;
    plot_format fmt;
    if (plot_format_of(output_path, &fmt) != 0) {
        fprintf(stderr, "snncl raster: --output must end in .png or .svg, got '%s'\n", output_path);
        return 2;
    }
    if (sample < 0 || max_neurons < 1) {
        fprintf(stderr, "snncl raster: --sample must be >= 0 and --neurons >= 1\n");
        return 2;
    }

    raster_job j;
    memset(&j, 0, sizeof j);
    snn_status st;
    int status = 1;
    snn_model_config cfg;
    if ((st = cli_open_model(device, model_path, &j.ctx, &j.model)) != SNN_OK) goto done;
    snn_model_get_config(j.model, &cfg);
    if ((st = cli_read_input("raster", &j.batch, input_path, &cfg)) != SNN_OK) {
        if (st != SNN_ERR_SHAPE && st != SNN_ERR_NOT_FOUND) cli_report("reading the input", st);
        goto done;
    }
    const int B = j.batch.batch;
    if (sample >= B) {
        fprintf(stderr, "snncl raster: --sample %d is outside the batch: %s holds %d sample%s (0 to %d)\n", sample,
                input_path, B, B == 1 ? "" : "s", B - 1);
        status = 2;
        goto done;
    }
    fp.pre_encoded = j.batch.pre_encoded;

    j.num_lifs = snn_model_num_lif_layers(j.model);
    j.spikes = calloc((size_t)j.num_lifs, sizeof *j.spikes);
    j.labels = calloc((size_t)j.num_lifs, sizeof *j.labels);
    j.layers = calloc((size_t)j.num_lifs, sizeof *j.layers);
    j.logits = malloc((size_t)B * (size_t)cfg.num_classes * sizeof(float));
    const size_t chw = (size_t)cfg.in_channels * (size_t)cfg.height * (size_t)cfg.width;
    j.image = malloc(chw * sizeof(float));
    if (!j.spikes || !j.labels || !j.layers || !j.logits || !j.image) goto oom;
    for (int l = 0; l < j.num_lifs; l++) {
        int ndim;
        int64_t shape[4];
        if ((st = snn_model_lif_shape(j.model, l, 1, &ndim, shape)) != SNN_OK) {
            cli_report("querying the model", st);
            goto done;
        }
        size_t n = 1;
        for (int d = 1; d < ndim; d++) n *= (size_t)shape[d];
        if (!(j.spikes[l] = malloc((size_t)cfg.T * n))) goto oom;
        if (ndim == 4)
            snprintf(j.labels[l], sizeof j.labels[l], "LIF %d: conv, %lld x %lld x %lld", l + 1, (long long)shape[1],
                     (long long)shape[2], (long long)shape[3]);
        else
            snprintf(j.labels[l], sizeof j.labels[l], "LIF %d: dense, %lld", l + 1, (long long)shape[1]);
        j.layers[l] = (plot_layer){j.labels[l], j.spikes[l], n, ndim == 4 ? (size_t)shape[1] : 1};
    }
    if ((st = snn_model_record_spikes(j.model, j.batch.x, B, sample, &fp, j.spikes, j.logits)) != SNN_OK) {
        cli_report("running the model", st);
        goto done;
    }

    /* The sample's input: the image, or its spikes averaged over the steps. */
    const char *image_label = "input";
    if (j.batch.pre_encoded) {
        memset(j.image, 0, chw * sizeof(float));
        const float *x = j.batch.x + (size_t)sample * (size_t)cfg.T * chw;
        for (int t = 0; t < cfg.T; t++)
            for (size_t i = 0; i < chw; i++) j.image[i] += x[(size_t)t * chw + i] / (float)cfg.T;
        image_label = "input spikes, mean over T";
    } else {
        memcpy(j.image, j.batch.x + (size_t)sample * chw, chw * sizeof(float));
        if (cfg.in_channels != 1 && cfg.in_channels != 3) image_label = "input, channel 0";
    }

    const float *lg = j.logits + (size_t)sample * (size_t)cfg.num_classes;
    int pred = 0;
    for (int k = 1; k < cfg.num_classes; k++)
        if (lg[k] > lg[pred]) pred = k;
    char title[256], arch[128] = "", subtitle[640];
    if (cfg.kind == SNN_MODEL_SIMPLE) {
        int len = snprintf(arch, sizeof arch, " channels ");
        for (int i = 0; i < cfg.num_blocks && len < (int)sizeof arch; i++)
            len += snprintf(arch + len, sizeof arch - (size_t)len, "%s%d", i ? "," : "", cfg.channels[i]);
    }
    snprintf(title, sizeof title, "Spikes of sample %d of %s", sample, base_name(input_path));
    char enc[96];
    if (j.batch.pre_encoded) snprintf(enc, sizeof enc, "pre-encoded spike input");
    else if (cfg.encoding == SNN_ENCODING_RATE)
        snprintf(enc, sizeof enc, "rate encoding (gain %g, seed %llu)", (double)cfg.encoding_gain,
                 (unsigned long long)fp.seed);
    else snprintf(enc, sizeof enc, "%s encoding", snn_encoding_name(cfg.encoding));
    snprintf(subtitle, sizeof subtitle,
             "model %s: %s%s, %dx%dx%d input, T = %d, %s\n"
             "eval mode; predicted class %d (logit %.3g); x: time step, y: neuron, a bar per spike",
             base_name(model_path), snn_model_kind_name(cfg.kind), arch, cfg.in_channels, cfg.height, cfg.width, cfg.T,
             enc, pred, (double)lg[pred]);
    plot_raster pr = {title, subtitle, cfg.T, j.num_lifs, j.layers, (size_t)max_neurons,
                      j.image, cfg.in_channels, cfg.height, cfg.width, image_label};
    if (plot_raster_write(output_path, &pr, err, sizeof err) != 0) {
        fprintf(stderr, "snncl raster: %s\n", err);
        goto done;
    }
    printf("wrote %s: sample %d of %d, T = %d, predicted class %d\n", output_path, sample, B, cfg.T, pred);
    for (int l = 0; l < j.num_lifs; l++) {
        size_t total = 0, n = j.layers[l].neurons;
        for (size_t i = 0; i < (size_t)cfg.T * n; i++) total += j.spikes[l][i];
        printf("  %s: %zu neurons, %zu spikes (%.2f%% of neuron-steps)\n", j.labels[l], n, total,
               100.0 * (double)total / ((double)cfg.T * (double)n));
    }
    status = 0;
    goto done;
oom:
    fprintf(stderr, "snncl raster: out of memory\n");
done:
    job_free(&j);
    return status;
}
