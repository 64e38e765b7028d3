/* Batch files for infer and grad. */
#include "batch_io.h"

#include <stdio.h>
#include <stdlib.h>

#include "commands.h"

void cli_batch_free(cli_batch *b) {
    if (b->perturb)
        for (int l = 0; l < b->num_lifs; l++) free(b->perturb[l]);
    free(b->perturb);
    free(b->x);
    free(b->labels);
    snn_safetensors_free(b->input_file);
    snn_safetensors_free(b->labels_file);
    snn_safetensors_free(b->perturb_file);
}

snn_status cli_open_model(const char *device, const char *model_path, snn_context **ctx, snn_model **model) {
    return cli_open_model_T(device, model_path, 0, ctx, model);
}

snn_status cli_open_model_T(const char *device, const char *model_path, int T, snn_context **ctx,
                            snn_model **model) {
    snn_context_params cp;
    snn_context_params_default(&cp);
    cp.device = device;
    cp.clblast_tuning = 1; /* the whole process is snncl: its tuning may be process-wide */
    *ctx = NULL;
    *model = NULL;
    snn_status st = snn_context_create(ctx, &cp);
    if (st != SNN_OK) {
        cli_report("opening the device", st);
        return st;
    }
    if (T > 0) {
        /* The same parameters over another number of steps: T is the file's metadata. */
        snn_safetensors *file = NULL;
        char steps[32];
        snprintf(steps, sizeof steps, "%d", T);
        st = snn_safetensors_read(&file, model_path);
        if (st == SNN_OK) st = snn_safetensors_meta_set(file, "T", steps);
        if (st == SNN_OK) st = snn_model_from_safetensors(model, *ctx, file);
        snn_safetensors_free(file);
    } else {
        st = snn_model_load(model, *ctx, model_path);
    }
    if (st != SNN_OK) {
        cli_report("loading the model", st);
        snn_context_free(*ctx);
        *ctx = NULL;
    }
    return st;
}

snn_status cli_read_input(const char *cmd, cli_batch *b, const char *path, const snn_model_config *cfg) {
    snn_status st = snn_safetensors_read(&b->input_file, path);
    if (st != SNN_OK) return st;
    const snn_tensor *t = snn_safetensors_find(b->input_file, "input");
    if (!t) {
        fprintf(stderr, "snncl %s: %s has no tensor named 'input'\n", cmd, path);
        return SNN_ERR_NOT_FOUND;
    }
    int want5 = cfg->encoding == SNN_ENCODING_NONE;
    int is5 = t->ndim == 5;
    const int64_t *s = t->shape + (is5 ? 2 : 1);
    if ((t->ndim != 4 && t->ndim != 5) || (want5 && !is5) || t->shape[0] < 1 || t->shape[0] > 1000000 ||
        (is5 && t->shape[1] != cfg->T) || s[0] != cfg->in_channels || s[1] != cfg->height || s[2] != cfg->width) {
        fprintf(stderr, "snncl %s: %s: 'input' has shape [", cmd, path);
        for (int i = 0; i < t->ndim; i++) fprintf(stderr, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
        fprintf(stderr, "] but the model takes (B, %d, %d, %d)%s%s (B, T=%d, %d, %d, %d) spikes\n", cfg->in_channels,
                cfg->height, cfg->width, want5 ? "" : " images or", want5 ? " only" : "", cfg->T, cfg->in_channels,
                cfg->height, cfg->width);
        return SNN_ERR_SHAPE;
    }
    b->batch = (int)t->shape[0];
    b->pre_encoded = is5;
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= (size_t)t->shape[i];
    b->x = malloc(n * sizeof(float));
    if (!b->x) return SNN_ERR_OUT_OF_MEMORY;
    return snn_safetensors_get_f32(b->input_file, "input", t->ndim, t->shape, b->x);
}

snn_status cli_read_labels(const char *cmd, cli_batch *b, const char *path, int num_classes) {
    snn_status st = snn_safetensors_read(&b->labels_file, path);
    if (st != SNN_OK) return st;
    const snn_tensor *t = snn_safetensors_find(b->labels_file, "labels");
    if (!t) {
        fprintf(stderr, "snncl %s: %s has no tensor named 'labels'\n", cmd, path);
        return SNN_ERR_NOT_FOUND;
    }
    if (t->dtype != SNN_I64 || t->ndim != 1 || t->shape[0] != b->batch) {
        fprintf(stderr, "snncl %s: %s: 'labels' must be int64 of shape [%d] (one per input image)\n", cmd, path,
                b->batch);
        return SNN_ERR_SHAPE;
    }
    b->labels = malloc((size_t)b->batch * sizeof(int64_t));
    if (!b->labels) return SNN_ERR_OUT_OF_MEMORY;
    const unsigned char *d = t->data;
    for (int i = 0; i < b->batch; i++) {
        int64_t v;
        for (int k = 0; k < 8; k++) ((unsigned char *)&v)[k] = d[8 * (size_t)i + (size_t)k]; /* little-endian file */
        if (v < 0 || v >= num_classes) {
            fprintf(stderr, "snncl %s: %s: label %lld of sample %d is outside [0, %d)\n", cmd, path, (long long)v, i,
                    num_classes);
            return SNN_ERR_FORMAT;
        }
        b->labels[i] = v;
    }
    return SNN_OK;
}

snn_status cli_read_perturb(cli_batch *b, const char *path, const snn_model *model) {
    snn_status st = snn_safetensors_read(&b->perturb_file, path);
    if (st != SNN_OK) return st;
    b->num_lifs = snn_model_num_lif_layers(model);
    b->perturb = calloc((size_t)b->num_lifs, sizeof(float *));
    if (!b->perturb) return SNN_ERR_OUT_OF_MEMORY;
    for (int l = 0; l < b->num_lifs; l++) {
        int ndim;
        int64_t shape[4];
        char name[32];
        if ((st = snn_model_lif_shape(model, l, b->batch, &ndim, shape)) != SNN_OK) return st;
        size_t n = 1;
        for (int d = 0; d < ndim; d++) n *= (size_t)shape[d];
        b->perturb[l] = malloc(n * sizeof(float));
        if (!b->perturb[l]) return SNN_ERR_OUT_OF_MEMORY;
        snprintf(name, sizeof name, "perturb.%d", l);
        if ((st = snn_safetensors_get_f32(b->perturb_file, name, ndim, shape, b->perturb[l])) != SNN_OK) return st;
    }
    return SNN_OK;
}
