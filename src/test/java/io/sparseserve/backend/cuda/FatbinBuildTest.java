package io.sparseserve.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.zip.ZipFile;
import org.junit.jupiter.api.Test;

/**
 * Where nvcc is installed, the build put the kernels' fatbin on the classpath (so the jar carries it for
 * cuModuleLoadData), and a jar packaged after it holds the same bytes. Skipped, with a message, without nvcc.
 */
class FatbinBuildTest {
    /** The fatbin container's magic number (fatbinary.h: FATBIN_CONTROL_SECTION_MAGIC), little-endian. */
    private static final int FATBIN_MAGIC = 0xBA55ED50;

    @Test
    void theBuiltClassesCarryTheFatbinWhenNvccExists() throws IOException {
        assumeTrue(NativeToolchain.nvcc().isPresent(), "nvcc not found: the build has no GPU kernels to check");
        byte[] fatbin;
        try (InputStream in = FatbinBuildTest.class.getResourceAsStream("/cuda/sparse-serve.fatbin")) {
            assertNotNull(in, "nvcc exists but /cuda/sparse-serve.fatbin is not on the classpath");
            fatbin = in.readAllBytes();
        }
        assertTrue(fatbin.length > 1024, "fatbin of " + fatbin.length + " bytes");
        assertEquals(FATBIN_MAGIC, ByteBuffer.wrap(fatbin).order(ByteOrder.LITTLE_ENDIAN).getInt(0), "fatbin magic");

        // A jar packaged after this build of the fatbin must carry it byte for byte.
        try (var jars = Files.list(Path.of("target"))) {
            for (Path jar : jars.filter(p -> p.toString().endsWith(".jar")).toList()) {
                if (Files.getLastModifiedTime(jar).compareTo(Files.getLastModifiedTime(NativeToolchain.FATBIN)) < 0) continue;
                try (ZipFile zip = new ZipFile(jar.toFile())) {
                    var entry = zip.getEntry("cuda/sparse-serve.fatbin");
                    assertNotNull(entry, jar + " lacks cuda/sparse-serve.fatbin");
                    try (InputStream in = zip.getInputStream(entry)) {
                        assertTrue(java.util.Arrays.equals(fatbin, in.readAllBytes()), jar + " carries another fatbin");
                    }
                }
            }
        }
    }
}
