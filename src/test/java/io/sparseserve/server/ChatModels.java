package io.sparseserve.server;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;

/**
 * A model folder with a chat template: a copy of another (the bundled model has none) plus a plain
 * {@code chat_template.jinja}, so that chat tests run in a clone without ../shared.
 */
final class ChatModels {
    /** "role: content" lines, then the assistant's turn opened. */
    static final String TEMPLATE = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
            + "{% if add_generation_prompt %}assistant:{% endif %}";

    private ChatModels() {}

    static Path withTemplate(Path modelDir, Path into) {
        try {
            Files.createDirectories(into);
            try (Stream<Path> files = Files.list(modelDir)) {
                for (Path p : files.filter(Files::isRegularFile).toList()) {
                    Path target = into.resolve(p.getFileName().toString());
                    if (!Files.exists(target)) Files.copy(p, target);
                }
            }
            Files.writeString(into.resolve("chat_template.jinja"), TEMPLATE);
            return into;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
