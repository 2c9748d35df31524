package io.sparseserve.backend.cuda;

import java.util.List;

/**
 * One linear layer's weight shape [rows (out features), cols (in features)] and how often it occurs per decoder
 * layer, for timing cuBLAS on a model's own shapes (issue 8: the GEMM rate prefill is compared with).
 */
public record LinearShape(String name, int rows, int cols, int perLayer) {

    /** Llama's linears: q, o [hidden, hidden]; k, v [kvDim, hidden]; gate, up [inter, hidden]; down [hidden, inter]; the head. */
    public static List<LinearShape> llama(int hidden, int kvDim, int intermediate, int vocab) {
        return List.of(new LinearShape("q_proj", hidden, hidden, 1), new LinearShape("k_proj", kvDim, hidden, 1),
                new LinearShape("v_proj", kvDim, hidden, 1), new LinearShape("o_proj", hidden, hidden, 1),
                new LinearShape("gate_proj", intermediate, hidden, 1), new LinearShape("up_proj", intermediate, hidden, 1),
                new LinearShape("down_proj", hidden, intermediate, 1), new LinearShape("lm_head", vocab, hidden, 0));
    }

    /** Multiply-adds x 2 for {@code tokens} rows of input. */
    public double flops(int tokens) {
        return 2.0 * rows * cols * tokens;
    }
}
