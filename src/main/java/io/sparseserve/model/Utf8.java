package io.sparseserve.model;

/**
 * UTF-8 decoding that replaces malformed input exactly like Rust's {@code String::from_utf8_lossy}, which the
 * Hugging Face tokenizers library uses to turn byte-level tokens into text: each maximal subpart of an ill-formed
 * sequence becomes one U+FFFD (Unicode 15, section 3.9, "U+FFFD Substitution of Maximal Subparts").
 *
 * <p>Java's own decoder differs on some inputs (it turns {@code ED AB}, a UTF-16 surrogate, into one U+FFFD where
 * Rust writes two), so byte-level text that must match the library is decoded here.
 */
public final class Utf8 {
    private Utf8() {}

    /**
     * Decodes {@code b[off, off+len)} onto {@code out} and returns the number of bytes consumed. With
     * {@code endOfInput} false it stops before a trailing sequence that is valid so far but incomplete (at most three
     * bytes), because later bytes may complete it; everything before it is final, whatever follows. With
     * {@code endOfInput} true it consumes everything, writing one U+FFFD for such a tail.
     */
    public static int decode(byte[] b, int off, int len, StringBuilder out, boolean endOfInput) {
        int end = off + len;
        int i = off;
        while (i < end) {
            int b0 = b[i] & 0xFF;
            if (b0 < 0x80) {
                out.append((char) b0);
                i++;
                continue;
            }
            int width = b0 >= 0xC2 && b0 <= 0xDF ? 2 : b0 >= 0xE0 && b0 <= 0xEF ? 3 : b0 >= 0xF0 && b0 <= 0xF4 ? 4 : 0;
            if (width == 0) { // a continuation byte or a byte that never occurs in UTF-8
                out.append('\uFFFD');
                i++;
                continue;
            }
            // The second byte's range depends on the lead byte (Table 3-7): no overlongs, surrogates or > U+10FFFF.
            int lo = b0 == 0xE0 ? 0xA0 : b0 == 0xF0 ? 0x90 : 0x80;
            int hi = b0 == 0xED ? 0x9F : b0 == 0xF4 ? 0x8F : 0xBF;
            int valid = 1; // bytes of this sequence that are valid so far
            while (valid < width && i + valid < end) {
                int c = b[i + valid] & 0xFF;
                boolean ok = valid == 1 ? c >= lo && c <= hi : (c & 0xC0) == 0x80;
                if (!ok) break;
                valid++;
            }
            if (valid == width) {
                int cp = switch (width) {
                    case 2 -> (b0 & 0x1F) << 6 | (b[i + 1] & 0x3F);
                    case 3 -> (b0 & 0x0F) << 12 | (b[i + 1] & 0x3F) << 6 | (b[i + 2] & 0x3F);
                    default -> (b0 & 0x07) << 18 | (b[i + 1] & 0x3F) << 12 | (b[i + 2] & 0x3F) << 6
                            | (b[i + 3] & 0x3F);
                };
                out.appendCodePoint(cp);
            } else if (i + valid == end && !endOfInput) {
                return i - off; // incomplete so far: wait for more bytes
            } else {
                out.append('\uFFFD'); // the maximal subpart b[i, i+valid) is replaced as one
            }
            i += valid;
        }
        return len;
    }

    /** The whole of {@code b[off, off+len)} as text, malformed sequences replaced as Rust does. */
    public static String decodeLossy(byte[] b, int off, int len) {
        StringBuilder out = new StringBuilder(len);
        decode(b, off, len, out, true);
        return out.toString();
    }
}
