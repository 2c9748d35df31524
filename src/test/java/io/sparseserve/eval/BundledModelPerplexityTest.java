package io.sparseserve.eval;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.sparseserve.TestData;
import io.sparseserve.backend.ModelRunners;
import io.sparseserve.model.Model;
import io.sparseserve.model.Tokenizer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/** The bundled model on the whole held-out text reproduces the dense perplexity of its TRAINING.md (1e-3). */
class BundledModelPerplexityTest {

    @Test
    void densePerplexityMatchesTrainingNotes() throws Exception {
        Optional<Path> shared = TestData.shared();
        assumeTrue(shared.isPresent() && Files.isRegularFile(shared.get().resolve("data/kdoc/test.txt")),
                "skipped: ../shared/data/kdoc/test.txt is not present");
        Path notes = TestData.bundledModel().resolve("TRAINING.md");
        Matcher m = Pattern.compile("\\| dense \\| – \\| [0-9.]+ \\| ([0-9.]+) \\|").matcher(Files.readString(notes));
        assertEquals(true, m.find(), "dense row in " + notes);
        double want = Double.parseDouble(m.group(1));
        try (Model model = Model.load(TestData.bundledModel());
             Tokenizer tok = Tokenizer.load(TestData.bundledModel().resolve("tokenizer.json"))) {
            int[] ids = tok.encode(Files.readString(shared.get().resolve("data/kdoc/test.txt")));
            Perplexity.Result r = Perplexity.evaluate(model, ModelRunners.cpu(), ids, 128, 0, null);
            assertEquals(1531, r.windows());
            assertEquals(want, r.perplexity(), 1e-3 * want);
        }
    }
}
