package io.sparseserve.model;

import java.math.BigDecimal;
import java.util.Iterator;
import java.util.Map;

/**
 * Python's {@code json.dumps(x, ensure_ascii=False, indent=indent)}, the output of transformers' {@code tojson}
 * template filter: separators {@code ", "} and {@code ": "} on one line, {@code ","} and {@code ": "} with an indent;
 * keys in insertion order; floats as Python's {@code repr}. Chat templates print tool schemas and tool-call
 * arguments with it, so the bytes the model sees must be Python's.
 */
final class PythonJson {
    private PythonJson() {}

    static String dumps(Object value, Integer indent) {
        StringBuilder out = new StringBuilder();
        write(out, value, indent, 0);
        return out.toString();
    }

    private static void write(StringBuilder out, Object v, Integer indent, int depth) {
        switch (v) {
            case null -> out.append("null");
            case Boolean b -> out.append(b ? "true" : "false");
            case Double d -> out.append(floatRepr(d));
            case Float f -> out.append(floatRepr(f.doubleValue()));
            case BigDecimal d -> out.append(floatRepr(d.doubleValue()));
            case Number n -> out.append(n.toString());
            case CharSequence s -> string(out, s.toString());
            case Map<?, ?> m -> container(out, m.entrySet().iterator(), m.isEmpty(), '{', '}', indent, depth);
            case Iterable<?> it -> container(out, it.iterator(), !it.iterator().hasNext(), '[', ']', indent, depth);
            case Object[] a -> container(out, java.util.Arrays.asList(a).iterator(), a.length == 0, '[', ']', indent, depth);
            default -> string(out, v.toString());
        }
    }

    private static void container(StringBuilder out, Iterator<?> items, boolean empty, char open, char close,
            Integer indent, int depth) {
        out.append(open);
        if (empty) {
            out.append(close);
            return;
        }
        boolean first = true;
        while (items.hasNext()) {
            Object item = items.next();
            if (!first) out.append(indent == null ? ", " : ",");
            first = false;
            newline(out, indent, depth + 1);
            if (item instanceof Map.Entry<?, ?> e) {
                string(out, String.valueOf(e.getKey()));
                out.append(": ");
                write(out, e.getValue(), indent, depth + 1);
            } else {
                write(out, item, indent, depth + 1);
            }
        }
        newline(out, indent, depth);
        out.append(close);
    }

    private static void newline(StringBuilder out, Integer indent, int depth) {
        if (indent == null) return;
        out.append('\n').repeat(' ', indent * depth);
    }

    private static void string(StringBuilder out, String s) {
        out.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                case '\b' -> out.append("\\b");
                case '\f' -> out.append("\\f");
                default -> {
                    if (c < 0x20) out.append(String.format("\\u%04x", (int) c));
                    else out.append(c);
                }
            }
        }
        out.append('"');
    }

    /** Python's float repr: shortest digits, positional for exponents in [-4, 16), else d.ddde+XX. */
    static String floatRepr(double d) {
        if (Double.isNaN(d)) return "NaN";
        if (Double.isInfinite(d)) return d > 0 ? "Infinity" : "-Infinity";
        if (d == 0) return (1 / d < 0) ? "-0.0" : "0.0";
        BigDecimal bd = new BigDecimal(Double.toString(d)).stripTrailingZeros();
        String digits = bd.unscaledValue().abs().toString();
        int exp = digits.length() - 1 - bd.scale();
        String sign = d < 0 ? "-" : "";
        if (exp >= -4 && exp < 16) {
            String plain = bd.abs().toPlainString();
            return sign + (plain.contains(".") ? plain : plain + ".0");
        }
        String mantissa = digits.length() == 1 ? digits : digits.charAt(0) + "." + digits.substring(1);
        return sign + mantissa + "e" + (exp < 0 ? "-" : "+") + (Math.abs(exp) < 10 ? "0" : "") + Math.abs(exp);
    }
}
