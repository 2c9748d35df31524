package io.sparseserve.loadtest;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Map;

/**
 * Hand-written HTTP/2 frames (RFC 9113 §4.1: 9-byte header, then the payload) and HPACK header blocks made only of
 * "literal header field without indexing, new name" entries with plain (not Huffman) strings (RFC 7541 §6.2.2), so an
 * attacker can send exactly the frames a well-behaved client library never would: windows of zero, resets right
 * after HEADERS, floods of PING and SETTINGS, gRPC messages whose length prefix lies.
 */
final class H2Frames {
    static final byte[] PREFACE = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".getBytes(StandardCharsets.US_ASCII);
    static final int DATA = 0, HEADERS = 1, RST_STREAM = 3, SETTINGS = 4, PING = 6, WINDOW_UPDATE = 8;
    static final int END_STREAM = 0x1, END_HEADERS = 0x4, ACK = 0x1;
    static final int SETTINGS_INITIAL_WINDOW_SIZE = 0x4;
    /** RST_STREAM error code CANCEL (RFC 9113 §7). */
    static final int CANCEL = 0x8;

    private H2Frames() {}

    static byte[] frame(int type, int flags, int streamId, byte[] payload) {
        byte[] f = new byte[9 + payload.length];
        f[0] = (byte) (payload.length >>> 16);
        f[1] = (byte) (payload.length >>> 8);
        f[2] = (byte) payload.length;
        f[3] = (byte) type;
        f[4] = (byte) flags;
        f[5] = (byte) ((streamId >>> 24) & 0x7f);
        f[6] = (byte) (streamId >>> 16);
        f[7] = (byte) (streamId >>> 8);
        f[8] = (byte) streamId;
        System.arraycopy(payload, 0, f, 9, payload.length);
        return f;
    }

    /** A SETTINGS frame from (identifier, value) pairs. */
    static byte[] settings(int... idValue) {
        byte[] p = new byte[idValue.length / 2 * 6];
        for (int i = 0, o = 0; i + 1 < idValue.length; i += 2, o += 6) {
            p[o] = (byte) (idValue[i] >>> 8);
            p[o + 1] = (byte) idValue[i];
            p[o + 2] = (byte) (idValue[i + 1] >>> 24);
            p[o + 3] = (byte) (idValue[i + 1] >>> 16);
            p[o + 4] = (byte) (idValue[i + 1] >>> 8);
            p[o + 5] = (byte) idValue[i + 1];
        }
        return frame(SETTINGS, 0, 0, p);
    }

    static byte[] ping(long data) {
        byte[] p = new byte[8];
        for (int i = 0; i < 8; i++) p[i] = (byte) (data >>> (56 - 8 * i));
        return frame(PING, 0, 0, p);
    }

    static byte[] rstStream(int streamId, int code) {
        return frame(RST_STREAM, 0, streamId, new byte[] {(byte) (code >>> 24), (byte) (code >>> 16), (byte) (code >>> 8), (byte) code});
    }

    /** HEADERS of a gRPC call (END_HEADERS; END_STREAM when {@code endStream}). */
    static byte[] grpcHeaders(int streamId, String authority, String path, String apiKey, boolean endStream) {
        var h = new java.util.LinkedHashMap<String, String>();
        h.put(":method", "POST");
        h.put(":scheme", "http");
        h.put(":path", path);
        h.put(":authority", authority);
        h.put("content-type", "application/grpc");
        h.put("te", "trailers");
        if (apiKey != null) h.put("authorization", "Bearer " + apiKey);
        return frame(HEADERS, END_HEADERS | (endStream ? END_STREAM : 0), streamId, hpack(h));
    }

    /** A DATA frame holding one gRPC message: 0 (not compressed), a 4-byte length that may lie, then the bytes. */
    static byte[] grpcData(int streamId, byte[] message, int declaredLength, boolean endStream) {
        byte[] p = new byte[5 + message.length];
        p[1] = (byte) (declaredLength >>> 24);
        p[2] = (byte) (declaredLength >>> 16);
        p[3] = (byte) (declaredLength >>> 8);
        p[4] = (byte) declaredLength;
        System.arraycopy(message, 0, p, 5, message.length);
        return frame(DATA, endStream ? END_STREAM : 0, streamId, p);
    }

    static byte[] hpack(Map<String, String> headers) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        headers.forEach((name, value) -> {
            out.write(0x00);
            string(out, name.getBytes(StandardCharsets.US_ASCII));
            string(out, value.getBytes(StandardCharsets.US_ASCII));
        });
        return out.toByteArray();
    }

    /** A string literal: H=0 and its length as a 7-bit-prefix integer (RFC 7541 §5.1), then the octets. */
    private static void string(ByteArrayOutputStream out, byte[] s) {
        int n = s.length;
        if (n < 127) {
            out.write(n);
        } else {
            out.write(127);
            n -= 127;
            while (n >= 128) {
                out.write((n & 0x7f) | 0x80);
                n >>>= 7;
            }
            out.write(n);
        }
        out.writeBytes(s);
    }
}
