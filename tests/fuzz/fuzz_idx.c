/*
 * libFuzzer target: the IDX image and label reader (plain or gzip). The
 * input is [1 byte: limit][2 bytes little-endian: n][n bytes: the images
 * file][the rest: the labels file], so one input exercises both files, a
 * partial read (limit > 0) and a whole one (limit 0).
 */
#include "fuzz_util.h"
#include "nde/data.h"
#include "nde/status.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nde_ctx *ctx;
    nde_dataset *d = NULL;
    fuzz_file images, labels;
    size_t limit, n;

    if (size < 3)
        return 0;
    limit = data[0];
    n = (size_t)data[1] | (size_t)data[2] << 8;
    data += 3;
    size -= 3;
    if (n > size)
        n = size;
    if (!(ctx = nde_ctx_create()))
        abort();
    fuzz_file_open(&images, "images.idx", data, n);
    fuzz_file_open(&labels, "labels.idx", data + n, size - n);
    if (nde_data_read_idx(images.path, labels.path, limit, &d, ctx) == NDE_OK)
        nde_dataset_destroy(d);
    fuzz_file_close(&images);
    fuzz_file_close(&labels);
    nde_ctx_destroy(ctx);
    return 0;
}
