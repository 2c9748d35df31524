package io.sparseserve.backend.cuda;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import java.util.stream.Stream;

/**
 * Where the native tools and build outputs of the kernel tests are: nvcc found the way {@code native/build-ptx.sh}
 * finds it (NVCC, the PATH, /usr/local/cuda/bin), g++ on the PATH, and the folders the Maven build writes.
 */
final class NativeToolchain {
    private NativeToolchain() {}

    static final Path NATIVE = Path.of("native");
    static final Path FATBIN = Path.of("target/classes/cuda/sparse-serve.fatbin");
    static final Path PTXAS_LOG = Path.of("target/cuda/ptxas.log");

    static Optional<Path> nvcc() {
        String env = System.getenv("NVCC");
        if (env != null && !env.isBlank()) return Optional.of(Path.of(env)).filter(Files::isExecutable);
        return onPath("nvcc").or(() -> Optional.of(Path.of("/usr/local/cuda/bin/nvcc")).filter(Files::isExecutable));
    }

    static Optional<Path> gxx() {
        return onPath("g++");
    }

    private static Optional<Path> onPath(String tool) {
        String path = System.getenv("PATH");
        if (path == null) return Optional.empty();
        return Stream.of(path.split(java.io.File.pathSeparator))
                .filter(d -> !d.isEmpty())
                .map(d -> Path.of(d, tool))
                .filter(Files::isExecutable)
                .findFirst();
    }
}
