package io.sparseserve.backend.cuda;

import static jcuda.driver.JCudaDriver.cuGraphDestroy;
import static jcuda.driver.JCudaDriver.cuGraphExecDestroy;
import static jcuda.driver.JCudaDriver.cuGraphInstantiate;
import static jcuda.driver.JCudaDriver.cuGraphLaunch;
import static jcuda.driver.JCudaDriver.cuStreamBeginCapture;
import static jcuda.driver.JCudaDriver.cuStreamEndCapture;

import jcuda.driver.CUgraph;
import jcuda.driver.CUgraphExec;
import jcuda.driver.CUstreamCaptureMode;

/**
 * A captured and instantiated sequence of launches on the context's stream (CUDA graphs): one decode step of one
 * batch-size bucket, replayed with one {@code cuGraphLaunch} instead of hundreds of launches. Kernel arguments are
 * frozen at capture, so everything that changes per step (token ids, positions, block tables, sequence lengths) is
 * read by the kernels from fixed device buffers that the step refreshes before the replay.
 */
public final class CudaGraph implements AutoCloseable {
    private final CUgraph graph;
    private final CUgraphExec exec;
    private final CudaStream stream;
    private boolean closed;

    private CudaGraph(CUgraph graph, CUgraphExec exec, CudaStream stream) {
        this.graph = graph;
        this.exec = exec;
        this.stream = stream;
    }

    /**
     * Records what {@code body} enqueues on {@code stream} (thread-local capture mode: other threads' CUDA calls are
     * not disturbed) and instantiates it. The body must not synchronise, allocate or copy to or from pageable host
     * memory: such calls fail during capture.
     */
    public static CudaGraph capture(CudaStream stream, Runnable body) {
        Cu.check("cuStreamBeginCapture", cuStreamBeginCapture(stream, CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
        CUgraph graph = new CUgraph();
        RuntimeException failure = null;
        try {
            body.run();
        } catch (RuntimeException e) {
            failure = e;
        }
        int end = cuStreamEndCapture(stream, graph);
        if (failure != null) {
            if (end == 0) cuGraphDestroy(graph);
            throw failure;
        }
        Cu.check("cuStreamEndCapture", end);
        CUgraphExec exec = new CUgraphExec();
        try {
            Cu.check("cuGraphInstantiate", cuGraphInstantiate(exec, graph, 0));
        } catch (CudaException e) {
            cuGraphDestroy(graph);
            throw e;
        }
        return new CudaGraph(graph, exec, stream);
    }

    /** Enqueues one replay on the stream it was captured on. */
    public void launch() {
        if (closed) throw new IllegalStateException("graph already destroyed");
        Cu.check("cuGraphLaunch", cuGraphLaunch(exec, stream));
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        Cu.check("cuGraphExecDestroy", cuGraphExecDestroy(exec));
        Cu.check("cuGraphDestroy", cuGraphDestroy(graph));
    }
}
