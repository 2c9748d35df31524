package io.sparseserve.engine;

import io.sparseserve.model.Tokenizer;
import java.util.Arrays;

/**
 * Incremental decoding through the tokenizer library for decoders that depend on context, following Hugging Face
 * TGI's and vLLM's {@code detokenize_incrementally}: keep a prefix offset and a read offset; decode
 * {@code ids[prefix, end)} and {@code ids[prefix, read)}; when the first is longer and does not end in U+FFFD (an
 * incomplete character), emit its extra text and move both offsets forward. The prefix tokens give the new ones
 * their context, e.g. Metaspace's leading-space strip only touches the window's first token, never a new one.
 *
 * <p>Bounded work: the window spans the tokens since the last emission plus the previous step's tokens (five prompt
 * tokens at the start). A window that still ends in U+FFFD after {@link #MAX_PENDING} tokens is emitted as it is:
 * with byte-fallback vocabularies a character is at most four byte tokens, so only malformed output gets there.
 */
public final class WindowedDetokenizer implements IncrementalDetokenizer {
    /** As vLLM's INITIAL_INCREMENTAL_DETOKENIZATION_OFFSET: prompt tokens kept as context. */
    static final int PROMPT_CONTEXT = 5;
    static final int MAX_PENDING = 8;

    private final Tokenizer tokenizer;
    private int[] ids = new int[64];
    private int prefix; // start of the window
    private int read; // ids before it have been emitted
    private int end; // number of ids held
    private int prefixTextLength; // length of decode(ids[prefix, read))

    WindowedDetokenizer(Tokenizer tokenizer, int[] promptIds) {
        this.tokenizer = tokenizer;
        int context = Math.min(PROMPT_CONTEXT, promptIds.length);
        System.arraycopy(promptIds, promptIds.length - context, ids, 0, context);
        end = read = context;
        prefixTextLength = decode(prefix, read).length();
    }

    @Override
    public String add(int id) {
        if (end == ids.length) compact();
        ids[end++] = id;
        String window = decode(prefix, end);
        boolean complete = !window.endsWith("\uFFFD") || end - read > MAX_PENDING;
        if (window.length() <= prefixTextLength || !complete) return "";
        return advance(window);
    }

    @Override
    public String flush() {
        if (read == end) return "";
        String window = decode(prefix, end);
        return window.length() <= prefixTextLength ? "" : advance(window);
    }

    /** Number of ids the next {@link #add} decodes, less one; for tests of the bound. */
    int windowSize() {
        return end - prefix;
    }

    private String advance(String window) {
        String piece = window.substring(prefixTextLength);
        prefix = read;
        read = end;
        prefixTextLength = decode(prefix, read).length();
        return piece;
    }

    private String decode(int from, int to) {
        return from == to ? "" : tokenizer.decode(ids, from, to, false);
    }

    /** Drops the ids before the window; grows the array only if the window itself fills it (it never should). */
    private void compact() {
        int keep = end - prefix;
        if (keep * 2 > ids.length) ids = Arrays.copyOf(ids, ids.length * 2);
        System.arraycopy(ids, prefix, ids, 0, keep);
        read -= prefix;
        end -= prefix;
        prefix = 0;
    }
}
