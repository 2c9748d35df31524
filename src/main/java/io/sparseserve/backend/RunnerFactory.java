package io.sparseserve.backend;

import io.sparseserve.model.Model;

/**
 * Makes a {@link ModelRunner} for a model: the seam between a caller that knows how big its steps are (the engine,
 * generate, eval, bench) and a device that knows how to run them ({@link ModelRunners#factory}).
 */
@FunctionalInterface
public interface RunnerFactory {
    /**
     * Opens a runner; the model must stay open while it runs. Throws {@link DeviceUnavailableException} (one line: what
     * is missing, or "needs X GiB, Y GiB free") when the device cannot serve it.
     */
    ModelRunner open(Model model, RunnerConfig config);
}
