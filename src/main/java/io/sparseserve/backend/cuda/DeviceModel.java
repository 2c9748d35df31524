package io.sparseserve.backend.cuda;

import io.sparseserve.backend.SparseKernel;
import io.sparseserve.model.ModelWeights;
import io.sparseserve.model.ModelWeights.Linear;
import io.sparseserve.model.ModelWeights.Mlp;
import io.sparseserve.model.ModelWeights.Norm;
import io.sparseserve.model.ModelWeights.Positions;
import io.sparseserve.tensor.BitmaskMatrix;
import io.sparseserve.tensor.DType;
import io.sparseserve.tensor.DenseMatrix;
import io.sparseserve.tensor.NmMatrix;
import io.sparseserve.tensor.WeightMatrix;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * The model's weights on the device, uploaded once: dense matrices as stored, pruned ones still compressed and
 * re-laid for their kernels ({@link BitmaskTiles}, {@link Nm24Meta}), or as CSR for cuSPARSE, or expanded to dense,
 * as the sparse path says. Norm weights, biases and the rotary tables as float32. A matrix used twice (a tied head)
 * is uploaded once.
 */
public final class DeviceModel {
    /** One decoder layer's device weights. gate is null for a plain (fc1/fc2) MLP, whose fc1 is {@code up}. */
    public record Layer(DeviceNorm attnNorm, DeviceLinear q, DeviceLinear k, DeviceLinear v, DeviceLinear o,
                        DeviceNorm mlpNorm, DeviceLinear gate, DeviceLinear up, DeviceLinear down) {}

    /** A norm's float32 weight (and bias for LayerNorm; 0 for RMSNorm). */
    public record DeviceNorm(boolean rms, long weight, long bias, float eps) {}

    public record Embedding(DType dtype, long table, int rows) {}

    private final CudaContext ctx;
    private final List<DeviceBuffer> buffers = new ArrayList<>();
    private final Map<WeightMatrix, DeviceLinear> uploaded = new IdentityHashMap<>();
    /** The token embeddings, or null in a stage of a split that does not start the model. */
    public final Embedding embed;
    /** Learned position table (OPT) and its offset, or null for rotary models. */
    public final Embedding positionTable;
    public final int positionOffset;
    /** Rotary cos / sin tables [maxPositions][headDim/2], or 0. */
    public final long cos;
    public final long sin;
    /** Decoder layers [firstLayer, firstLayer + layers.size()) of the model. */
    public final List<Layer> layers = new ArrayList<>();
    public final int firstLayer;
    /** The final norm and the head, or null in a stage of a split that does not end the model. */
    public final DeviceNorm finalNorm;
    public final DeviceLinear head;
    private long linearBytes;
    private long linearDenseBytes;

    /** Uploads all of {@code w}; sparse matrices take {@code sparse}'s path (AUTO: OWN until timing at load chooses). */
    public DeviceModel(CudaContext ctx, ModelWeights w, SparseKernel sparse, SparseUploader uploader) {
        this(ctx, w, 0, w.layers().size(), SparsePaths.of(sparse), uploader);
    }

    /**
     * Uploads the part of {@code w} one stage of a layer split runs: decoder layers [first, end), the embeddings
     * (and learned positions) when {@code first} is 0, the final norm and the head when {@code end} is the last layer.
     * The rotary tables go to every stage (each applies rotary in its own layers). A tied head on a stage without the
     * embeddings is uploaded there again (plan counts it on both).
     */
    public DeviceModel(CudaContext ctx, ModelWeights w, int first, int end, SparsePaths sparse, SparseUploader uploader) {
        if (first < 0 || end > w.layers().size() || first >= end) {
            throw new IllegalArgumentException("layers [" + first + ", " + end + ") of " + w.layers().size());
        }
        this.ctx = ctx;
        this.firstLayer = first;
        boolean starts = first == 0, ends = end == w.layers().size();
        this.embed = starts ? embedding(w.embed(), "embed_tokens") : null;
        if (w.positions() instanceof Positions.Learned l) {
            positionTable = starts ? embedding(l.table(), "embed_positions") : null;
            positionOffset = l.offset();
            cos = sin = 0;
        } else {
            Positions.Rotary r = (Positions.Rotary) w.positions();
            positionTable = null;
            positionOffset = 0;
            cos = floats(r.cos(), "rotary cos");
            sin = floats(r.sin(), "rotary sin");
        }
        for (ModelWeights.Layer l : w.layers().subList(first, end)) {
            DeviceLinear gate = null, up, down;
            switch (l.mlp()) {
                case Mlp.Gated g -> {
                    gate = linear(g.gate(), sparse, uploader);
                    up = linear(g.up(), sparse, uploader);
                    down = linear(g.down(), sparse, uploader);
                }
                case Mlp.Plain p -> {
                    up = linear(p.fc1(), sparse, uploader);
                    down = linear(p.fc2(), sparse, uploader);
                }
            }
            layers.add(new Layer(norm(l.attnNorm()), linear(l.q(), sparse, uploader), linear(l.k(), sparse, uploader),
                    linear(l.v(), sparse, uploader), linear(l.o(), sparse, uploader), norm(l.mlpNorm()), gate, up, down));
        }
        if (!ends) {
            finalNorm = null;
            head = null;
            return;
        }
        finalNorm = norm(w.finalNorm());
        // The head stays dense (issue 8: embeddings and head stay dense); a tied head reuses the embedding's bytes.
        head = embed != null && w.lmHead() == w.embed() && w.embed() instanceof DenseMatrix
                ? new DeviceLinear.Dense(w.embed().rows(), w.embed().cols(), w.embed().dtype(), embed.table(), 0, 0)
                : matrix(w.lmHead(), 0, SparseKernel.DENSE, uploader, "lm_head");
    }

    /** Whether this stage starts the model (embeddings) and ends it (final norm, head). */
    public boolean starts() {
        return embed != null;
    }

    public boolean ends() {
        return head != null;
    }

    private Embedding embedding(WeightMatrix m, String what) {
        if (!(m instanceof DenseMatrix d)) throw new IllegalArgumentException(what + " must be dense, is " + m.format());
        DeviceLinear.Dense up = (DeviceLinear.Dense) matrix(d, 0, SparseKernel.DENSE, null, what);
        return new Embedding(d.dtype(), up.w(), d.rows());
    }

    private DeviceNorm norm(Norm n) {
        return switch (n) {
            case Norm.Rms r -> new DeviceNorm(true, floats(r.weight(), "norm"), 0, r.eps());
            case Norm.Layer l -> new DeviceNorm(false, floats(l.weight(), "norm"), floats(l.bias(), "norm bias"), l.eps());
        };
    }

    /**
     * A scratch holder for the load-time timing of the sparse paths: nothing uploaded but what {@link #layout} puts
     * here; {@link #close} frees it all.
     */
    DeviceModel(CudaContext ctx) {
        this.ctx = ctx;
        this.firstLayer = 0;
        this.embed = null;
        this.positionTable = null;
        this.positionOffset = 0;
        this.cos = this.sin = 0;
        this.finalNorm = null;
        this.head = null;
    }

    private DeviceLinear linear(Linear lin, SparsePaths sparse, SparseUploader uploader) {
        long bias = lin.bias() == null ? 0 : floats(lin.bias(), lin.name() + " bias");
        SparseKernel decode = sparse.kernel(lin.weight(), SparsePathChoice.Phase.DECODE);
        SparseKernel prefill = sparse.kernel(lin.weight(), SparsePathChoice.Phase.PREFILL);
        DeviceLinear d = matrix(lin.weight(), bias, decode, uploader, lin.name());
        if (prefill != decode && SparsePaths.shapeOf(lin.weight()) != null) {
            // auto chose apart for decode and prefill: both layouts stay (the choice weighed their bytes)
            d = new DeviceLinear.PerPhase(d, layout(lin.weight(), bias, prefill, uploader, lin.name() + " (prefill)"));
        }
        linearBytes += d.bytes();
        linearDenseBytes += lin.weight().denseBytes();
        return d;
    }

    /** Uploads one matrix in the layout its path reads, once (a tied head reuses the embedding). */
    private DeviceLinear matrix(WeightMatrix m, long bias, SparseKernel sparse, SparseUploader uploader, String what) {
        DeviceLinear done = uploaded.get(m);
        if (done != null) return done;
        DeviceLinear d = layout(m, bias, sparse, uploader, what);
        uploaded.put(m, d);
        return d;
    }

    /** Uploads {@code m} in {@code sparse}'s layout (a new copy every call). */
    DeviceLinear layout(WeightMatrix m, long bias, SparseKernel sparse, SparseUploader uploader, String what) {
        return switch (m) {
            case DenseMatrix dm -> new DeviceLinear.Dense(dm.rows(), dm.cols(), dm.dtype(), upload(dm.data(), what), bias, dm.bytes());
            case BitmaskMatrix b when sparse == SparseKernel.OWN || sparse == SparseKernel.AUTO -> {
                BitmaskTiles t = BitmaskTiles.of(b);
                yield new DeviceLinear.Bitmask(b.rows(), b.cols(), b.dtype(), upload(MemorySegment.ofArray(t.bits()), what + " bits"),
                        upload(t.values(), what + " values"), upload(t.rowStart(), what + " row starts"), bias, t.bytes());
            }
            case NmMatrix n when (sparse == SparseKernel.OWN || sparse == SparseKernel.AUTO) && n.n() == 2 && n.m() == 4 -> {
                Nm24Meta t = Nm24Meta.of(n);
                yield new DeviceLinear.Nm24(n.rows(), n.cols(), n.dtype(), upload(MemorySegment.ofArray(t.meta()), what + " meta"),
                        upload(t.values(), what + " values"), bias, t.bytes());
            }
            default -> uploader.upload(this, m, bias, sparse, what);
        };
    }

    /**
     * What this class does not lay out itself: CSR for cuSPARSE, and dense expansion (the {@code dense} path, and N:M
     * patterns other than 2:4), done by the runner, which owns the cuSPARSE handle and the expansion kernels.
     */
    public interface SparseUploader {
        DeviceLinear upload(DeviceModel model, WeightMatrix m, long bias, SparseKernel sparse, String what);
    }

    /** Copies host bytes to a new weights allocation; empty segments get a 256-byte placeholder (never read). */
    public long upload(MemorySegment src, String what) {
        DeviceBuffer b = ctx.memory().allocate(MemoryKind.WEIGHTS, Math.max(256, src.byteSize()), what);
        buffers.add(b);
        if (src.byteSize() > 0) ctx.upload(src, b, 0);
        return b.address();
    }

    public long floats(float[] v, String what) {
        return upload(MemorySegment.ofArray(v), what);
    }

    public long allocateWeights(long bytes, String what) {
        DeviceBuffer b = ctx.memory().allocate(MemoryKind.WEIGHTS, Math.max(256, bytes), what);
        buffers.add(b);
        return b.address();
    }

    /** Frees one weights allocation made here (a compressed copy once expanded). */
    public void free(long address) {
        for (int i = 0; i < buffers.size(); i++) {
            if (buffers.get(i).address() == address) {
                ctx.memory().free(buffers.remove(i));
                return;
            }
        }
        throw new IllegalArgumentException("no weights allocation at " + Long.toHexString(address));
    }

    /** Device bytes of the linear layers (issue 8 acceptance 6 compares them with their dense bytes). */
    public long linearBytes() {
        return linearBytes;
    }

    public long linearDenseBytes() {
        return linearDenseBytes;
    }

    public void close() {
        for (DeviceBuffer b : buffers) ctx.memory().free(b);
        buffers.clear();
    }
}
