// Why is hyb's f32 `x · Wᵀ` slow through cuBLASLt? The same GEMM issued the way
// runtime/src/cuda/gemm.rs issues it — row-major operands mapped onto cuBLASLt's
// column-major `cᵀ = bᵀ · aᵀ`, CUBLAS_COMPUTE_32F, a 32 MiB workspace, the pointers'
// alignment stated — timed for every algorithm cuBLASLt's heuristic offers (its
// configuration printed: algorithm id, tile, stages, split-K, reduction scheme), then
// cuBLAS's cublasSgemm (what PyTorch's f32 matmul calls) on the same operands.
// A shape is `MxKxN ab` as `hybc train --profile` labels it (a, b: `n` row-major,
// `t` transposed); the defaults are the profile's two slow plans and a fast one.
//   nvcc -O2 -o /tmp/gemm_lt bench/gpu/gemm_lt.cu -lcublasLt -lcublas && /tmp/gemm_lt
//   /tmp/gemm_lt 16384x128x128nt 512x16384x128tn
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#define CHECK_CUDA(x)                                                               \
  do {                                                                              \
    cudaError_t error_ = (x);                                                          \
    if (error_ != cudaSuccess) {                                                       \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(error_));\
      std::exit(1);                                                                 \
    }                                                                               \
  } while (0)
#define CHECK_BLAS(x)                                                               \
  do {                                                                              \
    cublasStatus_t status_ = (x);                                                       \
    if (status_ != CUBLAS_STATUS_SUCCESS) {                                             \
      std::fprintf(stderr, "%s:%d %s: status %d\n", __FILE__, __LINE__, #x, (int)status_);\
      std::exit(1);                                                                 \
    }                                                                               \
  } while (0)

static const size_t kWorkspace = 32u << 20;

struct Shape {
  int m, k, n;
  bool a_t, b_t;  // a [m, k], b [k, n] stored transposed
  std::string label;
};

static Shape parse(const char* text) {
  Shape s{};
  char a = 'n', b = 'n';
  if (std::sscanf(text, "%dx%dx%d%c%c", &s.m, &s.k, &s.n, &a, &b) != 5) {
    std::fprintf(stderr, "a shape is MxKxNab, e.g. 16384x128x128nt: %s\n", text);
    std::exit(2);
  }
  s.a_t = a == 't';
  s.b_t = b == 't';
  s.label = text;
  return s;
}

// How cuBLASLt reads a row-major `rows × cols` operand (gemm.rs's `operand`): as stored
// when not transposed (`cols × rows`, leading dim cols), else as the transpose of a
// stored `cols × rows` row-major matrix (`rows × cols`, leading dim rows).
struct Operand {
  bool transposed;
  uint64_t rows, cols;
  int64_t ld;
};

static Operand operand(bool transposed, int rows, int cols) {
  if (!transposed) return {false, (uint64_t)cols, (uint64_t)rows, cols};
  return {true, (uint64_t)rows, (uint64_t)cols, rows};
}

// GPU time a call over `calls` calls (CUDA events), and the time of a call followed by
// a synchronise, as `--profile` times hyb's (host side included).
template <typename F>
static void timed(F call, cudaStream_t stream, double* gpu_us, double* synced_us) {
  const int calls = 100;
  for (int i = 0; i < 5; ++i) call();
  CHECK_CUDA(cudaStreamSynchronize(stream));
  cudaEvent_t start, end;
  CHECK_CUDA(cudaEventCreate(&start));
  CHECK_CUDA(cudaEventCreate(&end));
  CHECK_CUDA(cudaEventRecord(start, stream));
  for (int i = 0; i < calls; ++i) call();
  CHECK_CUDA(cudaEventRecord(end, stream));
  CHECK_CUDA(cudaEventSynchronize(end));
  float ms = 0;
  CHECK_CUDA(cudaEventElapsedTime(&ms, start, end));
  *gpu_us = ms * 1e3 / calls;
  auto host = std::chrono::steady_clock::now();
  for (int i = 0; i < calls; ++i) {
    call();
    CHECK_CUDA(cudaStreamSynchronize(stream));
  }
  *synced_us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - host).count() / calls;
  CHECK_CUDA(cudaEventDestroy(start));
  CHECK_CUDA(cudaEventDestroy(end));
}

static std::string config(const cublasLtMatmulAlgo_t& algo) {
  auto get = [&](cublasLtMatmulAlgoConfigAttributes_t attribute) {
    int32_t value = 0;  // each attribute read here is 4 bytes (the call checks the size)
    size_t written = 0;
    if (cublasLtMatmulAlgoConfigGetAttribute(&algo, attribute, &value, sizeof(value), &written) !=
        CUBLAS_STATUS_SUCCESS)
      return std::string("?");
    return std::to_string(value);
  };
  return "id " + get(CUBLASLT_ALGO_CONFIG_ID) + " tile " + get(CUBLASLT_ALGO_CONFIG_TILE_ID) + " stages " +
         get(CUBLASLT_ALGO_CONFIG_STAGES_ID) + " splitK " + get(CUBLASLT_ALGO_CONFIG_SPLITK_NUM) + " reduction " +
         get(CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME) + " swizzle " + get(CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING) +
         " custom " + get(CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION);
}

static void run(const Shape& s, cublasLtHandle_t lt, cublasHandle_t blas, cudaStream_t stream, void* workspace) {
  float *a, *b, *c;
  CHECK_CUDA(cudaMalloc(&a, sizeof(float) * s.m * s.k));
  CHECK_CUDA(cudaMalloc(&b, sizeof(float) * s.k * s.n));
  CHECK_CUDA(cudaMalloc(&c, sizeof(float) * s.m * s.n));
  CHECK_CUDA(cudaMemset(a, 0, sizeof(float) * s.m * s.k));
  CHECK_CUDA(cudaMemset(b, 0, sizeof(float) * s.k * s.n));
  Operand ob = operand(s.b_t, s.k, s.n), oa = operand(s.a_t, s.m, s.k);
  double flops = 2.0 * s.m * s.k * s.n;
  std::printf("== %s: cuBLASLt A = b (%s), B = a (%s), M %d N %d K %d\n", s.label.c_str(), ob.transposed ? "T" : "N",
              oa.transposed ? "T" : "N", s.n, s.m, s.k);

  cublasLtMatmulDesc_t desc;
  CHECK_BLAS(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  int32_t ta = ob.transposed, tb = oa.transposed;
  CHECK_BLAS(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  CHECK_BLAS(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  cublasLtMatrixLayout_t la, lb, lc;
  CHECK_BLAS(cublasLtMatrixLayoutCreate(&la, CUDA_R_32F, ob.rows, ob.cols, ob.ld));
  CHECK_BLAS(cublasLtMatrixLayoutCreate(&lb, CUDA_R_32F, oa.rows, oa.cols, oa.ld));
  CHECK_BLAS(cublasLtMatrixLayoutCreate(&lc, CUDA_R_32F, s.n, s.m, s.n));
  float alpha = 1.0f, beta = 0.0f;

  for (uint64_t space : {(uint64_t)kWorkspace, (uint64_t)0}) {
    cublasLtMatmulPreference_t preference;
    CHECK_BLAS(cublasLtMatmulPreferenceCreate(&preference));
    CHECK_BLAS(cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &space,
                                                    sizeof(space)));
    uint32_t align = 256;  // cudaMalloc's pointers; hyb states its pointers' alignment the same way
    for (auto attribute : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                           CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
      CHECK_BLAS(cublasLtMatmulPreferenceSetAttribute(preference, attribute, &align, sizeof(align)));
    std::vector<cublasLtMatmulHeuristicResult_t> results(16);
    int found = 0;
    CHECK_BLAS(cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, lc, lc, preference, (int)results.size(),
                                              results.data(), &found));
    std::printf("  workspace %llu B: %d candidates (hyb takes the first)\n", (unsigned long long)space, found);
    for (int i = 0; i < found; ++i) {
      const cublasLtMatmulHeuristicResult_t& r = results[i];
      double gpu_us = 0, synced_us = 0;
      timed(
          [&] {
            CHECK_BLAS(cublasLtMatmul(lt, desc, &alpha, b, la, a, lb, &beta, c, lc, c, lc, &r.algo, workspace,
                                      space, stream));
          },
          stream, &gpu_us, &synced_us);
      std::printf("  %2d  %8.1f us GPU  %8.1f us synced  %6.2f TFLOP/s  waves %.2f  workspace %zu  %s\n", i, gpu_us,
                  synced_us, flops / gpu_us / 1e6, r.wavesCount, r.workspaceSize, config(r.algo).c_str());
    }
    CHECK_BLAS(cublasLtMatmulPreferenceDestroy(preference));
  }

  double gpu_us = 0, synced_us = 0;
  cublasOperation_t opa = ob.transposed ? CUBLAS_OP_T : CUBLAS_OP_N, opb = oa.transposed ? CUBLAS_OP_T : CUBLAS_OP_N;
  timed(
      [&] {
        CHECK_BLAS(cublasSgemm(blas, opa, opb, s.n, s.m, s.k, &alpha, b, (int)ob.ld, a, (int)oa.ld, &beta, c, s.n));
      },
      stream, &gpu_us, &synced_us);
  std::printf("  cublasSgemm %8.1f us GPU  %8.1f us synced  %6.2f TFLOP/s\n", gpu_us, synced_us,
              flops / gpu_us / 1e6);

  CHECK_BLAS(cublasLtMatrixLayoutDestroy(la));
  CHECK_BLAS(cublasLtMatrixLayoutDestroy(lb));
  CHECK_BLAS(cublasLtMatrixLayoutDestroy(lc));
  CHECK_BLAS(cublasLtMatmulDescDestroy(desc));
  CHECK_CUDA(cudaFree(a));
  CHECK_CUDA(cudaFree(b));
  CHECK_CUDA(cudaFree(c));
}

int main(int argc, char** argv) {
  std::vector<Shape> shapes;
  for (int i = 1; i < argc; ++i) shapes.push_back(parse(argv[i]));
  if (shapes.empty())
    for (const char* text : {"16384x128x128nt", "512x16384x128tn", "16384x128x128nn", "16384x128x512nt"})
      shapes.push_back(parse(text));
  cudaStream_t stream;
  CHECK_CUDA(cudaStreamCreate(&stream));
  cublasLtHandle_t lt;
  CHECK_BLAS(cublasLtCreate(&lt));
  cublasHandle_t blas;
  CHECK_BLAS(cublasCreate(&blas));
  CHECK_BLAS(cublasSetStream(blas, stream));
  CHECK_BLAS(cublasSetMathMode(blas, CUBLAS_DEFAULT_MATH));  // no TF32, as PyTorch with TF32 off
  void* workspace;
  CHECK_CUDA(cudaMalloc(&workspace, kWorkspace));
  for (const Shape& s : shapes) run(s, lt, blas, stream, workspace);
  CHECK_CUDA(cudaFree(workspace));
  CHECK_BLAS(cublasDestroy(blas));
  CHECK_BLAS(cublasLtDestroy(lt));
  CHECK_CUDA(cudaStreamDestroy(stream));
  return 0;
}
