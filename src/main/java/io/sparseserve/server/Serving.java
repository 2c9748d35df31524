package io.sparseserve.server;

import io.sparseserve.api.v1.ModelInfo;
import io.sparseserve.engine.Engine;
import io.sparseserve.metrics.ServingMetrics;
import io.sparseserve.model.ChatTemplate;
import io.sparseserve.model.Model;
import io.sparseserve.model.ModelWeights;
import io.sparseserve.tensor.WeightMatrix;

/** What every endpoint shares: the engine, the metrics, the request mapping, the model's description, the state. */
final class Serving {
    private final Engine engine;
    private final ServingMetrics metrics;
    private final ProtoRequests requests;
    private final ModelInfo modelInfo;
    private final AccessLog accessLog = new AccessLog();
    private final TokenizerPool tokenizers;
    private final ServerLimits limits;
    private final ClientIdentity clients;
    private volatile boolean draining;
    private volatile String failure;

    Serving(Engine engine, ServingMetrics metrics, String modelId, String device, ServerLimits limits) {
        this.engine = engine;
        this.limits = limits;
        this.clients = new ClientIdentity(limits.clientHeader());
        this.tokenizers = new TokenizerPool(limits.tokenizerThreads(), limits.tokenizerQueue());
        this.metrics = metrics;
        this.requests = new ProtoRequests(engine.tokenizer(), engine.modelConfig().maxPositions(),
                ChatTemplate.load(engine.model().dir()));
        this.modelInfo = describe(engine, modelId, device);
    }

    Engine engine() {
        return engine;
    }

    ServingMetrics metrics() {
        return metrics;
    }

    ProtoRequests requests() {
        return requests;
    }

    TokenizerPool tokenizers() {
        return tokenizers;
    }

    ServerLimits limits() {
        return limits;
    }

    /** Who a request's client is (the engine shares its slots between clients). */
    ClientIdentity clients() {
        return clients;
    }

    AccessLog accessLog() {
        return accessLog;
    }

    ModelInfo modelInfo() {
        return modelInfo;
    }

    String modelId() {
        return modelInfo.getModelId();
    }

    boolean draining() {
        return draining;
    }

    void startDraining() {
        draining = true;
    }

    /** The device failed (a sticky error): refuse everything from now on, as when draining, and say why. */
    void deviceFailed(String why) {
        failure = why;
        draining = true;
    }

    /** Why the device failed, or null while it works. */
    String failure() {
        return failure;
    }

    /** Parameters and sparsity counted once at start (sparsity of a dense matrix costs a scan). */
    private static ModelInfo describe(Engine engine, String modelId, String device) {
        Model model = engine.model();
        long parameters = 0;
        long linearElements = 0;
        long linearZeros = 0;
        String dtype = "";
        for (Model.NamedMatrix m : model.matrices()) {
            WeightMatrix w = m.matrix();
            long elements = (long) w.rows() * w.cols();
            parameters += elements;
            if (m.linear()) {
                linearElements += elements;
                linearZeros += w.zeros();
                if (dtype.isEmpty()) dtype = w.dtype().name().toLowerCase(java.util.Locale.ROOT);
            }
        }
        for (ModelWeights.Layer layer : model.weights().layers()) {
            for (ModelWeights.Linear lin : layer.linears()) if (lin.bias() != null) parameters += lin.bias().length;
        }
        Engine.Config c = engine.config();
        return ModelInfo.newBuilder()
                .setModelId(modelId)
                .setFamily(model.config().family().name().toLowerCase(java.util.Locale.ROOT))
                .setParameters(parameters)
                .setDtype(dtype)
                .setSparsity(linearElements == 0 ? 0 : (double) linearZeros / linearElements)
                .setWeightBytes(model.weightBytes())
                .setDenseEquivalentBytes(model.denseEquivalentBytes())
                .setContextLength(model.config().maxPositions())
                .setDevice(device)
                .setVocabSize(model.config().vocab())
                .setMaxBatchTokens(c.maxBatchTokens())
                .setMaxRunning(c.maxRunning())
                .setKvCacheBytes(engine.kvCacheBytes())
                .build();
    }
}
