// gymlab cuDNN check: the header the compiler finds and the library the linker/ld.so find agree.
#include <cstdio>
#include <cudnn.h>

int main() {
    size_t lib = cudnnGetVersion();
    printf("header %d.%d.%d library %zu\n", CUDNN_MAJOR, CUDNN_MINOR, CUDNN_PATCHLEVEL, lib);
    return lib == CUDNN_VERSION ? 0 : 1;
}
