package io.sparseserve.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sparseserve.backend.ModelRunner;
import io.sparseserve.backend.ModelRunners;
import io.sparseserve.backend.RunnerConfig;
import io.sparseserve.backend.Step;
import io.sparseserve.model.Model;
import io.sparseserve.model.SafetensorsWriter;
import io.sparseserve.tensor.DType;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A Llama whose attention is narrower than its residual stream (heads · head_dim < hidden, as Gemma-style configs
 * allow with an explicit head_dim) computes logits for every token of a full step: the head's scratch rows are
 * hidden wide, not q wide.
 */
class NarrowAttentionHeadTest {
    static final int HIDDEN = 32, HEADS = 2, HEAD_DIM = 8, INTER = 48, VOCAB = 50, CONTEXT = 64;

    @Test
    void allLogitsOfAFullStepFitWhenQIsNarrowerThanHidden(@TempDir Path dir) throws Exception {
        writeModel(dir);
        try (Model model = Model.load(dir)) {
            assertEquals(HEADS * HEAD_DIM, model.config().qDim());
            int tokens = 24;
            try (ModelRunner runner = ModelRunners.cpu().open(model, RunnerConfig.forSequence(tokens, tokens))) {
                BlockTable table = new BlockTable(new KvBlockAllocator(runner.kvBlocks()), runner.blockSize());
                assertTrue(table.ensure(tokens));
                int[] ids = new int[tokens];
                for (int i = 0; i < tokens; i++) ids[i] = (i * 7) % VOCAB;
                Step step = new Step(tokens, 1);
                step.add(ids, 0, tokens, 0, table.blocks(), table.blockCount(), Step.Output.ALL_LOGITS);
                float[] logits = new float[tokens * VOCAB];
                runner.forward(step, logits, null);
                for (float v : logits) assertTrue(Float.isFinite(v));
                table.release();
            }
        }
    }

    static void writeModel(Path dir) throws Exception {
        SplittableRandom rnd = new SplittableRandom(1);
        try (Arena arena = Arena.ofConfined()) {
            SafetensorsWriter w = new SafetensorsWriter().metadata("format", "pt");
            int q = HEADS * HEAD_DIM;
            add(w, arena, rnd, "model.embed_tokens.weight", VOCAB, HIDDEN);
            String p = "model.layers.0.";
            ones(w, arena, p + "input_layernorm.weight", HIDDEN);
            add(w, arena, rnd, p + "self_attn.q_proj.weight", q, HIDDEN);
            add(w, arena, rnd, p + "self_attn.k_proj.weight", q, HIDDEN);
            add(w, arena, rnd, p + "self_attn.v_proj.weight", q, HIDDEN);
            add(w, arena, rnd, p + "self_attn.o_proj.weight", HIDDEN, q);
            ones(w, arena, p + "post_attention_layernorm.weight", HIDDEN);
            add(w, arena, rnd, p + "mlp.gate_proj.weight", INTER, HIDDEN);
            add(w, arena, rnd, p + "mlp.up_proj.weight", INTER, HIDDEN);
            add(w, arena, rnd, p + "mlp.down_proj.weight", HIDDEN, INTER);
            ones(w, arena, "model.norm.weight", HIDDEN);
            add(w, arena, rnd, "lm_head.weight", VOCAB, HIDDEN);
            w.write(dir.resolve("model.safetensors"));
        }
        Files.writeString(dir.resolve("config.json"), """
                {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": %d, "intermediate_size": %d,
                 "num_attention_heads": %d, "num_key_value_heads": %d, "head_dim": %d, "num_hidden_layers": 1,
                 "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": false,
                 "max_position_embeddings": %d, "vocab_size": %d, "bos_token_id": 0, "eos_token_id": 0,
                 "torch_dtype": "float32"}
                """.formatted(HIDDEN, INTER, HEADS, HEADS, HEAD_DIM, CONTEXT, VOCAB));
    }

    private static void add(SafetensorsWriter w, Arena arena, SplittableRandom rnd, String name, int rows, int cols) {
        float[] v = new float[rows * cols];
        for (int i = 0; i < v.length; i++) v[i] = (float) (rnd.nextGaussian() * 0.1);
        put(w, arena, name, v, new long[] {rows, cols});
    }

    private static void ones(SafetensorsWriter w, Arena arena, String name, int n) {
        float[] v = new float[n];
        java.util.Arrays.fill(v, 1f);
        put(w, arena, name, v, new long[] {n});
    }

    private static void put(SafetensorsWriter w, Arena arena, String name, float[] v, long[] shape) {
        MemorySegment seg = arena.allocate((long) v.length * 4, 8);
        MemorySegment.copy(v, 0, seg, ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0, v.length);
        w.add(name, DType.F32, shape, seg);
    }
}
