package io.sparseserve.backend.cuda;

import io.sparseserve.tensor.DType;

/**
 * A linear layer's weight as the device holds it, in the layout its kernels read (native/KERNELS.md), plus its bias
 * (float32; 0 when it has none). Addresses are device addresses.
 */
public sealed interface DeviceLinear {
    int rows();

    int cols();

    DType dtype();

    /** Device address of the float32 bias, or 0. */
    long bias();

    /** Bytes the weight holds on the device (bias excluded). */
    long bytes();

    /** Dense [rows][cols] in dtype: {@code gemv_*} for up to 16 token rows, cuBLAS above. */
    record Dense(int rows, int cols, DType dtype, long w, long bias, long bytes) implements DeviceLinear {}

    /** Tiled bitmask ({@link BitmaskTiles}): {@code spmv_bitmask_*}; prefill expands it to dense scratch for cuBLAS. */
    record Bitmask(int rows, int cols, DType dtype, long bits, long values, long rowStart, long bias, long bytes)
            implements DeviceLinear {}

    /** 2:4 ({@link Nm24Meta}): {@code spmv_nm24_*}; prefill expands it to dense scratch for cuBLAS. */
    record Nm24(int rows, int cols, DType dtype, long meta, long values, long bias, long bytes) implements DeviceLinear {}

    /** CSR for cuSPARSE ({@link CsrLayout}). */
    record Csr(int rows, int cols, DType dtype, CusparseMatrix matrix, long bias, long bytes) implements DeviceLinear {}

    /**
     * One weight in two layouts, when {@code --sparse-kernel auto} timed different paths fastest for decode (up to 16
     * token rows) and prefill (more): both stay on the device. Bias shared.
     */
    record PerPhase(DeviceLinear decode, DeviceLinear prefill) implements DeviceLinear {
        public PerPhase {
            if (decode.rows() != prefill.rows() || decode.cols() != prefill.cols()) throw new IllegalArgumentException("shapes differ");
        }

        public int rows() {
            return decode.rows();
        }

        public int cols() {
            return decode.cols();
        }

        public DType dtype() {
            return decode.dtype();
        }

        public long bias() {
            return decode.bias();
        }

        public long bytes() {
            return decode.bytes() + prefill.bytes();
        }
    }
}
