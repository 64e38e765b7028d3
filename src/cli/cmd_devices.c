/* snncl devices: every OpenCL device snncl can use. */
#include <stdio.h>
#include <stdlib.h>

#include "args.h"
#include "commands.h"
#include "snncl.h"

static const char *type_name(snn_device_type t) {
    switch (t) {
    case SNN_DEVICE_CPU: return "CPU";
    case SNN_DEVICE_GPU: return "GPU";
    case SNN_DEVICE_ACCELERATOR: return "accelerator";
    case SNN_DEVICE_OTHER: break;
    }
    return "other";
}

int cmd_devices(int argc, char **argv) {
    int rc = cli_parse_command("devices", argc, argv, NULL, 0, "snncl devices",
                               "Lists every OpenCL device on every platform. Select one with\n"
                               "--device N|NAME on other commands or with SNNCL_DEVICE.");
    if (rc >= 0) return rc;
    int n = 0;
    snn_status st = snn_device_count(&n);
    if (st != SNN_OK) return cli_report("listing devices", st);
    if (n == 0) {
        printf("no OpenCL devices found (install an ICD, e.g. pocl-opencl-icd)\n");
        return 1;
    }
    const char *env = getenv("SNNCL_DEVICE");
    for (int i = 0; i < n; i++) {
        snn_device_info d;
        st = snn_device_get_info(i, &d);
        if (st != SNN_OK) return cli_report("reading device info", st);
        printf("[%d] %s\n", i, d.name);
        printf("    vendor:          %s\n", d.vendor);
        printf("    platform:        %s\n", d.platform);
        printf("    type:            %s\n", type_name(d.type));
        printf("    version:         %s (%s), driver %s\n", d.device_version, d.c_version, d.driver_version);
        printf("    compute units:   %u at %u MHz\n", d.compute_units, d.max_clock_mhz);
        printf("    global memory:   %.1f MiB (largest buffer %.1f MiB)\n", d.global_mem_bytes / 1048576.0,
               d.max_alloc_bytes / 1048576.0);
        printf("    local memory:    %.1f KiB, work-group up to %zu\n", d.local_mem_bytes / 1024.0,
               d.max_work_group_size);
        printf("    fp64: %s, fp16: %s\n", d.has_fp64 ? "yes" : "no", d.has_fp16 ? "yes" : "no");
    }
    printf("default: %s\n", env && *env ? env : "0");
    return 0;
}
