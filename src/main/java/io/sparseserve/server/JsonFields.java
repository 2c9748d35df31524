package io.sparseserve.server;

import io.sparseserve.model.InvalidInputException;
import io.vertx.core.json.JsonObject;

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
}
