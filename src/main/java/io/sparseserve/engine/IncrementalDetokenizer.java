package io.sparseserve.engine;

import io.sparseserve.model.Tokenizer;

/**
 * Turns generated token ids, fed one at a time, into text pieces to stream, never emitting half of a multi-byte
 * UTF-8 character: a token of a byte-level vocabulary can end in the middle of one.
 *
 * <p>The concatenation of every piece from {@link #add} and the final {@link #flush} equals
 * {@code tokenizer.decode(ids)} of all the ids fed (special tokens included, like {@link Tokenizer#decode(int[])}).
 * The work per token is bounded, independent of how many tokens came before. Not thread-safe: one per sequence.
 *
 * <p>Two implementations, picked by {@link #create}:
 * <ul>
 *   <li>{@link ByteLevelDetokenizer} for GPT-2-style ByteLevel decoders (GPT-2, OPT, Llama 3, the kdoc models):
 *       each token is a fixed byte string, so the bytes are decoded here and everything up to a trailing incomplete
 *       character is emitted. Exact for any byte stream, at most three bytes held back, no call into the native
 *       library per token.</li>
 *   <li>{@link WindowedDetokenizer} for every other decoder (e.g. SentencePiece-style Metaspace + ByteFallback,
 *       Llama 2): the approach of Hugging Face TGI and vLLM, decoding a short window of recent ids with the library,
 *       because such decoders depend on context (the leading space of the first token is stripped).</li>
 * </ul>
 */
public sealed interface IncrementalDetokenizer permits ByteLevelDetokenizer, WindowedDetokenizer {

    /** For a sequence without prompt context (the text starts with the first id added). */
    static IncrementalDetokenizer create(Tokenizer tokenizer) {
        return create(tokenizer, new int[0]);
    }

    /**
     * For text generated after {@code promptIds}: the prompt's last ids are used as decoding context (a
     * context-dependent decoder then renders the first generated token as it appears after the prompt); the
     * prompt's own text is not emitted.
     */
    static IncrementalDetokenizer create(Tokenizer tokenizer, int[] promptIds) {
        return tokenizer.isByteLevel()
                ? new ByteLevelDetokenizer(tokenizer)
                : new WindowedDetokenizer(tokenizer, promptIds);
    }

    /** Feeds one id and returns the text that became final, possibly "". */
    String add(int id);

    /** Returns whatever text is still held back (an incomplete character becomes U+FFFD) at the end of a stream. */
    String flush();
}
