/* Lists the OpenCL devices snncl can use, as `snncl devices` does: the index printed
 * first is what snn_context_params.device (or $SNNCL_DEVICE) takes.
 *   cc devices.c $(pkg-config --cflags --libs snncl) -o devices && ./devices */
#include <snncl.h>
#include <stdio.h>

static const char *type_name(snn_device_type type) {
    switch (type) {
    case SNN_DEVICE_CPU: return "CPU";
    case SNN_DEVICE_GPU: return "GPU";
    case SNN_DEVICE_ACCELERATOR: return "accelerator";
    default: return "other";
    }
}

int main(void) {
    printf("snncl %s (built against %s)\n", snn_version(), SNNCL_VERSION_STRING);

    int count;
    snn_status s = snn_device_count(&count);
    if (s != SNN_OK) {
        fprintf(stderr, "snn_device_count: %s: %s\n", snn_status_str(s), snn_last_error());
        return 1;
    }
    if (count == 0) {
        /* Not an error for snncl, but nothing below could run: no ICD is installed
         * (on Debian, pocl-opencl-icd gives an OpenCL device on the CPU). */
        fprintf(stderr, "no OpenCL device found\n");
        return 1;
    }

    for (int i = 0; i < count; i++) {
        snn_device_info info;
        s = snn_device_get_info(i, &info);
        if (s != SNN_OK) {
            fprintf(stderr, "snn_device_get_info(%d): %s: %s\n", i, snn_status_str(s), snn_last_error());
            return 1;
        }
        printf("%d: %s [%s] on %s\n", info.index, info.name, type_name(info.type), info.platform);
        printf("   vendor %s, driver %s\n", info.vendor, info.driver_version);
        printf("   %s, %s\n", info.device_version, info.c_version);
        printf("   %u compute units at %u MHz, %.0f MiB global memory (%.0f MiB per buffer), "
               "%.0f KiB local memory, work groups up to %zu\n",
               info.compute_units, info.max_clock_mhz, (double)info.global_mem_bytes / (1 << 20),
               (double)info.max_alloc_bytes / (1 << 20), (double)info.local_mem_bytes / 1024,
               info.max_work_group_size);
        printf("   fp64 %s, fp16 %s\n", info.has_fp64 ? "yes" : "no", info.has_fp16 ? "yes" : "no");
    }
    return 0;
}
