package io.sparseserve.metrics;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sparseserve.TestData;
import io.sparseserve.backend.Device;
import io.sparseserve.backend.DeviceOptions;
import io.sparseserve.backend.HostMemory;
import io.sparseserve.backend.KvDtype;
import io.sparseserve.backend.KvSizing;
import io.sparseserve.backend.ModelRunners;
import io.sparseserve.backend.SparseKernel;
import io.sparseserve.engine.Engine;
import io.sparseserve.model.Model;
import io.sparseserve.model.Tokenizer;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * The KV gauges report the CPU runner's native KV bytes: a bf16 cache asked for at twice the Java heap's limit (which
 * only off-heap memory can hold) shows its full size in {@code sparseserve_kv_cache_capacity_bytes} and
 * {@code sparseserve_device_memory_used_bytes{kind="kv"}}.
 */
class KvMemoryGaugesTest {
    @Test
    void kvGaugesReportTheNativeBytesOfACacheLargerThanTheHeap() throws Exception {
        long heap = Runtime.getRuntime().maxMemory();
        long ask = 2 * heap;
        Assumptions.assumeTrue(ask + 2 * heap < HostMemory.read().totalBytes(),
                "this machine has too little memory for a KV cache of twice the heap next to it");
        try (Model model = Model.load(TestData.bundledModel());
             Tokenizer tokenizer = Tokenizer.load(TestData.bundledModel().resolve("tokenizer.json"));
             ServingMetrics metrics = new ServingMetrics()) {
            var runners = ModelRunners.factory(Device.CPU, new DeviceOptions(KvDtype.BF16, 0.9, SparseKernel.AUTO));
            try (Engine engine = new Engine(model, tokenizer, runners, new Engine.Config(64, 8, 16, ask, 16), metrics)) {
                metrics.bindEngine(engine);
                metrics.bindDevice(engine.runner());
                long perBlock = KvSizing.bytesPerBlock(model.config(), 16, KvDtype.BF16);
                long expected = ask / perBlock * perBlock;
                String text = metrics.scrape();
                assertEquals(expected, metric(text, "sparseserve_kv_cache_capacity_bytes"));
                assertEquals(expected, metric(text, "sparseserve_device_memory_used_bytes{device=\"cpu\",kind=\"kv\"}"));
                assertTrue(expected > heap, "KV " + expected + " bytes, heap limit " + heap);
            }
        }
    }

    private static double metric(String text, String name) {
        return text.lines().filter(l -> l.startsWith(name + " "))
                .mapToDouble(l -> Double.parseDouble(l.substring(name.length() + 1)))
                .findFirst().orElseThrow(() -> new AssertionError("no " + name + " in\n" + text));
    }
}
