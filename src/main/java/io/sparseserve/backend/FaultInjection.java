package io.sparseserve.backend;

import io.sparseserve.backend.cuda.Cu;
import io.sparseserve.backend.cuda.CudaException;
import io.sparseserve.backend.cuda.CudaFailures;
import io.sparseserve.model.InvalidInputException;
import java.util.Map;

/**
 * Fault injection for the failure paths of a device (issue 8: a sticky CUDA error must stop the server and end the
 * process; any other error fails only the step). With the system property {@code sparseserve.faultInjection} =
 * {@code CODE@STEP} (a CUresult code, e.g. 700 = CUDA_ERROR_ILLEGAL_ADDRESS, 1 = CUDA_ERROR_INVALID_VALUE; STEP counts
 * forward steps from 1), every runner's step number STEP fails as if a kernel launch had returned CODE: the code goes
 * through the same checker ({@link Cu#check}) and the same sticky-or-not decision ({@link CudaFailures}) as the CUDA
 * runner's calls, so this exercises the engine, server and exit wiring on any machine, a GPU-less one included.
 * Off unless the property is set.
 */
public record FaultInjection(int code, long step) {
    public static final String PROPERTY = "sparseserve.faultInjection";

    public FaultInjection {
        if (code == 0 || step < 1) throw new IllegalArgumentException("code " + code + " at step " + step);
    }

    /** The injection the system property asks for, or null when it is not set. */
    public static FaultInjection fromSystemProperty() {
        String v = System.getProperty(PROPERTY);
        return v == null || v.isBlank() ? null : parse(v);
    }

    static FaultInjection parse(String spec) {
        String[] p = spec.strip().split("@", -1);
        try {
            if (p.length == 2) {
                int code = Integer.parseInt(p[0].strip());
                long step = Long.parseLong(p[1].strip());
                if (code > 0 && step >= 1) return new FaultInjection(code, step);
            }
        } catch (NumberFormatException e) {
            // fall through to the one-line message
        }
        throw new InvalidInputException("-D" + PROPERTY + " must be CODE@STEP (a CUresult code > 0, a step >= 1), got '" + spec + "'");
    }

    /** Wraps every runner {@code factory} opens. */
    public RunnerFactory wrap(RunnerFactory factory) {
        return (model, config) -> new Injecting(factory.open(model, config), this);
    }

    /** A runner that fails its {@code step}-th forward step with {@code code}; every other call goes to the real one. */
    static final class Injecting implements ModelRunner {
        private final ModelRunner runner;
        private final FaultInjection fault;
        private long steps;

        Injecting(ModelRunner runner, FaultInjection fault) {
            this.runner = runner;
            this.fault = fault;
        }

        @Override
        public void forward(Step step, float[] logits, int[] argmax) {
            if (++steps == fault.step) {
                try {
                    Cu.check("cuLaunchKernel (injected by -D" + PROPERTY + ")", fault.code);
                } catch (CudaException e) {
                    throw CudaFailures.duringStep(runner.device(), e);
                }
            }
            runner.forward(step, logits, argmax);
        }

        @Override
        public String device() {
            return runner.device();
        }

        @Override
        public io.sparseserve.model.ModelConfig config() {
            return runner.config();
        }

        @Override
        public RunnerConfig runnerConfig() {
            return runner.runnerConfig();
        }

        @Override
        public int kvBlocks() {
            return runner.kvBlocks();
        }

        @Override
        public KvDtype kvDtype() {
            return runner.kvDtype();
        }

        @Override
        public MemoryUse memory() {
            return runner.memory();
        }

        @Override
        public Map<String, Object> describe() {
            return runner.describe();
        }

        @Override
        public void close() {
            runner.close();
        }
    }
}
