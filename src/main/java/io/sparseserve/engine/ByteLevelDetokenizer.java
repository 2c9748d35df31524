package io.sparseserve.engine;

import io.sparseserve.model.Tokenizer;
import io.sparseserve.model.Utf8;

/**
 * Incremental decoding for ByteLevel tokenizers: token bytes are appended to a small buffer and decoded as UTF-8
 * (with the library's replacement rules, {@link Utf8}), stopping before a trailing sequence that is valid so far but
 * incomplete. Because malformed sequences never extend past such a point, decoding in pieces gives exactly the
 * text of decoding all bytes at once.
 */
public final class ByteLevelDetokenizer implements IncrementalDetokenizer {
    private final Tokenizer tokenizer;
    private final byte[] pending; // at most 3 held-back bytes, then one token's bytes
    private int pendingLength;
    private final StringBuilder text = new StringBuilder();

    ByteLevelDetokenizer(Tokenizer tokenizer) {
        this.tokenizer = tokenizer;
        this.pending = new byte[3 + tokenizer.maxTokenBytes()];
    }

    @Override
    public String add(int id) {
        pendingLength += tokenizer.copyTokenBytes(id, pending, pendingLength);
        return drain(false);
    }

    @Override
    public String flush() {
        return drain(true);
    }

    private String drain(boolean endOfInput) {
        text.setLength(0);
        int consumed = Utf8.decode(pending, 0, pendingLength, text, endOfInput);
        pendingLength -= consumed;
        System.arraycopy(pending, consumed, pending, 0, pendingLength);
        return text.isEmpty() ? "" : text.toString();
    }
}
