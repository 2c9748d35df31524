package io.sparseserve.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparseserve.TestPaths;
import io.sparseserve.model.Tokenizer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class IncrementalDetokenizerTest {
    private static final String MULTI_BYTE = "naïve café — 日本語 🙂";

    private static Tokenizer byteLevel; // the kdoc / tiny-llama tokenizer: GPT-2 ByteLevel
    private static Tokenizer sentencePiece; // a Llama-2-style tokenizer: Metaspace + ByteFallback, built below
    private static String kdocText;

    @BeforeAll
    static void load() throws IOException {
        byteLevel = Tokenizer.load(TestPaths.tinyLlamaDir().resolve("tokenizer.json"));
        Path dir = Files.createTempDirectory("sp-tokenizer");
        Path file = dir.resolve("tokenizer.json");
        Files.writeString(file, llama2StyleTokenizerJson());
        sentencePiece = Tokenizer.load(file);
        Files.delete(file);
        Files.delete(dir);
        kdocText = Files.readString(io.sparseserve.TestData.testText60k()).substring(0, 4000);
    }

    @AfterAll
    static void close() {
        byteLevel.close();
        sentencePiece.close();
    }

    /** Feeds ids one by one and returns the pieces, the flush last. */
    private static List<String> stream(IncrementalDetokenizer detokenizer, int[] ids) {
        List<String> pieces = new ArrayList<>();
        for (int id : ids) pieces.add(detokenizer.add(id));
        pieces.add(detokenizer.flush());
        return pieces;
    }

    private static void assertExactAndWhole(Tokenizer tokenizer, IncrementalDetokenizer detokenizer, int[] ids) {
        List<String> pieces = stream(detokenizer, ids);
        assertEquals(tokenizer.decode(ids), String.join("", pieces));
        for (String piece : pieces) assertFalse(piece.contains("\uFFFD"), "piece with U+FFFD: " + pieces);
    }

    @Test
    void picksTheImplementationFromTheDecoder() {
        assertInstanceOf(ByteLevelDetokenizer.class, IncrementalDetokenizer.create(byteLevel));
        assertInstanceOf(WindowedDetokenizer.class, IncrementalDetokenizer.create(sentencePiece));
    }

    @Test
    void byteLevelStreamsRealTextExactly() {
        int[] ids = Arrays.copyOf(byteLevel.encode(kdocText), 400);
        assertExactAndWhole(byteLevel, IncrementalDetokenizer.create(byteLevel), ids);
    }

    @Test
    void byteLevelNeverEmitsHalfACharacter() {
        int[] ids = byteLevel.encode(MULTI_BYTE);
        IncrementalDetokenizer detokenizer = IncrementalDetokenizer.create(byteLevel);
        List<String> pieces = stream(detokenizer, ids);
        assertTrue(pieces.contains(""), "expected ids that split characters: " + pieces);
        assertEquals(MULTI_BYTE, String.join("", pieces));
        pieces.forEach(p -> assertFalse(p.contains("\uFFFD"), p));
        assertEquals("", pieces.getLast()); // nothing left for flush
    }

    /** Malformed output (random single-byte tokens) still streams to exactly the library's text. */
    @Test
    void byteLevelIsExactOnMalformedBytes() {
        SplittableRandom random = new SplittableRandom(11);
        for (int trial = 0; trial < 300; trial++) {
            int[] ids = random.ints(random.nextInt(1, 30), 1, 257).toArray();
            List<String> pieces = stream(IncrementalDetokenizer.create(byteLevel), ids);
            assertEquals(byteLevel.decode(ids), String.join("", pieces), Arrays.toString(ids));
        }
    }

    @Test
    void flushEmitsAnIncompleteTailAsReplacement() {
        int e6 = byteLevel.tokenId("æ").orElseThrow(); // byte 0xE6 in GPT-2's alphabet, lead byte of 日
        IncrementalDetokenizer detokenizer = IncrementalDetokenizer.create(byteLevel);
        assertEquals("", detokenizer.add(e6));
        assertEquals("\uFFFD", detokenizer.flush());
    }

    @Test
    void sentencePieceTokenizerRoundTrips() {
        int[] ids = sentencePiece.encode(MULTI_BYTE);
        assertEquals(MULTI_BYTE, sentencePiece.decode(ids));
        // Byte fallback splits the characters outside the small vocabulary into byte tokens.
        assertTrue(ids.length > MULTI_BYTE.length(), Arrays.toString(ids));
    }

    @Test
    void windowedStreamsMultiByteTextExactly() {
        int[] ids = sentencePiece.encode(MULTI_BYTE);
        assertExactAndWhole(sentencePiece, IncrementalDetokenizer.create(sentencePiece), ids);
    }

    @Test
    void windowedStreamsRealTextExactlyWithBoundedWindow() {
        String text = kdocText.substring(0, 1500).toLowerCase(Locale.ROOT);
        int[] ids = sentencePiece.encode(text);
        assertTrue(ids.length > 300, "only " + ids.length + " ids");
        WindowedDetokenizer detokenizer = new WindowedDetokenizer(sentencePiece, new int[0]);
        StringBuilder out = new StringBuilder();
        int maxWindow = 0;
        for (int id : ids) {
            out.append(detokenizer.add(id));
            maxWindow = Math.max(maxWindow, detokenizer.windowSize());
        }
        out.append(detokenizer.flush());
        assertEquals(sentencePiece.decode(ids), out.toString());
        assertTrue(maxWindow <= 2 * WindowedDetokenizer.MAX_PENDING + 2, "window grew to " + maxWindow);
    }

    /** After a prompt, the first generated token keeps its leading space (Metaspace strips it only at the start). */
    @Test
    void windowedUsesThePromptAsContext() {
        int[] prompt = sentencePiece.encode("the cat");
        int[] generated = sentencePiece.encode("the cat sat")  ;
        int[] tail = Arrays.copyOfRange(generated, prompt.length, generated.length);
        String streamed = String.join("", stream(IncrementalDetokenizer.create(sentencePiece, prompt), tail));
        assertEquals(" sat", streamed);
        // Without context the same ids decode with the space stripped.
        assertEquals("sat", String.join("", stream(IncrementalDetokenizer.create(sentencePiece), tail)));
    }

    /** The windowed approach also works on a ByteLevel vocabulary (it is generic), with a bounded window. */
    @Test
    void windowedAgreesOnByteLevelText() {
        int[] ids = Arrays.copyOf(byteLevel.encode(kdocText), 400);
        assertExactAndWhole(byteLevel, new WindowedDetokenizer(byteLevel, new int[0]), ids);
        int[] multi = byteLevel.encode(MULTI_BYTE);
        assertExactAndWhole(byteLevel, new WindowedDetokenizer(byteLevel, new int[0]), multi);
    }

    /**
     * A tokenizer.json laid out like Llama 2's (SentencePiece BPE converted by Hugging Face): Metaspace-style
     * normalizer (prepend and replace with "▁"), byte fallback, and the decoder chain Replace, ByteFallback, Fuse,
     * Strip. Vocabulary: specials, the 256 byte tokens, "▁", lowercase letters, digits, punctuation, "é", a few merges.
     */
    static String llama2StyleTokenizerJson() {
        ObjectMapper json = new ObjectMapper();
        ObjectNode root = json.createObjectNode();
        root.put("version", "1.0");
        root.putNull("truncation");
        root.putNull("padding");
        ArrayNode added = root.putArray("added_tokens");
        String[] specials = {"<unk>", "<s>", "</s>"};
        for (int i = 0; i < specials.length; i++) {
            added.addObject().put("id", i).put("content", specials[i]).put("single_word", false)
                    .put("lstrip", false).put("rstrip", false).put("normalized", false).put("special", true);
        }
        ObjectNode normalizer = root.putObject("normalizer").put("type", "Sequence");
        ArrayNode normalizers = normalizer.putArray("normalizers");
        normalizers.addObject().put("type", "Prepend").put("prepend", "▁");
        ObjectNode replace = normalizers.addObject().put("type", "Replace");
        replace.putObject("pattern").put("String", " ");
        replace.put("content", "▁");
        root.putNull("pre_tokenizer");
        root.putNull("post_processor");
        ObjectNode decoder = root.putObject("decoder").put("type", "Sequence");
        ArrayNode decoders = decoder.putArray("decoders");
        ObjectNode unspace = decoders.addObject().put("type", "Replace");
        unspace.putObject("pattern").put("String", "▁");
        unspace.put("content", " ");
        decoders.addObject().put("type", "ByteFallback");
        decoders.addObject().put("type", "Fuse");
        decoders.addObject().put("type", "Strip").put("content", " ").put("start", 1).put("stop", 0);

        ObjectNode model = root.putObject("model").put("type", "BPE");
        model.putNull("dropout");
        model.put("unk_token", "<unk>");
        model.putNull("continuing_subword_prefix");
        model.putNull("end_of_word_suffix");
        model.put("fuse_unk", true).put("byte_fallback", true).put("ignore_merges", false);
        ObjectNode vocab = model.putObject("vocab");
        int id = 0;
        for (String s : specials) vocab.put(s, id++);
        for (int b = 0; b < 256; b++) vocab.put(String.format("<0x%02X>", b), id++);
        List<String> pieces = new ArrayList<>(List.of("▁", "é"));
        for (char c = 'a'; c <= 'z'; c++) pieces.add(String.valueOf(c));
        for (char c = '0'; c <= '9'; c++) pieces.add(String.valueOf(c));
        for (char c : ".,:;()-_/*'\"=<>[]{}#\n\t".toCharArray()) pieces.add(String.valueOf(c));
        String[][] merges = {{"▁", "t"}, {"h", "e"}, {"▁t", "he"}, {"▁", "c"}, {"a", "t"}, {"▁c", "at"},
            {"▁", "s"}, {"▁s", "at"}, {"i", "n"}, {"▁", "a"}, {"e", "r"}, {"▁", "k"}, {"▁k", "er"}};
        for (String[] m : merges) pieces.add(m[0] + m[1]);
        for (String p : pieces) if (!vocab.has(p)) vocab.put(p, id++);
        ArrayNode mergeList = model.putArray("merges");
        for (String[] m : merges) mergeList.add(m[0] + " " + m[1]);
        return root.toPrettyString();
    }
}
