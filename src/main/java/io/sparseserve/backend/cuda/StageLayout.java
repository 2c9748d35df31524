package io.sparseserve.backend.cuda;

import io.sparseserve.backend.Device;
import io.sparseserve.backend.DeviceOptions;
import io.sparseserve.backend.KvDtype;
import io.sparseserve.backend.LayerSplit;
import io.sparseserve.model.InvalidInputException;
import io.sparseserve.model.Model;
import io.sparseserve.plan.MemoryPlan;
import io.sparseserve.plan.MemoryPlanner;
import io.sparseserve.plan.ModelShape;
import io.sparseserve.plan.WeightFormat;
import io.sparseserve.tensor.DType;
import java.nio.file.Path;

/**
 * Which layers each stage of a CUDA runner holds: {@code --layer-split} checked against the devices and the model, or
 * else the split {@code plan --gpus N} prints for the model (N = the devices listed, the KV dtype and the served
 * context as the runner uses them): both come from {@link MemoryPlanner#split}, so the server and the plan agree.
 * Pure: tested without a GPU.
 */
public final class StageLayout {
    private StageLayout() {}

    /**
     * Nominal card size for the default split: the ranges {@link MemoryPlanner#split} chooses do not depend on it (it
     * balances the shares, whatever the card), only the free bytes it reports do, which the runner measures instead.
     */
    private static final long NOMINAL_GPU_BYTES = 80L << 30;

    /** The split of {@code model} over {@code device}'s stages; throws {@link InvalidInputException} for a bad one. */
    public static LayerSplit resolve(Device device, DeviceOptions options, Model model) {
        int layers = model.config().layers();
        int stages = device.ordinals().length;
        if (options.layerSplit() != null) return options.layerSplit().check(device, layers);
        if (stages > layers) {
            throw new InvalidInputException("--device " + device + ": " + stages + " stages, but the model has " + layers
                    + " layers (each stage holds at least one)");
        }
        if (stages == 1) return new LayerSplit(new int[] {layers});
        DType weights = model.weights().embed().dtype();
        return defaultSplit(model.dir(), weights, options.kvDtypeFor(device), model.config().maxPositions(), stages);
    }

    /**
     * {@code plan --model DIR --gpus STAGES --kv-dtype KV --context CONTEXT}'s split of the model in its stored format
     * (dense, or the sparse format its config names); {@code weights} is the dtype when config.json has no torch_dtype.
     */
    public static LayerSplit defaultSplit(Path modelDir, DType weights, KvDtype kv, int context, int stages) {
        ModelShape shape = ModelShape.read(modelDir);
        DType dtype = shape.dtype() != null ? shape.dtype() : weights;
        WeightFormat format = shape.sparsity() != null ? shape.sparsity() : new WeightFormat.Dense();
        MemoryPlanner planner = new MemoryPlanner(shape, dtype, DType.parse(kv.label()), NOMINAL_GPU_BYTES,
                DeviceOptions.DEFAULT_GPU_MEMORY_UTILIZATION, MemoryPlanner.DEFAULT_OVERHEAD_BYTES, context, 1,
                io.sparseserve.backend.RunnerConfig.DEFAULT_BLOCK_SIZE);
        MemoryPlan plan = planner.split(format, stages);
        int[][] ranges = new int[plan.stages().size()][];
        for (int i = 0; i < ranges.length; i++) ranges[i] = new int[] {plan.stages().get(i).firstLayer(), plan.stages().get(i).endLayer()};
        return LayerSplit.ofRanges(ranges);
    }

    /** The devices of each stage, for logs and inspect: "cuda:0 layers 0-3, cuda:0 layers 4-7". */
    public static String describe(Device device, LayerSplit split) {
        StringBuilder b = new StringBuilder();
        int[] ordinals = device.ordinals();
        for (int i = 0; i < split.stages(); i++) {
            b.append(i == 0 ? "" : ", ").append("cuda:").append(ordinals[i]).append(" layers ").append(split.start(i)).append('-')
                    .append(split.end(i) - 1);
        }
        return b.toString();
    }
}
