package io.sparseserve.model;

import io.sparseserve.tensor.DType;
import io.sparseserve.tensor.Decode;
import io.sparseserve.tensor.DenseMatrix;
import io.sparseserve.tensor.WeightMatrix;
import java.util.Arrays;

/**
 * Reads the tensors a family asks for from a model folder, checking each against the shape config.json implies,
 * so a wrong file fails at load with the tensor's name instead of producing garbage later.
 */
final class TensorSource {
    private final ModelFiles files;
    private final String configNote;

    TensorSource(ModelFiles files, ModelConfig config) {
        this.files = files;
        this.configNote = "config.json: hidden_size=" + config.hidden() + ", intermediate=" + config.intermediate()
                + ", heads=" + config.heads() + ", kv_heads=" + config.kvHeads() + ", head_dim=" + config.headDim()
                + ", vocab_size=" + config.vocab();
    }

    boolean has(String name) {
        return files.contains(name);
    }

    /**
     * A [rows, cols] weight matrix named {@code name}, kept in its stored format and dtype: the dense tensor itself, or,
     * when the folder holds the module's weight compressed (see {@link CompressedWeights}), its compressed parts.
     */
    WeightMatrix matrix(String name, int rows, int cols) {
        if (!files.contains(name)) {
            WeightMatrix compressed = CompressedWeights.read(files, name, rows, cols, configNote);
            if (compressed != null) return compressed;
        }
        TensorInfo t = files.tensor(name);
        checkShape(t, new long[] {rows, cols});
        return new DenseMatrix(t.data(), t.dtype(), rows, cols);
    }

    /** A vector of {@code len} values, widened to float (norm weights and biases are tiny). */
    float[] vector(String name, int len) {
        TensorInfo t = files.tensor(name);
        checkShape(t, new long[] {len});
        float[] v = new float[len];
        Decode.toFloat(t.dtype(), t.data(), 0, v, 0, len);
        return v;
    }

    float[] optionalVector(String name, int len, boolean expected) {
        return expected || has(name) ? vector(name, len) : null;
    }

    private void checkShape(TensorInfo t, long[] expected) {
        if (!t.dtype().isWeightType()) {
            throw new ModelFormatException(t.file(), "tensor '" + t.name() + "' has dtype " + t.dtype()
                    + "; weights must be F32, F16 or BF16");
        }
        if (!Arrays.equals(t.shape(), expected)) {
            throw new ModelFormatException(t.file(), "tensor '" + t.name() + "' has shape " + t.shapeString()
                    + " but " + configNote + " imply " + Arrays.toString(expected));
        }
    }
}
