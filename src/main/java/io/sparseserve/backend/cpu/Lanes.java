package io.sparseserve.backend.cpu;

import jdk.incubator.vector.FloatVector;

/**
 * Horizontal sums with one fixed order. {@code reduceLanes(ADD)} may add the lanes in any order, and does: the
 * JIT's intrinsic uses a tree while the interpreter and C1 add lane by lane, so one dot product could differ in its
 * last bit between an early call and a later one. A batch must not change a sequence's result, whatever the JIT
 * has compiled so far, so every kernel sums its lanes here, in one order that every tier follows.
 */
final class Lanes {
    private Lanes() {}

    static float sum(FloatVector v) {
        // Lane by lane, in lane order: each lane() is a plain extract, each add a scalar float add.
        float s = v.lane(0);
        for (int i = 1; i < v.length(); i++) s += v.lane(i);
        return s;
    }
}
