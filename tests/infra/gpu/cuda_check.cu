// gymlab GPU check: host code always runs; with --device it also runs a kernel and checks it.
#include <cstdio>
#include <cstring>
#include <cuda_runtime.h>

__global__ void square(int *x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] = x[i] * x[i];
}

int main(int argc, char **argv) {
    const int n = 1000;
    static int host[n];
    long want = 0;
    for (int i = 0; i < n; ++i) { host[i] = i; want += (long)i * i; }
    printf("host-sum %ld\n", want);
    int devices = 0;
    cudaError_t err = cudaGetDeviceCount(&devices);
    printf("devices %d (%s)\n", err == cudaSuccess ? devices : 0, cudaGetErrorString(err));
    if (argc < 2 || strcmp(argv[1], "--device") != 0) return 0;
    int *dev = nullptr;
    if (cudaMalloc(&dev, sizeof host) != cudaSuccess) { puts("cudaMalloc failed"); return 2; }
    cudaMemcpy(dev, host, sizeof host, cudaMemcpyHostToDevice);
    square<<<(n + 255) / 256, 256>>>(dev, n);
    err = cudaDeviceSynchronize();
    if (err != cudaSuccess) { printf("kernel: %s\n", cudaGetErrorString(err)); return 3; }
    cudaMemcpy(host, dev, sizeof host, cudaMemcpyDeviceToHost);
    cudaFree(dev);
    long got = 0;
    for (int i = 0; i < n; ++i) got += host[i];
    printf("device-sum %ld\n", got);
    return got == want ? 0 : 4;
}
