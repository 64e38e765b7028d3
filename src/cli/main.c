/* snncl: the command line. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "snncl.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"devices", cmd_devices, "list OpenCL devices and their properties"},
    {"infer", cmd_infer, "run a model on a batch (eval mode), optionally with the Lyapunov estimate"},
    {"train", cmd_train, "train a model on a dataset (Fashion-MNIST, MNIST, CIFAR-10) and evaluate it"},
    {"eval", cmd_eval, "accuracy of a model on a dataset split"},
    {"bench", cmd_bench, "time standard workloads on one or every device (table and JSON lines)"},
    {"grad", cmd_grad, "loss and gradients of one training-mode step on a batch (no update)"},
    {"tune", cmd_tune, "measure the fastest GEMM path for a device and store it for later runs"},
    {"describe", cmd_describe, "print a network's description (JSON) and a table of its layers"},
    {"create", cmd_create, "write a fresh model of a network description (JSON)"},
    {"raster", cmd_raster, "draw one sample's spikes in every layer over time (PNG or SVG)"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: snncl <command> [options]\n\nspiking neural networks with Lyapunov estimates on OpenCL\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n'snncl <command> --help' describes a command's options.\n"
                 "SNNCL_DEVICE selects the default device (an index or a name substring).\n");
}

int cli_report(const char *what, int status) {
    const char *detail = snn_last_error();
    fprintf(stderr, "snncl: %s: %s%s%s\n", what, snn_status_str((snn_status)status), *detail ? ": " : "", detail);
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("snncl %s\n", snn_version());
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc, argv);
    fprintf(stderr, "snncl: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
