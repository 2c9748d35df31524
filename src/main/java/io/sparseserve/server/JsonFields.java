package io.sparseserve.server;

import io.sparseserve.model.InvalidInputException;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.util.ArrayList;
import java.util.List;

/** Typed reads of an HTTP request body's fields with defaults; a wrong type is the client's error naming the field. */
final class JsonFields {
    private JsonFields() {}

    static float number(JsonObject b, String field, float dflt) {
        Object v = b.getValue(field);
        if (v == null) return dflt;
        if (!(v instanceof Number n)) throw new InvalidInputException(field + " must be a number, got " + v);
        return n.floatValue();
    }

    static int integer(JsonObject b, String field, int dflt) {
        Object v = b.getValue(field);
        if (v == null) return dflt;
        if (!(v instanceof Number n) || n.doubleValue() != Math.rint(n.doubleValue()) || Math.abs(n.doubleValue()) > Integer.MAX_VALUE) {
            throw new InvalidInputException(field + " must be an integer, got " + v);
        }
        return n.intValue();
    }

    static long longValue(JsonObject b, String field, long dflt) {
        Object v = b.getValue(field);
        if (v == null) return dflt;
        if (!(v instanceof Number n) || n.doubleValue() != Math.rint(n.doubleValue())) {
            throw new InvalidInputException(field + " must be an integer, got " + v);
        }
        return n.longValue();
    }

    static boolean bool(JsonObject b, String field, boolean dflt) {
        Object v = b.getValue(field);
        if (v == null) return dflt;
        if (!(v instanceof Boolean x)) throw new InvalidInputException(field + " must be true or false, got " + v);
        return x;
    }

    static String string(JsonObject b, String field, String dflt) {
        Object v = b.getValue(field);
        if (v == null) return dflt;
        if (!(v instanceof String s)) throw new InvalidInputException(field + " must be a string, got " + v);
        return s;
    }

    /** OpenAI's {@code stop}: absent, one string, or an array of strings. */
    static List<String> stopStrings(JsonObject b) {
        List<String> stop = new ArrayList<>();
        Object s = b.getValue("stop");
        if (s instanceof String str) stop.add(str);
        else if (s instanceof JsonArray a) for (Object x : a) {
            if (!(x instanceof String str)) throw new InvalidInputException("stop must be a string or an array of strings");
            stop.add(str);
        } else if (s != null) throw new InvalidInputException("stop must be a string or an array of strings");
        return stop;
    }

    /** vLLM's {@code stop_token_ids}: absent or an array of integers. */
    static int[] stopTokenIds(JsonObject b) {
        Object v = b.getValue("stop_token_ids");
        if (v != null && !(v instanceof JsonArray)) throw new InvalidInputException("stop_token_ids must be an array of integers");
        JsonArray ids = v == null ? new JsonArray() : (JsonArray) v;
        int[] out = new int[ids.size()];
        for (int i = 0; i < out.length; i++) {
            if (!(ids.getValue(i) instanceof Number n)) throw new InvalidInputException("stop_token_ids must be integers");
            out[i] = n.intValue();
        }
        return out;
    }
}
