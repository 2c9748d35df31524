package io.sparseserve.backend;

import io.sparseserve.model.ModelConfig;
import java.util.Map;

/**
 * Runs whole forward steps of one model on one device: the backend boundary (ARCHITECTURE.md "GPUs"). A runner
 * owns everything a step touches: the weights (a GPU runner uploads them once, compressed ones stay compressed), the
 * activations and the KV-cache blocks. The engine owns the scheduling and the block tables (plain ints, in the
 * {@link Step}) and gets back only the logits of the rows it asked for, or for greedy rows only the chosen id. Made by
 * a {@link RunnerFactory} ({@link ModelRunners#factory}) for a model and a {@link RunnerConfig}.
 *
 * <p><b>Contract of {@link #forward}.</b> Every token of the step is computed exactly as if its sequence ran alone
 * (the CPU runner: bit for bit; a GPU runner: within 1e-3 relative, its summation order may depend on the batch).
 * Its keys and values are written to block {@code blockTable[position / blockSize()]} of its sequence before its
 * attention reads them; the earlier positions of the sequence are read from the blocks earlier steps wrote. Block
 * indices are in [0, {@link #kvBlocks()}); two sequences never share a block (the engine's allocator ensures it).
 *
 * <p><b>Threads.</b> One step at a time, from one thread (the engine's scheduler, or the caller of generate, eval,
 * bench). The memory and description methods may be called from any thread (gauges at scrape time).
 *
 * <p><b>What a GPU runner must provide</b> (the CUDA runner, behind {@code backend.cuda.CudaRunners}):
 * <ul>
 *   <li>KV sizing from free device memory: at creation, after uploading the weights and allocating its workspace
 *   and activations for {@link RunnerConfig#maxStepTokens()}, it sizes the KV blocks as {@link KvSizing#blocks}
 *   computes from the device's total memory, {@code --gpu-memory-utilization} and what it has allocated, in the
 *   {@link KvDtype} asked for (BF16 by default on a GPU); a {@link KvCapacity.Blocks} or {@link KvCapacity.Bytes}
 *   asks for an exact amount instead. When it does not fit it throws {@link DeviceUnavailableException} with
 *   {@link KvSizing}'s message ("needs X GiB, Y GiB free").</li>
 *   <li>Memory by kind ({@link #memory()}): weights, KV, workspace (cuBLAS/cuSPARSE workspaces, graphs, scratch) and
 *   activations, plus the device's total; the server exports them as {@code sparseserve.device.memory.used{kind}}
 *   and {@code .total}.</li>
 *   <li>{@link #close()}: frees every device allocation, the module, streams and graphs, and the context it created;
 *   idempotent. A sticky CUDA error (illegal address, ECC) thrown from {@link #forward} is a {@link DeviceFailure}:
 *   the server then reports NOT_SERVING and the process exits non-zero.</li>
 *   <li>The {@link Step.Output#LAST_ARGMAX} rows computed on the device, so a greedy step copies back one int per
 *   sequence.</li>
 * </ul>
 */
public interface ModelRunner extends AutoCloseable {

    /** The device it runs on, as the user names it ("cpu", "cuda:0"). */
    String device();

    ModelConfig config();

    /** The sizing it was made with (step limits, block size, KV capacity asked for). */
    RunnerConfig runnerConfig();

    /** Positions per KV block. */
    default int blockSize() {
        return runnerConfig().blockSize();
    }

    /** KV blocks it holds: block indices in a {@link Step} are in [0, kvBlocks()). */
    int kvBlocks();

    /** How it stores keys and values. */
    KvDtype kvDtype();

    /** Bytes of one KV block over all layers, keys and values. */
    default long kvBlockBytes() {
        return KvSizing.bytesPerBlock(config(), blockSize(), kvDtype());
    }

    /**
     * Runs one step. Writes {@code step.logitRows()} rows of {@code config().vocab()} logits into {@code logits} (row
     * {@code step.logitRow(s) + i} is token i of sequence s's returned tokens; see {@link Step#rows}) and, for every
     * sequence s whose output is {@link Step.Output#LAST_ARGMAX}, the chosen id into {@code argmax[s]}. {@code logits}
     * holds at least {@code logitRows() * vocab} floats; {@code argmax} at least {@code sequences()} ints (may be null
     * when no sequence asks for an argmax). Allocates nothing on the CPU once compiled.
     *
     * @throws IllegalArgumentException for a step larger than {@link RunnerConfig#maxStepTokens()} or
     *         {@link RunnerConfig#maxStepSequences()}
     */
    void forward(Step step, float[] logits, int[] argmax);

    /** Bytes it holds on its device, by kind; read at any time. */
    MemoryUse memory();

    /**
     * Facts for logs and {@code inspect --device}: e.g. the kernel chosen per matrix shape, the cuBLAS binding that
     * serves, the graph buckets. Insertion-ordered, JSON-printable values.
     */
    default Map<String, Object> describe() {
        return Map.of("device", device(), "kv_blocks", kvBlocks(), "kv_dtype", kvDtype().label());
    }

    /** Frees what it holds; idempotent. No step may run after it. */
    @Override
    void close();
}
