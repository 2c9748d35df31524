package io.sparseserve.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sparseserve.TestPaths;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.OptionalInt;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TokenizerTest {
    private static Tokenizer tokenizer;
    private static JsonNode reference;

    @BeforeAll
    static void load() throws IOException {
        tokenizer = Tokenizer.load(TestPaths.tinyLlamaDir().resolve("tokenizer.json"));
        reference = new ObjectMapper().readTree(TestPaths.tinyLlamaDir().resolve("reference.json").toFile());
    }

    @AfterAll
    static void close() {
        tokenizer.close();
    }

    private static int[] ints(JsonNode array) {
        int[] out = new int[array.size()];
        for (int i = 0; i < out.length; i++) out[i] = array.get(i).asInt();
        return out;
    }

    @Test
    void firstWindowOfTestTextMatchesReference() throws IOException {
        String text = Files.readString(io.sparseserve.TestData.testText60k()).substring(0, 60_000);
        int[] ids = tokenizer.encode(text);
        int[] expected = ints(reference.path("eval").path("first_window_ids"));
        assertEquals(64, expected.length);
        int seqLen = reference.path("eval").path("seq_len").asInt();
        assertTrue(ids.length >= seqLen * reference.path("eval").path("windows").asInt());
        assertArrayEquals(expected, Arrays.copyOf(ids, expected.length));
    }

    @Test
    void greedyPromptMatchesReference() {
        JsonNode greedy = reference.path("greedy");
        assertArrayEquals(ints(greedy.path("prompt_ids")), tokenizer.encode(greedy.path("prompt").asText()));
        assertArrayEquals(new int[] {445, 482, 1530}, tokenizer.encode("The kernel provides"));
    }

    /** The whole 620 KB file in one call (about half a second), and byte-level BPE decodes it back exactly. */
    @Test
    void wholeTestTextEncodesAndRoundTrips() throws IOException {
        String text = Files.readString(TestPaths.kdocTestText());
        int[] ids = tokenizer.encode(text);
        assertTrue(ids.length > text.length() / 8, "suspiciously few tokens: " + ids.length);
        assertEquals(text, tokenizer.decode(ids));
    }

    @Test
    void noSpecialTokensAreAdded() {
        assertArrayEquals(new int[0], tokenizer.encode(""));
        assertArrayEquals(new int[] {0}, tokenizer.encode("<|endoftext|>"));
    }

    @Test
    void decodeKeepsSpecialTokensUnlessAsked() {
        int[] ids = {0, 445, 482};
        assertEquals("<|endoftext|>The kernel", tokenizer.decode(ids));
        assertEquals("The kernel", tokenizer.decode(ids, 0, ids.length, true));
        assertEquals(" kernel", tokenizer.decode(ids, 2, 3, false));
    }

    @Test
    void multiByteTextRoundTrips() {
        String text = "naïve café — 日本語 🙂";
        assertEquals(text, tokenizer.decode(tokenizer.encode(text)));
    }

    @Test
    void vocabulary() {
        assertEquals(4096, tokenizer.vocabSize());
        assertEquals(OptionalInt.of(0), tokenizer.tokenId("<|endoftext|>"));
        assertEquals(OptionalInt.of(445), tokenizer.tokenId("The"));
        assertEquals(OptionalInt.of(482), tokenizer.tokenId("\u0120kernel")); // "Ġkernel": byte-level leading space
        assertEquals(OptionalInt.empty(), tokenizer.tokenId("no such token, surely"));
        assertEquals("\u0120kernel", tokenizer.token(482));
    }

    @Test
    void decodeRejectsIdsOutsideTheVocabulary() {
        var e = assertThrows(InvalidInputException.class, () -> tokenizer.decode(new int[] {5, 4096}));
        assertTrue(e.getMessage().contains("4096") && e.getMessage().contains("0..4095"), e.getMessage());
        assertThrows(InvalidInputException.class, () -> tokenizer.decode(new int[] {-1}));
    }

    /** Each token's bytes, read as UTF-8, are what the library decodes the token to (checks the GPT-2 alphabet). */
    @Test
    void byteLevelTokenBytesMatchTheLibraryTokenByToken() {
        assertTrue(tokenizer.isByteLevel());
        byte[] buf = new byte[tokenizer.maxTokenBytes()];
        for (int id = 0; id < tokenizer.vocabSize(); id++) {
            int n = tokenizer.copyTokenBytes(id, buf, 0);
            assertEquals(tokenizer.decode(new int[] {id}), new String(buf, 0, n, StandardCharsets.UTF_8), "id " + id);
        }
    }

    /**
     * Random id sequences (mostly invalid UTF-8: lone continuation bytes, cut characters) decode like {@link Utf8} (Rust's lossy UTF-8, which differs from Java's on surrogates)
     * and the incremental detokenizer relies on it.
     */
    @Test
    void byteLevelConcatenationMatchesTheLibraryOnRandomIds() {
        SplittableRandom random = new SplittableRandom(7);
        byte[] buf = new byte[tokenizer.maxTokenBytes() * 64];
        for (int trial = 0; trial < 500; trial++) {
            int[] ids = new int[1 + random.nextInt(40)];
            int n = 0;
            for (int i = 0; i < ids.length; i++) {
                // Mostly the 256 single-byte tokens (low ids in this vocabulary), to provoke broken UTF-8.
                ids[i] = random.nextInt(4) == 0 ? random.nextInt(tokenizer.vocabSize()) : 1 + random.nextInt(256);
                n += tokenizer.copyTokenBytes(ids[i], buf, n);
            }
            assertEquals(tokenizer.decode(ids), Utf8.decodeLossy(buf, 0, n), Arrays.toString(ids));
        }
    }

    @Test
    void djlRunsOffline() {
        // Set by Tokenizer's static initialiser unless the user chose; makes DJL use the CPU library in its jar.
        assertEquals("true", System.getProperty("ai.djl.offline"));
    }

    @Test
    void missingFileNamesThePath(@TempDir Path dir) {
        Path missing = dir.resolve("tokenizer.json");
        var e = assertThrows(InvalidInputException.class, () -> Tokenizer.load(missing));
        assertEquals(missing + ": no such file", e.getMessage());
        var folder = assertThrows(InvalidInputException.class, () -> Tokenizer.load(dir));
        assertTrue(folder.getMessage().startsWith(dir + ": is a folder"), folder.getMessage());
    }

    @Test
    void invalidJsonNamesThePath(@TempDir Path dir) throws IOException {
        Path file = Files.writeString(dir.resolve("tokenizer.json"), "{\"model\": ");
        var e = assertThrows(InvalidInputException.class, () -> Tokenizer.load(file));
        assertTrue(e.getMessage().startsWith(file + ": not valid JSON"), e.getMessage());
    }

    @Test
    void jsonThatIsNoTokenizerNamesThePath(@TempDir Path dir) throws IOException {
        Path empty = Files.writeString(dir.resolve("a.json"), "{}");
        var e = assertThrows(InvalidInputException.class, () -> Tokenizer.load(empty));
        assertEquals(empty + ": has no \"model\" object", e.getMessage());

        Path bogus = Files.writeString(dir.resolve("b.json"),
                "{\"model\": {\"type\": \"Bogus\", \"vocab\": {\"a\": 0}}}");
        var e2 = assertThrows(InvalidInputException.class, () -> Tokenizer.load(bogus));
        assertTrue(e2.getMessage().startsWith(bogus + ": not a tokenizer the Hugging Face tokenizers library"),
                e2.getMessage());
    }
}
