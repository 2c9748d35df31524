package io.sparseserve.model;

import ai.djl.engine.EngineException;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.OptionalInt;

/**
 * A Hugging Face {@code tokenizer.json}, encoded and decoded by the Rust {@code tokenizers} library through DJL, set
 * up the way the model was evaluated: no special tokens added (no BOS), no truncation, no padding.
 *
 * <p>The vocabulary (id to token string and back) is read from the JSON with Jackson, because DJL does not expose it;
 * {@link #vocabSize()} counts the model's vocabulary and the added tokens, like the library's
 * {@code get_vocab_size(with_added_tokens=true)}.
 *
 * <p>Native library: DJL's jar bundles the CPU build of the Rust library for linux-x86_64, linux-aarch64,
 * osx-aarch64 and win-x86_64, and extracts it once to {@code ~/.djl.ai/tokenizers/} (override with the
 * {@code ENGINE_CACHE_DIR} or {@code DJL_CACHE_DIR} system property or environment variable, e.g. where the home
 * folder is read-only). On a machine where DJL detects a CUDA GPU it would otherwise choose a CUDA build of the
 * library, which is not in the jar, and try to download it; this class therefore turns on DJL's offline mode
 * ({@code ai.djl.offline=true}) before DJL is first used, unless the user set {@code ai.djl.offline},
 * {@code DJL_OFFLINE} or {@code RUST_FLAVOR} explicitly. Offline mode makes DJL pick the bundled CPU build.
 *
 * <p>Encoding and decoding may be called from several threads at once (the Rust tokenizer is immutable);
 * {@link #close()} must not race with them.
 */
public final class Tokenizer implements AutoCloseable {

    static {
        useBundledNativeLibrary();
    }

    private final Path path;
    private final HuggingFaceTokenizer hf;
    private final String[] idToToken;
    private final Map<String, Integer> tokenToId;
    private final byte[][] byteLevelBytes; // null unless the decoder is ByteLevel
    private final java.util.BitSet special;

    private Tokenizer(Path path, HuggingFaceTokenizer hf, String[] idToToken, Map<String, Integer> tokenToId,
            byte[][] byteLevelBytes, java.util.BitSet special) {
        this.path = path;
        this.hf = hf;
        this.idToToken = idToToken;
        this.tokenToId = tokenToId;
        this.byteLevelBytes = byteLevelBytes;
        this.special = special;
    }

    /**
     * Loads a {@code tokenizer.json}. A missing, unreadable or malformed file is the user's input error
     * ({@link ModelFormatException}, naming the file); a native library that cannot load is an internal error.
     */
    public static Tokenizer load(Path tokenizerJson) {
        if (!Files.isRegularFile(tokenizerJson)) {
            throw new ModelFormatException(tokenizerJson,
                    Files.isDirectory(tokenizerJson) ? "is a folder, expected a tokenizer.json file" : "no such file");
        }
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(tokenizerJson.toFile());
        } catch (JacksonException e) {
            throw withCause(new ModelFormatException(tokenizerJson, "not valid JSON: " + e.getOriginalMessage()), e);
        } catch (IOException e) {
            throw withCause(new ModelFormatException(tokenizerJson, "cannot be read: " + e.getMessage()), e);
        }
        Vocab vocab = readVocab(tokenizerJson, root);
        HuggingFaceTokenizer hf;
        try {
            hf = HuggingFaceTokenizer.builder()
                    .optTokenizerPath(tokenizerJson)
                    .optAddSpecialTokens(false)
                    .optTruncation(false)
                    .optPadding(false)
                    .build();
        } catch (EngineException e) {
            throw new IllegalStateException("the Hugging Face tokenizers native library (DJL) cannot be loaded: "
                    + e.getMessage(), e);
        } catch (IOException | RuntimeException e) {
            throw withCause(new ModelFormatException(tokenizerJson,
                    "not a tokenizer the Hugging Face tokenizers library can load: " + e.getMessage()), e);
        }
        JsonNode decoder = root.path("decoder");
        boolean byteLevel = "ByteLevel".equals(decoder.path("type").asText());
        return new Tokenizer(tokenizerJson, hf, vocab.idToToken, vocab.tokenToId,
                byteLevel ? ByteLevelAlphabet.tokenBytes(vocab.idToToken) : null, vocab.special);
    }

    /**
     * The ids of a prompt as transformers encodes one ({@code add_special_tokens=True}): the tokenizer's
     * post-processor adds what the model expects (Llama 3's BOS; nothing for Qwen2 or GPT-2-style tokenizers).
     * Evaluation and chat-template prompts use {@link #encode} instead.
     */
    public int[] encodePrompt(String text) {
        long[] ids = hf.encode(text, true, false).getIds();
        int[] out = new int[ids.length];
        for (int i = 0; i < ids.length; i++) out[i] = (int) ids[i];
        return out;
    }

    /** True for an added token marked special (BOS, EOS, chat markers): what skip_special_tokens leaves out. */
    public boolean isSpecial(int id) {
        return id >= 0 && special.get(id);
    }

    /** The ids of {@code text}, with no special tokens added. Any length works (620 KB takes about half a second). */
    public int[] encode(String text) {
        long[] ids = hf.encode(text, false, false).getIds();
        int[] out = new int[ids.length];
        for (int i = 0; i < ids.length; i++) out[i] = (int) ids[i];
        return out;
    }

    /** The text of {@code ids}, special tokens included (skip_special_tokens=false), as the library decodes it. */
    public String decode(int[] ids) {
        return decode(ids, 0, ids.length, false);
    }

    /** The text of {@code ids[from, to)}; special tokens (e.g. {@code <|endoftext|>}) dropped when asked. */
    public String decode(int[] ids, int from, int to, boolean skipSpecialTokens) {
        java.util.Objects.checkFromToIndex(from, to, ids.length);
        long[] longs = new long[to - from];
        for (int i = from; i < to; i++) {
            int id = ids[i];
            if (id < 0 || id >= idToToken.length || idToToken[id] == null) {
                throw new InvalidInputException("token id " + id + " is not in the vocabulary of " + path
                        + " (allowed: 0.." + (idToToken.length - 1) + ")");
            }
            longs[i - from] = id;
        }
        return hf.decode(longs, skipSpecialTokens);
    }

    /** The number of token ids (model vocabulary plus added tokens); every id is in [0, vocabSize). */
    public int vocabSize() {
        return idToToken.length;
    }

    /** The id of a token string as written in the vocabulary (byte-level BPE spells a leading space "Ġ"). */
    public OptionalInt tokenId(String token) {
        Integer id = tokenToId.get(token);
        return id == null ? OptionalInt.empty() : OptionalInt.of(id);
    }

    /** The token string of {@code id} as written in the vocabulary; null for an unused id. */
    public String token(int id) {
        return id >= 0 && id < idToToken.length ? idToToken[id] : null;
    }

    /**
     * True when the decoder is GPT-2's ByteLevel: then every token stands for a fixed byte string
     * ({@link #copyTokenBytes}) and the decoded text is those bytes concatenated, read as UTF-8 with invalid
     * sequences replaced by U+FFFD.
     */
    public boolean isByteLevel() {
        return byteLevelBytes != null;
    }

    /** The longest byte string of one token; only for {@link #isByteLevel()} tokenizers. */
    public int maxTokenBytes() {
        requireByteLevel();
        int max = 0;
        for (byte[] b : byteLevelBytes) max = Math.max(max, b == null ? 0 : b.length);
        return max;
    }

    /**
     * Copies the bytes that {@code id} decodes to into {@code dst} at {@code offset} and returns their count; only for
     * {@link #isByteLevel()} tokenizers. Does not allocate.
     */
    public int copyTokenBytes(int id, byte[] dst, int offset) {
        requireByteLevel();
        if (id < 0 || id >= byteLevelBytes.length || byteLevelBytes[id] == null) {
            throw new InvalidInputException("token id " + id + " is not in the vocabulary of " + path
                    + " (allowed: 0.." + (byteLevelBytes.length - 1) + ")");
        }
        byte[] b = byteLevelBytes[id];
        System.arraycopy(b, 0, dst, offset, b.length);
        return b.length;
    }

    public Path path() {
        return path;
    }

    @Override
    public void close() {
        hf.close();
    }

    private void requireByteLevel() {
        if (byteLevelBytes == null) throw new IllegalStateException(path + ": the decoder is not ByteLevel");
    }

    private record Vocab(String[] idToToken, Map<String, Integer> tokenToId, java.util.BitSet special) {}

    /**
     * Reads {@code model.vocab} (an object token to id for BPE and WordPiece, a list of [piece, score] for Unigram)
     * and {@code added_tokens}.
     */
    private static Vocab readVocab(Path file, JsonNode root) {
        JsonNode model = root.path("model");
        if (!model.isObject()) throw new ModelFormatException(file, "has no \"model\" object");
        JsonNode vocab = model.path("vocab");
        Map<String, Integer> tokenToId = new HashMap<>();
        java.util.BitSet special = new java.util.BitSet();
        if (vocab.isObject()) {
            for (Map.Entry<String, JsonNode> e : vocab.properties()) {
                if (!e.getValue().canConvertToInt() || e.getValue().asInt() < 0) {
                    throw new ModelFormatException(file, "model.vocab[\"" + e.getKey() + "\"] is not a token id");
                }
                tokenToId.put(e.getKey(), e.getValue().asInt());
            }
        } else if (vocab.isArray()) {
            for (int i = 0; i < vocab.size(); i++) {
                JsonNode piece = vocab.get(i).path(0);
                if (!piece.isTextual()) throw new ModelFormatException(file, "model.vocab[" + i + "] has no piece");
                tokenToId.put(piece.asText(), i);
            }
        } else {
            throw new ModelFormatException(file, "has no model.vocab");
        }
        for (JsonNode added : root.path("added_tokens")) {
            JsonNode id = added.path("id");
            JsonNode content = added.path("content");
            if (!id.canConvertToInt() || id.asInt() < 0 || !content.isTextual()) {
                throw new ModelFormatException(file, "added_tokens entry " + added + " needs an id and a content");
            }
            tokenToId.put(content.asText(), id.asInt());
            if (added.path("special").asBoolean(false)) special.set(id.asInt());
        }
        if (tokenToId.isEmpty()) throw new ModelFormatException(file, "has an empty vocabulary");
        int size = 1 + tokenToId.values().stream().mapToInt(Integer::intValue).max().orElseThrow();
        String[] idToToken = new String[size];
        for (Map.Entry<String, Integer> e : tokenToId.entrySet()) idToToken[e.getValue()] = e.getKey();
        return new Vocab(idToToken, Map.copyOf(tokenToId), special);
    }

    private static <E extends Throwable> E withCause(E e, Throwable cause) {
        e.initCause(cause);
        return e;
    }

    /** See the class comment: keep DJL from choosing a CUDA build it would have to download. */
    private static void useBundledNativeLibrary() {
        boolean userChose = System.getProperty("ai.djl.offline") != null || System.getenv("DJL_OFFLINE") != null
                || System.getProperty("RUST_FLAVOR") != null || System.getenv("RUST_FLAVOR") != null;
        if (!userChose) System.setProperty("ai.djl.offline", "true");
    }

    /** GPT-2's reversible byte-to-printable-character table, inverted (openai/gpt-2 encoder.py bytes_to_unicode). */
    static final class ByteLevelAlphabet {
        private ByteLevelAlphabet() {}

        /** char -> byte for the 256 characters of the alphabet; -1 for any other char. */
        static int[] charToByte() {
            int[] map = new int[324];
            java.util.Arrays.fill(map, -1);
            int n = 0;
            for (int b = 0; b < 256; b++) {
                boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
                map[printable ? b : 256 + n++] = b;
            }
            return map;
        }

        /**
         * The bytes each token decodes to, as the library's ByteLevel decoder computes them: every char mapped back
         * to its byte, or the token's own UTF-8 when some char is outside the alphabet (e.g. an added token).
         */
        static byte[][] tokenBytes(String[] idToToken) {
            int[] map = charToByte();
            byte[][] out = new byte[idToToken.length][];
            for (int id = 0; id < idToToken.length; id++) {
                String t = idToToken[id];
                if (t == null) continue;
                byte[] b = new byte[t.length()];
                boolean mapped = true;
                for (int i = 0; i < t.length() && mapped; i++) {
                    char c = t.charAt(i);
                    mapped = c < map.length && map[c] >= 0;
                    if (mapped) b[i] = (byte) map[c];
                }
                out[id] = mapped ? b : t.getBytes(StandardCharsets.UTF_8);
            }
            return out;
        }
    }
}
