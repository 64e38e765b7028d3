/* snncl describe and snncl create: network descriptions on the command line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "commands.h"
#include "snncl.h"

snn_status cli_load_network(const char *net_path, const char *model_path, snn_network **out) {
    if (net_path) return snn_network_load(out, net_path);
    snn_model_config cfg;
    struct stat sb;
    if (stat(model_path, &sb) != 0 && snn_model_config_default(&cfg, model_path) == SNN_OK)
        return snn_network_preset(out, &cfg); /* a preset's name (no such file): its defaults */
    snn_context *ctx = NULL;
    snn_model *model = NULL;
    /* A model file's description needs no device work beyond loading it. */
    snn_status st = snn_context_create(&ctx, NULL);
    if (st == SNN_OK) st = snn_model_load(&model, ctx, model_path);
    if (st == SNN_OK) st = snn_model_network(model, out);
    snn_model_free(model);
    snn_context_free(ctx);
    return st;
}

/* One line of text for a layer's options, as the JSON names them. */
static void layer_text(const snn_layer_desc *d, char *buf, size_t len) {
    static const char *const resets[] = {"subtract", "zero", "none"};
    static const char *const surrogates[] = {"atan", "fast_sigmoid", "sigmoid"};
    switch (d->type) {
    case SNN_LAYER_CONV2D:
        snprintf(buf, len, "%d, %dx%d, stride %d, padding %d%s", d->out, d->kernel_size, d->kernel_size, d->stride,
                 d->padding, d->bias ? ", bias" : "");
        break;
    case SNN_LAYER_BATCHNORM2D: snprintf(buf, len, "eps %g, momentum %g", (double)d->eps, (double)d->momentum); break;
    case SNN_LAYER_LEAKY:
        snprintf(buf, len, "beta %g%s, threshold %g%s, reset %s%s, %s(%g)", (double)d->beta,
                 d->learn_beta ? " (learned)" : "", (double)d->threshold, d->learn_threshold ? " (learned)" : "",
                 resets[d->reset_mechanism % 3], d->reset_delay ? "" : " at once", surrogates[d->surrogate % 3],
                 (double)d->surrogate_param);
        break;
    case SNN_LAYER_AVGPOOL2D:
    case SNN_LAYER_MAXPOOL2D:
        snprintf(buf, len, "%dx%d, stride %d", d->kernel_size, d->kernel_size, d->stride ? d->stride : d->kernel_size);
        break;
    case SNN_LAYER_LINEAR: snprintf(buf, len, "%d%s", d->out, d->bias ? ", bias" : ""); break;
    case SNN_LAYER_DROPOUT: snprintf(buf, len, "p %g", (double)d->p); break;
    default: snprintf(buf, len, "%s", ""); break;
    }
}

/* The layer table: output shapes, trainable parameters, the FLOPs of the convolutions
 * and linear layers per sample and step (the readout's: per sample, it runs once). */
static void print_table(FILE *out, const snn_network *net) {
    int C, H, W, classes, T;
    snn_encoding enc;
    float gain;
    snn_network_input(net, &C, &H, &W, &classes, &T, &enc, &gain);
    fprintf(out, "input %dx%dx%d, %d classes, T = %d, %s encoding", C, H, W, classes, T, snn_encoding_name(enc));
    if (enc == SNN_ENCODING_RATE) fprintf(out, " (gain %g)", (double)gain);
    fprintf(out, "\n\n%-11s %-12s %-58s %-12s %10s %12s\n", "layer", "type", "options", "output", "params",
            "MFLOP/step");
    int64_t in[3] = {C, H, W};
    double total_params = 0, step_flops = 0, readout_flops = 0;
    for (int p = 0; p < 2; p++) {
        const snn_network_part part = (snn_network_part)p;
        for (int i = 0; i < snn_network_num_layers(net, part); i++) {
            snn_layer_desc d;
            int od;
            int64_t s[3];
            if (snn_network_layer(net, part, i, &d, &od, s) != SNN_OK) return;
            double params = 0, flops = 0;
            const double fan_in = (double)in[0]; /* channels, or features */
            if (d.type == SNN_LAYER_CONV2D) {
                params = (double)d.out * fan_in * d.kernel_size * d.kernel_size + (d.bias ? d.out : 0);
                flops = 2.0 * (double)d.out * fan_in * d.kernel_size * d.kernel_size * (double)(s[1] * s[2]);
            } else if (d.type == SNN_LAYER_LINEAR) {
                params = (double)d.out * fan_in + (d.bias ? d.out : 0);
                flops = 2.0 * (double)d.out * fan_in;
            } else if (d.type == SNN_LAYER_BATCHNORM2D) {
                params = 2.0 * (double)in[0];
            } else if (d.type == SNN_LAYER_LEAKY) {
                params = d.learn_beta + d.learn_threshold;
            }
            char where[24], opt[96], shape[40];
            snprintf(where, sizeof where, "%s[%d]", p ? "readout" : "layers", i);
            layer_text(&d, opt, sizeof opt);
            if (od == 3) snprintf(shape, sizeof shape, "%lldx%lldx%lld", (long long)s[0], (long long)s[1], (long long)s[2]);
            else snprintf(shape, sizeof shape, "%lld", (long long)s[0]);
            fprintf(out, "%-11s %-12s %-58s %-12s %10.0f %12.3f\n", where, snn_layer_type_name(d.type), opt, shape, params,
                    flops / 1e6);
            total_params += params;
            if (part == SNN_NET_LAYERS) step_flops += flops;
            else readout_flops += flops;
            memcpy(in, s, sizeof in);
        }
    }
    fprintf(out, "\n%.0f trainable parameters; %.3f MFLOP per sample and step, %.3f MFLOP per sample over the %d "
                 "steps and the readout (convolutions and linear layers, forward only)\n",
            total_params, step_flops / 1e6, (step_flops * T + readout_flops) / 1e6, T);
}

int cmd_describe(int argc, char **argv) {
    const char *net_path = NULL, *model_path = NULL;
    int json_only = 0;
    cli_option opts[] = {
        {"net", CLI_STRING, &net_path, "FILE.json", "a network description", 0, 0},
        {"model", CLI_STRING, &model_path, "PATH|simple|vgg",
         "a model file (its description; presets expand to theirs), or a preset's name (its defaults)", 0, 0},
        {"json", CLI_FLAG, &json_only, NULL, "print the description's JSON only", 0, 0},
    };
    const size_t nopts = sizeof opts / sizeof opts[0];
    int rc = cli_parse_command("describe", argc, argv, opts, nopts, "snncl describe --net FILE | --model M [--json]",
                               "Prints a network's description as JSON, every option written out, then a table of\n"
                               "its layers: options, output shape per sample and step, trainable parameters and\n"
                               "the multiply-add FLOPs of its convolutions and linear layers. docs/network.md\n"
                               "describes the JSON.");
    if (rc >= 0) return rc;
    if (!net_path == !model_path) {
        fprintf(stderr, "snncl describe: give one of --net and --model\n");
        return 2;
    }
    snn_network *net = NULL;
    snn_status st = cli_load_network(net_path, model_path, &net);
    if (st != SNN_OK) return cli_report("reading the description", st);
    size_t need = 0;
    snn_network_to_json(net, NULL, 0, &need);
    char *json = malloc(need ? need : 1);
    if (!json || (st = snn_network_to_json(net, json, need, &need)) != SNN_OK) {
        free(json);
        snn_network_free(net);
        return cli_report("writing the description", json ? st : SNN_ERR_OUT_OF_MEMORY);
    }
    fputs(json, stdout);
    if (!json_only) {
        printf("\n");
        print_table(stdout, net);
    }
    free(json);
    snn_network_free(net);
    return 0;
}

int cli_init_scheme(const char *cmd, const char *name, snn_init_scheme *out) {
    if (strcmp(name, "seed") == 0) *out = SNN_INIT_SEED;
    else if (strcmp(name, "pytorch") == 0) *out = SNN_INIT_PYTORCH;
    else {
        fprintf(stderr, "snncl %s: --init-scheme must be seed or pytorch, got '%s'\n", cmd, name);
        return 2;
    }
    return 0;
}

int cmd_create(int argc, char **argv) {
    const char *net_path = NULL, *out_path = NULL, *device = NULL, *scheme_name = "seed";
    uint64_t seed = 0;
    cli_option opts[] = {
        {"net", CLI_STRING, &net_path, "FILE.json", "the network description", 1, 0},
        {"out", CLI_STRING, &out_path, "PATH", "where to write the model (safetensors)", 1, 0},
        {"seed", CLI_U64, &seed, "N", "initialization seed", 0, 0},
        {"init-scheme", CLI_STRING, &scheme_name, "seed|pytorch",
         "the seed's initialization, or PyTorch's module defaults (U(+-1/sqrt(fan_in)))", 0, 0},
        {"device", CLI_STRING, &device, "N|NAME", "OpenCL device (default $SNNCL_DEVICE or 0)", 0, 0},
    };
    const size_t nopts = sizeof opts / sizeof opts[0];
    int rc = cli_parse_command("create", argc, argv, opts, nopts, "snncl create --net FILE --out M [--seed N]",
                               "Writes a fresh model of a network description, initialized as the seed does\n"
                               "(Kaiming-normal convolutions, Xavier-uniform linear layers, zero biases, unit\n"
                               "BatchNorm) or with --init-scheme pytorch as PyTorch's modules are. Its tensors are named as PyTorch's state_dict of the description's\n"
                               "nn.ModuleDict (tools/snnpy/network.py builds it); the description is in the\n"
                               "file's metadata.");
    if (rc >= 0) return rc;
    snn_init_scheme scheme;
    if ((rc = cli_init_scheme("create", scheme_name, &scheme)) != 0) return rc;
    snn_network *net = NULL;
    snn_context *ctx = NULL;
    snn_model *model = NULL;
    snn_status st = snn_network_load(&net, net_path);
    if (st != SNN_OK) return cli_report("reading the description", st);
    snn_context_params cp;
    snn_context_params_default(&cp);
    cp.device = device;
    int status = 1;
    if ((st = snn_context_create(&ctx, &cp)) != SNN_OK) cli_report("opening the device", st);
    else if ((st = snn_model_create_network(&model, ctx, net, seed)) != SNN_OK) cli_report("creating the model", st);
    else if (scheme != SNN_INIT_SEED && (st = snn_model_init(model, scheme, seed)) != SNN_OK)
        cli_report("initializing the model", st);
    else if ((st = snn_model_save(model, out_path)) != SNN_OK) cli_report("writing the model", st);
    else {
        printf("wrote %s (%d spiking layers)\n", out_path, snn_model_num_lif_layers(model));
        status = 0;
    }
    snn_model_free(model);
    snn_context_free(ctx);
    snn_network_free(net);
    return status;
}
