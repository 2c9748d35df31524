package io.sparseserve.backend;

import io.sparseserve.tensor.WeightMatrix;
import java.lang.foreign.MemorySegment;

/**
 * The compute operations of the CPU forward pass ({@link io.sparseserve.backend.cpu.Transformer}), one call per op on
 * host arrays: activations are float32 rows of {@code tokens x dim}; weights stay in their storage format. The
 * CPU runner and pruning use it. It is not the boundary a GPU implements: that is {@link ModelRunner}, a whole step
 * at a time, so that activations and KV blocks stay on the device.
 */
public interface Backend {

    String name();

    /** y[t, r] = sum_k x[t, k] W[r, k] + bias[r] for t in [0, tokens). */
    void matmul(WeightMatrix w, float[] x, int xOff, int tokens, float[] y, int yOff, float[] bias);

    /**
     * y_i = x W_i^T + bias_i for the first {@code count} matrices of {@code ws}, which read the same input x (a
     * layer's q, k and v; or gate and up), each y_i written at offset 0: one call, so that a backend can run them as
     * one pass. biases[i] may be null.
     */
    default void matmul(WeightMatrix[] ws, int count, float[] x, int tokens, float[][] ys, float[][] biases) {
        for (int i = 0; i < count; i++) matmul(ws[i], x, 0, tokens, ys[i], 0, biases[i]);
    }

    /**
     * {@link #matmul(WeightMatrix, float[], int, int, float[], int, float[])} where the token rows listed in
     * promptRows[0, promptCount) are prompt tokens ({@link Step}): a backend may compute those with other arithmetic
     * (the CPU's zero-skipping prompt kernel over sparse weights), the same for each such row whatever the others.
     */
    default void matmul(WeightMatrix w, float[] x, int xOff, int tokens, float[] y, int yOff, float[] bias,
                        int[] promptRows, int promptCount) {
        matmul(w, x, xOff, tokens, y, yOff, bias);
    }

    /** The pass of {@link #matmul(WeightMatrix[], int, float[], int, float[][], float[][])} with prompt rows. */
    default void matmul(WeightMatrix[] ws, int count, float[] x, int tokens, float[][] ys, float[][] biases,
                        int[] promptRows, int promptCount) {
        matmul(ws, count, x, tokens, ys, biases);
    }

    /** Bytes of the scratch buffers the backend holds now (grown on demand by the products it ran). */
    default long scratchBytes() {
        return 0;
    }

    void rmsNorm(float[] x, float[] out, int tokens, int dim, float[] weight, float eps);

    void layerNorm(float[] x, float[] out, int tokens, int dim, float[] weight, float[] bias, float eps);

    /** Rotate-half rotary embedding in place on {@code heads} heads of each token row of width stride. */
    void rope(float[] x, int tokens, int stride, int heads, int headDim, int[] positions, float[] cos, float[] sin);

    /**
     * Causal attention of the batch's queries over the paged KV cache of one layer, held in native memory: blocks laid
     * out [kvHeads][blockSize][headDim], elements of {@code dtype}.
     */
    void attention(AttentionLayout layout, float[] q, MemorySegment kCache, MemorySegment vCache, KvDtype dtype, float[] out);

    /** gate = silu(gate) * up. */
    void siluMul(float[] gate, float[] up, int n);

    void relu(float[] x, int n);

    /** x += y. */
    void add(float[] x, float[] y, int n);

    /**
     * Which sequence each token of a step belongs to, where it sits, and where its keys and values live. Mutable so
     * that the forward pass refills one instead of allocating one per layer and step.
     */
    final class AttentionLayout {
        private int tokens;
        private int[] positions;
        private int[] tokenSeq;
        private int[][] blockTables;
        private int blockSize;
        private int heads;
        private int kvHeads;
        private int headDim;

        public AttentionLayout() {}

        public AttentionLayout(int tokens, int[] positions, int[] tokenSeq, int[][] blockTables, int blockSize, int heads,
                               int kvHeads, int headDim) {
            set(tokens, positions, tokenSeq, blockTables, blockSize, heads, kvHeads, headDim);
        }

        public AttentionLayout set(int tokens, int[] positions, int[] tokenSeq, int[][] blockTables, int blockSize,
                                   int heads, int kvHeads, int headDim) {
            this.tokens = tokens;
            this.positions = positions;
            this.tokenSeq = tokenSeq;
            this.blockTables = blockTables;
            this.blockSize = blockSize;
            this.heads = heads;
            this.kvHeads = kvHeads;
            this.headDim = headDim;
            return this;
        }

        public int tokens() {
            return tokens;
        }

        public int[] positions() {
            return positions;
        }

        public int[] tokenSeq() {
            return tokenSeq;
        }

        public int[][] blockTables() {
            return blockTables;
        }

        public int blockSize() {
            return blockSize;
        }

        public int heads() {
            return heads;
        }

        public int kvHeads() {
            return kvHeads;
        }

        public int headDim() {
            return headDim;
        }
    }
}
