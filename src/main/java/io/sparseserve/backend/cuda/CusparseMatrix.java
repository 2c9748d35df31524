package io.sparseserve.backend.cuda;

import static jcuda.jcusparse.JCusparse.*;

import io.sparseserve.tensor.DType;
import java.util.HashMap;
import java.util.Map;
import jcuda.Pointer;
import jcuda.jcusparse.cusparseConstDnMatDescr;
import jcuda.jcusparse.cusparseConstDnVecDescr;
import jcuda.jcusparse.cusparseConstSpMatDescr;
import jcuda.jcusparse.cusparseDnMatDescr;
import jcuda.jcusparse.cusparseDnVecDescr;
import jcuda.jcusparse.cusparseHandle;
import jcuda.jcusparse.cusparseIndexBase;
import jcuda.jcusparse.cusparseIndexType;
import jcuda.jcusparse.cusparseOperation;
import jcuda.jcusparse.cusparseOrder;
import jcuda.jcusparse.cusparseSpMMAlg;
import jcuda.jcusparse.cusparseSpMVAlg;

/**
 * One CSR matrix on the device with its cuSPARSE descriptors: y = A·x (SpMV) for one token, Y = A·X (SpMM) for
 * several, reading x in the matrix's dtype (cast from float32 by the caller, as for cuBLAS) and writing float32.
 * The input and output buffers of a linear layer are fixed for the runner's life, so the descriptors are made once
 * per token count and kept (JCusparse 12.6 can destroy only "const" dense descriptors, so output descriptors live
 * as long as the process; they are a few dozen bytes each).
 */
public final class CusparseMatrix {
    private final cusparseHandle handle;
    private final cusparseConstSpMatDescr a = new cusparseConstSpMatDescr();
    private final int rows;
    private final int cols;
    private final int valueType;
    private final long x;
    private final long y;
    private final Map<Integer, Object[]> byTokens = new HashMap<>();
    private final Pointer one = Pointer.to(new float[] {1f});
    private final Pointer zero = Pointer.to(new float[] {0f});

    /**
     * @param x device input, [tokens][cols] in dtype; @param y device output, [tokens][rows] float32
     */
    public CusparseMatrix(cusparseHandle handle, int rows, int cols, long nnz, DType dtype, long rowPtr, long colInd,
                          long values, long x, long y) {
        this.handle = handle;
        this.rows = rows;
        this.cols = cols;
        this.valueType = GemmArgs.cudaDataType(dtype);
        this.x = x;
        this.y = y;
        Cusparse.check("cusparseCreateConstCsr", cusparseCreateConstCsr(a, rows, cols, nnz, DevicePtr.of(rowPtr),
                DevicePtr.of(colInd), DevicePtr.of(values), cusparseIndexType.CUSPARSE_INDEX_32I,
                cusparseIndexType.CUSPARSE_INDEX_32I, cusparseIndexBase.CUSPARSE_INDEX_BASE_ZERO, valueType));
    }

    /** Scratch bytes the product of {@code tokens} rows needs (cusparseSpMV/SpMM_bufferSize). */
    public long workspaceBytes(int tokens) {
        long[] size = new long[1];
        Object[] d = descriptors(tokens);
        if (tokens == 1) {
            Cusparse.check("cusparseSpMV_bufferSize", cusparseSpMV_bufferSize(handle, cusparseOperation.CUSPARSE_OPERATION_NON_TRANSPOSE,
                    one, a, (cusparseConstDnVecDescr) d[0], zero, (cusparseDnVecDescr) d[1], GemmArgs.CUDA_R_32F,
                    cusparseSpMVAlg.CUSPARSE_SPMV_ALG_DEFAULT, size));
        } else {
            Cusparse.check("cusparseSpMM_bufferSize", cusparseSpMM_bufferSize(handle, cusparseOperation.CUSPARSE_OPERATION_NON_TRANSPOSE,
                    cusparseOperation.CUSPARSE_OPERATION_NON_TRANSPOSE, one, a, (cusparseConstDnMatDescr) d[0], zero,
                    (cusparseDnMatDescr) d[1], GemmArgs.CUDA_R_32F, cusparseSpMMAlg.CUSPARSE_SPMM_ALG_DEFAULT, size));
        }
        return size[0];
    }

    /** Enqueues y[0..tokens) = x[0..tokens) · Aᵀ on the handle's stream, with {@link #workspaceBytes} of scratch. */
    public void multiply(int tokens, long workspace) {
        Object[] d = descriptors(tokens);
        if (tokens == 1) {
            Cusparse.check("cusparseSpMV", cusparseSpMV(handle, cusparseOperation.CUSPARSE_OPERATION_NON_TRANSPOSE, one, a,
                    (cusparseConstDnVecDescr) d[0], zero, (cusparseDnVecDescr) d[1], GemmArgs.CUDA_R_32F,
                    cusparseSpMVAlg.CUSPARSE_SPMV_ALG_DEFAULT, DevicePtr.of(workspace)));
        } else {
            Cusparse.check("cusparseSpMM", cusparseSpMM(handle, cusparseOperation.CUSPARSE_OPERATION_NON_TRANSPOSE,
                    cusparseOperation.CUSPARSE_OPERATION_NON_TRANSPOSE, one, a, (cusparseConstDnMatDescr) d[0], zero,
                    (cusparseDnMatDescr) d[1], GemmArgs.CUDA_R_32F, cusparseSpMMAlg.CUSPARSE_SPMM_ALG_DEFAULT,
                    DevicePtr.of(workspace)));
        }
    }

    /**
     * The dense operands for {@code tokens} rows: X row-major [tokens][cols] is column-major cols × tokens with ld
     * cols; Y row-major [tokens][rows] is column-major rows × tokens with ld rows.
     */
    private Object[] descriptors(int tokens) {
        return byTokens.computeIfAbsent(tokens, t -> {
            if (t == 1) {
                cusparseConstDnVecDescr xv = new cusparseConstDnVecDescr();
                cusparseDnVecDescr yv = new cusparseDnVecDescr();
                Cusparse.check("cusparseCreateConstDnVec", cusparseCreateConstDnVec(xv, cols, DevicePtr.of(x), valueType));
                Cusparse.check("cusparseCreateDnVec", cusparseCreateDnVec(yv, rows, DevicePtr.of(y), GemmArgs.CUDA_R_32F));
                return new Object[] {xv, yv};
            }
            cusparseConstDnMatDescr xm = new cusparseConstDnMatDescr();
            cusparseDnMatDescr ym = new cusparseDnMatDescr();
            Cusparse.check("cusparseCreateConstDnMat", cusparseCreateConstDnMat(xm, cols, t, cols, DevicePtr.of(x), valueType,
                    cusparseOrder.CUSPARSE_ORDER_COL));
            Cusparse.check("cusparseCreateDnMat", cusparseCreateDnMat(ym, rows, t, rows, DevicePtr.of(y), GemmArgs.CUDA_R_32F,
                    cusparseOrder.CUSPARSE_ORDER_COL));
            return new Object[] {xm, ym};
        });
    }

    long inputAddress() {
        return x;
    }

    long outputAddress() {
        return y;
    }

    public void close() {
        for (Object[] d : byTokens.values()) {
            if (d[0] instanceof cusparseConstDnVecDescr v) cusparseDestroyDnVec(v);
            if (d[0] instanceof cusparseConstDnMatDescr m) cusparseDestroyDnMat(m);
        }
        byTokens.clear();
        cusparseDestroySpMat(a);
    }
}
